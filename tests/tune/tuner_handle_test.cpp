// kiln::host::TunerHandle: the host's typed handle on a KilnTunerApi, driven
// against kiln_tune.so's real tuners, and against a scripted table for the
// answers a broken tuner could give.
#include <gtest/gtest.h>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/step_context.hpp>
#include <kiln/host/tuner_handle.hpp>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <set>
#include <string>
#include <type_traits>

namespace {

using kiln::host::Json;
using kiln::host::TrialStatus;
using kiln::host::TunerError;
using kiln::host::TunerHandle;

static_assert(!std::is_copy_constructible_v<TunerHandle> && !std::is_copy_assignable_v<TunerHandle>);
static_assert(std::is_nothrow_move_constructible_v<TunerHandle> && std::is_nothrow_move_assignable_v<TunerHandle>);

const KilnTunerApi* real_tuner(const std::string& name) {
  const auto library = kiln::host::PluginLibrary::load(KILN_TEST_TUNE_PLUGIN);
  const kiln::host::LoadedComponent* component = library->find(name);
  if (component == nullptr || component->tuner == nullptr) throw std::runtime_error(name + " has no tuner table");
  return component->tuner;
}

Json config(int64_t max_trials, const Json& settings = Json::object()) {
  return {{"objective", {{"metric", "loss"}, {"goal", "minimize"}}},
          {"space", {{"x", {{"type", "uniform"}, {"low", 0}, {"high", 1}}}}},
          {"settings", settings},
          {"max_trials", max_trials},
          {"seed", 9}};
}

std::string create_error(const KilnTunerApi* api, const Json& c) {
  try {
    TunerHandle handle(api, c);
  } catch (const TunerError& e) {
    EXPECT_EQ(e.code(), KILN_ERROR_INVALID_ARGUMENT);
    return e.what();
  }
  return "no error";
}

TEST(TunerHandle, CreateFailsWithTheTunersMessage) {
  const KilnTunerApi* api = real_tuner("tune.random");
  EXPECT_EQ(create_error(api, Json{{"objective", {{"metric", "loss"}}}, {"space", Json::object()}}),
            "space: a non-empty mapping of parameters is required");
  Json c = config(4);
  c["space"]["x"]["low"] = 2;
  EXPECT_NE(create_error(api, c).find("space.x"), std::string::npos) << create_error(api, c);
  EXPECT_THROW(TunerHandle(nullptr, config(4)), std::invalid_argument);
  KilnTunerApi partial = *api;
  partial.should_stop = nullptr;
  EXPECT_THROW(TunerHandle(&partial, config(4)), std::invalid_argument);
}

TEST(TunerHandle, SuggestsTypedTrialsUpToMaxCountAndMaxTrials) {
  for (const std::string name : {"tune.random", "tune.grid", "tune.tpe", "tune.asha", "tune.hyperband"}) {
    TunerHandle tuner(real_tuner(name), config(5, {{"max_resource", 9}, {"points", 5}}));
    std::set<int> ids;
    size_t total = 0;
    for (int round = 0; round < 10; ++round) {
      const auto trials = tuner.suggest(2);
      ASSERT_LE(trials.size(), 2u) << name;
      if (trials.empty()) break;
      for (const auto& t : trials) {
        EXPECT_GE(t.id, 0) << name;
        EXPECT_TRUE(ids.insert(t.id).second) << name << ": trial " << t.id << " twice";
        ASSERT_TRUE(t.parameters.is_object()) << name;
        const double x = t.parameters.at("x").get<double>();
        EXPECT_TRUE(x >= 0 && x <= 1) << name << ": x = " << x;
        tuner.observe(t.id, 1, x, false);
        tuner.observe(t.id, -1, x, true, TrialStatus::Succeeded);
      }
      total += trials.size();
    }
    EXPECT_EQ(total, 5u) << name;
    EXPECT_TRUE(tuner.suggest(3).empty()) << name;
  }
}

TEST(TunerHandle, ObserveAndShouldStopFollowTheAlgorithm) {
  TunerHandle tuner(real_tuner("tune.asha"), config(4, {{"max_resource", 9}}));
  const auto trials = tuner.suggest(3);
  ASSERT_EQ(trials.size(), 3u);
  tuner.observe(trials[0].id, 1, 0.5, false);
  EXPECT_FALSE(tuner.should_stop(trials[0].id));
  tuner.observe(trials[1].id, 1, 0.9, false);
  EXPECT_TRUE(tuner.should_stop(trials[1].id));  // worse than the best third at rung 1 (minimising)
  tuner.observe(trials[1].id, 1, 0.9, true, TrialStatus::EarlyStopped);
  EXPECT_FALSE(tuner.should_stop(trials[1].id));  // finished: nothing to stop
  tuner.observe(trials[2].id, -1, std::nan(""), true, TrialStatus::Failed);  // failed before reporting
  EXPECT_THROW(tuner.observe(trials[0].id, 2, 0.4, true, TrialStatus::Running), std::invalid_argument);
  try {
    tuner.observe(77, 1, 0.1, false);
    ADD_FAILURE() << "an unknown trial was accepted";
  } catch (const TunerError& e) {
    EXPECT_NE(std::string(e.what()).find("77"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tuner.should_stop(78), TunerError);
}

// ABI 1.3: a multi-objective search's values reach a tuner that offers
// observe_objectives (the SDK's, for tune.nsga2: a wrong count is its
// error), and a table of ABI 1.2's size is never called with them.
TEST(TunerHandle, ObserveObjectivesReachesOnlyATunerThatOffersIt) {
  Json c = config(4);
  c["objectives"] = {{{"metric", "loss"}, {"goal", "minimize"}}, {{"metric", "cost"}, {"goal", "minimize"}}};
  TunerHandle tuner(real_tuner("tune.nsga2"), c);
  EXPECT_TRUE(tuner.takes_objectives());
  const auto trials = tuner.suggest(1);
  ASSERT_EQ(trials.size(), 1u);
  tuner.observe_objectives(trials[0].id, {0.5, 2.0});
  EXPECT_THROW(tuner.observe_objectives(trials[0].id, {0.5}), TunerError);
  tuner.observe(trials[0].id, -1, 0.5, true, TrialStatus::Succeeded);

  KilnTunerApi old = *real_tuner("tune.random");
  old.struct_size = offsetof(KilnTunerApi, observe_objectives);  // built against ABI 1.2
  old.observe_objectives = [](KilnTuner*, int64_t, const double*, uint32_t) -> KilnError* { std::abort(); };
  TunerHandle legacy(&old, config(4));
  EXPECT_FALSE(legacy.takes_objectives());
  const auto one = legacy.suggest(1);
  ASSERT_EQ(one.size(), 1u);
  legacy.observe_objectives(one[0].id, {0.5, 2.0});  // not called: it would abort
}

TEST(TunerHandle, MovesOwnershipOfTheTuner) {
  TunerHandle first(real_tuner("tune.random"), config(3));
  const auto a = first.suggest(1);
  TunerHandle second(std::move(first));
  EXPECT_THROW(first.suggest(1), std::logic_error);  // NOLINT(bugprone-use-after-move): moved-from is checked
  const auto b = second.suggest(1);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_NE(a[0].id, b[0].id);  // the same tuner object continued
  TunerHandle third(real_tuner("tune.grid"), config(2, {{"points", 2}}));
  third = std::move(second);  // destroys third's grid tuner, takes the random one
  EXPECT_EQ(third.suggest(5).size(), 1u);  // max_trials 3: one left
}

TEST(TrialStatusNames, RoundTrip) {
  for (const TrialStatus s :
       {TrialStatus::Running, TrialStatus::Succeeded, TrialStatus::Failed, TrialStatus::EarlyStopped})
    EXPECT_EQ(kiln::host::trial_status_from_name(kiln::host::trial_status_name(s)), s);
  EXPECT_EQ(kiln::host::trial_status_name(TrialStatus::EarlyStopped), std::string("early-stopped"));
  EXPECT_FALSE(kiln::host::trial_status_from_name("cancelled").has_value());
}

// A scripted tuner: suggest answers `answer`; counts destroys.
struct Script {
  std::string answer;
  int destroyed = 0;
};
Script* script_of(KilnTuner* t) {
  return reinterpret_cast<Script*>(t);
}
KilnError* scripted_create(const KilnHostApi* host, const char* config_json, KilnTuner** out) {
  const Json c = Json::parse(config_json);
  if (!c.contains("script")) return host->error_new(KILN_ERROR_INVALID_ARGUMENT, "settings: no script");
  *out = reinterpret_cast<KilnTuner*>(reinterpret_cast<Script*>(c["script"].get<uintptr_t>()));
  return nullptr;
}
KilnError* scripted_suggest(KilnTuner* t, uint32_t, const char** json_out) {
  *json_out = script_of(t)->answer.c_str();
  return nullptr;
}
KilnError* scripted_observe(KilnTuner*, int64_t, int64_t, double, int32_t, const char*) {
  return nullptr;
}
KilnError* scripted_should_stop(KilnTuner*, int64_t, int32_t* stop) {
  *stop = 1;
  return nullptr;
}
void scripted_destroy(KilnTuner* t) {
  ++script_of(t)->destroyed;
}
const KilnTunerApi kScripted{sizeof(KilnTunerApi), 0,
                             &scripted_create,     &scripted_suggest,
                             &scripted_observe,    &scripted_should_stop,
                             &scripted_destroy,    nullptr};

std::string bad_answer(Script& script, const std::string& answer, uint32_t max_count = 5) {
  script.answer = answer;
  TunerHandle tuner(&kScripted, Json{{"script", reinterpret_cast<uintptr_t>(&script)}});
  try {
    tuner.suggest(max_count);
  } catch (const TunerError& e) {
    EXPECT_EQ(e.code(), KILN_ERROR_INTERNAL);
    return e.what();
  }
  return "accepted";
}

TEST(TunerHandle, RejectsMalformedSuggestions) {
  Script script;
  EXPECT_EQ(bad_answer(script, R"([{"trial": 0, "parameters": {"x": 1}}])"), "accepted");
  EXPECT_EQ(script.destroyed, 1);  // the destructor destroyed the tuner, once
  EXPECT_EQ(bad_answer(script, R"({"trial": 0})"), R"(suggest returned something other than a list: {"trial":0})");
  EXPECT_EQ(bad_answer(script, "[1").rfind("suggest returned invalid JSON: ", 0), 0u);
  EXPECT_NE(bad_answer(script, R"([{"trial": -1, "parameters": {}}])").find("not a non-negative int"),
            std::string::npos);
  EXPECT_NE(bad_answer(script, R"([{"trial": 1.5, "parameters": {}}])").find("not a non-negative int"),
            std::string::npos);
  EXPECT_NE(bad_answer(script, R"([{"trial": 1, "parameters": [1]}])").find("not an object"), std::string::npos);
  EXPECT_NE(bad_answer(script, R"([{"parameters": {}}])").find("not {\"trial\""), std::string::npos);
  EXPECT_EQ(bad_answer(script, R"([{"trial": 3, "parameters": {}}, {"trial": 3, "parameters": {}}])"),
            "suggest returned trial 3 again");
  EXPECT_NE(bad_answer(script, R"([{"trial": 1, "parameters": {}}, {"trial": 2, "parameters": {}}])", 1)
                .find("2 trials where at most 1"),
            std::string::npos);
  EXPECT_EQ(script.destroyed, 9);

  // A repeat across calls is caught too; a valid answer is typed.
  script.answer = R"([{"trial": 4, "parameters": {"x": 0.5}}])";
  TunerHandle tuner(&kScripted, Json{{"script", reinterpret_cast<uintptr_t>(&script)}});
  const auto trials = tuner.suggest(1);
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].id, 4);
  EXPECT_EQ(trials[0].parameters, Json({{"x", 0.5}}));
  EXPECT_THROW(tuner.suggest(1), TunerError);
  EXPECT_TRUE(tuner.should_stop(4));
}

}  // namespace

// The search algorithms of plugins/tune on synthetic objectives with known
// answers: bounds and types, grid exactness, seed reproducibility, the ASHA
// rung rule, median-stop, the ABI table of kiln_tune.so, and a search
// written against the SDK alone (tests/fixtures/search_plugin.cpp).
#include "tuner.hpp"

#include <gtest/gtest.h>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/step_context.hpp>
#include <test_support.hpp>

#include <cmath>
#include <set>

namespace kiln::tune {
namespace {

Json mixed_space() {
  return Json::parse(R"({
    "lr": {"type": "log_uniform", "low": 1e-4, "high": 1e-1},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
    "batch_size": {"type": "int", "low": 16, "high": 128, "step": 16},
    "hidden": {"type": "categorical", "values": [[64], [128, 64], [256, 128]]},
    "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
    "momentum": {"type": "uniform", "low": 0.5, "high": 0.99, "when": {"optimizer": ["sgd"]}}
  })");
}

Json config(const Json& space, int64_t max_trials, uint64_t seed, const Json& settings = Json::object()) {
  return {{"objective", {{"metric", "loss"}, {"goal", "minimize"}}},
          {"space", space},
          {"settings", settings},
          {"max_trials", max_trials},
          {"seed", seed}};
}

// A known objective over mixed_space(): best at lr=1e-2, dropout=0.1, batch 64,
// hidden [128, 64], adam.
double synthetic_loss(const Json& p) {
  double loss = std::pow(std::log10(p["lr"].get<double>()) + 2, 2);
  loss += std::pow(p["dropout"].get<double>() - 0.1, 2) * 4;
  loss += std::abs(p["batch_size"].get<int64_t>() - 64) / 64.0;
  loss += p["hidden"] == Json::parse("[128, 64]") ? 0 : 0.5;
  loss += p["optimizer"] == "adam" ? 0 : 0.3;
  return loss;
}

std::vector<Json> run_sequential(Tuner& tuner, double (*loss)(const Json&) = synthetic_loss) {
  std::vector<Json> suggested;
  for (;;) {
    const Json batch = tuner.suggest(1);
    if (batch.empty()) break;
    for (const Json& s : batch) {
      suggested.push_back(s["parameters"]);
      tuner.observe(s["trial"], 1, loss(s["parameters"]), true, "succeeded");
    }
  }
  return suggested;
}

TEST(TuneSpace, RejectsBadDefinitionsNamingTheField) {
  auto message = [](const Json& space) {
    try {
      SearchSpace::from_json(space);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(Json::parse(R"({"lr": {"type": "log_uniform", "low": 0, "high": 1}})")),
            "space.lr.low: must be > 0 for log_uniform");
  EXPECT_EQ(message(Json::parse(R"({"n": {"type": "int", "low": 1.5, "high": 3}})")),
            "space.n.low: an integer is required");
  EXPECT_EQ(message(Json::parse(R"({"c": {"type": "categorical", "values": []}})")),
            "space.c.values: a non-empty list is required");
  EXPECT_EQ(message(Json::parse(R"({"x": {"type": "normal"}})")),
            "space.x.type: expected uniform, log_uniform, int or categorical, got 'normal'");
  EXPECT_EQ(message(Json::parse(R"({"m": {"type": "uniform", "low": 0, "high": 1, "when": {"opt": "sgd"}}})")),
            "space.m.when: no parameter 'opt' in the space");
}

class EveryAlgorithm : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryAlgorithm, RespectsBoundsTypesAndConditions) {
  Json settings = Json::object();
  if (GetParam() == "asha" || GetParam() == "hyperband") settings["max_resource"] = 9;
  if (GetParam() == "tpe") settings["n_startup_trials"] = 5;
  const auto tuner = make_tuner(GetParam(), config(mixed_space(), 60, 7, settings));
  const std::vector<Json> points = run_sequential(*tuner);
  ASSERT_FALSE(points.empty());
  const SearchSpace space = SearchSpace::from_json(mixed_space());
  for (const Json& p : points) {
    EXPECT_TRUE(space.contains(p)) << p.dump();
    EXPECT_TRUE(p["lr"].is_number_float());
    EXPECT_TRUE(p["batch_size"].is_number_integer());
    EXPECT_EQ(p.contains("momentum"), p["optimizer"] == "sgd") << p.dump();
  }
}

TEST_P(EveryAlgorithm, SameSeedSameSuggestions) {
  Json settings = Json::object();
  if (GetParam() == "asha" || GetParam() == "hyperband") settings["max_resource"] = 9;
  if (GetParam() == "tpe") settings["n_startup_trials"] = 5;
  const auto a = make_tuner(GetParam(), config(mixed_space(), 30, 42, settings));
  const auto b = make_tuner(GetParam(), config(mixed_space(), 30, 42, settings));
  const auto c = make_tuner(GetParam(), config(mixed_space(), 30, 43, settings));
  const std::vector<Json> pa = run_sequential(*a), pb = run_sequential(*b), pc = run_sequential(*c);
  EXPECT_EQ(pa, pb);
  if (GetParam() != "grid") {
    EXPECT_NE(pa, pc);
  }
  EXPECT_LE(pa.size(), 30u);
}

INSTANTIATE_TEST_SUITE_P(Tune, EveryAlgorithm, ::testing::Values("random", "grid", "tpe", "asha", "hyperband"));

TEST(TuneGrid, EnumeratesEveryPointExactlyOnce) {
  const Json space = Json::parse(R"({
    "lr": {"type": "log_uniform", "low": 0.001, "high": 0.1, "grid_points": 3},
    "layers": {"type": "int", "low": 1, "high": 3},
    "act": {"type": "categorical", "values": ["relu", "tanh"]},
    "slope": {"type": "uniform", "low": 0.0, "high": 1.0, "when": {"act": "relu"}}
  })");
  const auto tuner = make_tuner("grid", config(space, 1000, 0, {{"points", 2}}));
  const std::vector<Json> points = run_sequential(*tuner, [](const Json&) { return 1.0; });
  // act=relu: 3 lr * 3 layers * 2 slopes; act=tanh: 3 lr * 3 layers.
  ASSERT_EQ(points.size(), 18u + 9u);
  std::set<std::string> distinct;
  for (const Json& p : points) distinct.insert(p.dump());
  EXPECT_EQ(distinct.size(), points.size());
  std::set<double> lrs;
  for (const Json& p : points) lrs.insert(p["lr"].get<double>());
  ASSERT_EQ(lrs.size(), 3u);
  EXPECT_NEAR(*lrs.begin(), 0.001, 1e-12);
  EXPECT_NEAR(*std::next(lrs.begin()), 0.01, 1e-12);
  EXPECT_NEAR(*lrs.rbegin(), 0.1, 1e-12);
  EXPECT_TRUE(tuner->suggest(4).empty());  // exhausted
}

TEST(TuneGrid, StopsAtMaxTrials) {
  const Json space = Json::parse(R"({"n": {"type": "int", "low": 0, "high": 99}})");
  const auto tuner = make_tuner("grid", config(space, 10, 0));
  EXPECT_EQ(tuner->suggest(100).size(), 10u);
  EXPECT_TRUE(tuner->suggest(1).empty());
}

TEST(TuneTpe, BeatsRandomOnTheSyntheticObjective) {
  // Averaged over seeds, so the comparison is about the method, not luck.
  double tpe_total = 0, random_total = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    for (const std::string algorithm : {"tpe", "random"}) {
      const auto tuner = make_tuner(algorithm, config(mixed_space(), 60, seed));
      double best = 1e9;
      for (const Json& p : run_sequential(*tuner)) best = std::min(best, synthetic_loss(p));
      (algorithm == "tpe" ? tpe_total : random_total) += best;
    }
  }
  EXPECT_LT(tpe_total, random_total);
}

// Runs every suggested trial of `tuner` for up to 9 steps with the score
// (i % 5) - i/1000 + 1/step (lower is better: ranked by i % 5, a later trial
// of the same class a little better, so no two tie), stopping it when told;
// returns the step each stopped trial stopped at, and adds the steps run to
// `epochs`.
std::map<int64_t, int64_t> run_known_curves(kiln::tune::Tuner& tuner, const Json& trials, int64_t& epochs) {
  std::map<int64_t, int64_t> stopped_at;
  for (const Json& s : trials) {
    const int64_t id = s["trial"];
    const double quality = static_cast<double>(id % 5) - static_cast<double>(id) / 1000;
    bool stopped = false;
    for (int64_t step = 1; step <= 9 && !stopped; ++step) {
      ++epochs;
      tuner.observe(id, step, quality + 1.0 / static_cast<double>(step), false, "");
      if (!tuner.should_stop(id)) continue;
      stopped_at[id] = step;
      tuner.observe(id, step, quality + 1.0 / static_cast<double>(step), true, "early-stopped");
      stopped = true;
    }
    if (!stopped) tuner.observe(id, 9, quality + 1.0 / 9, true, "succeeded");
  }
  return stopped_at;
}

// Hyperband with rungs from 1 to 9 and eta 3 has two brackets, both with
// rungs: {1, 3} and {3} (the paper's rungless bracket is left out), dealt by
// the paper's shares 9 : 5 (smooth weighted round robin).
TEST(TuneHyperband, EachBracketCutsOnlyAtItsOwnRungs) {
  const Json space = Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1}})");
  const Json settings{{"min_resource", 1}, {"max_resource", 9}, {"reduction_factor", 3}};
  const auto tuner = make_tuner("hyperband", config(space, 30, 3, settings));
  const Json trials = tuner->suggest(30);
  ASSERT_EQ(trials.size(), 30u);
  int64_t epochs = 0;
  const auto stopped_at = run_known_curves(*tuner, trials, epochs);
  size_t at_one = 0, at_three = 0;
  for (const auto& [id, step] : stopped_at) {
    EXPECT_TRUE(step == 1 || step == 3) << id << " stopped at " << step;
    (step == 1 ? at_one : at_three) += 1;
  }
  EXPECT_GT(at_one, 0u);
  EXPECT_GT(at_three, 0u);
  EXPECT_LT(epochs, 30 * 9);
  // Same seed, same brackets, same decisions.
  const auto again = make_tuner("hyperband", config(space, 30, 3, settings));
  int64_t epochs_again = 0;
  EXPECT_EQ(run_known_curves(*again, again->suggest(30), epochs_again), stopped_at);
  EXPECT_EQ(epochs_again, epochs);
}

// Curves with known order (run_known_curves): at each rung the ranking is by
// i % 5, then later trials first.
TEST(TuneAsha, StopsAtRungsOutsideTheBestThird) {
  const Json space = Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1}})");
  const auto tuner =
      make_tuner("asha", config(space, 30, 3, {{"min_resource", 1}, {"max_resource", 9}, {"reduction_factor", 3}}));
  const Json trials = tuner->suggest(30);
  ASSERT_EQ(trials.size(), 30u);
  int64_t epochs = 0;
  const auto stopped_at = run_known_curves(*tuner, trials, epochs);
  // Rungs at 1 and 3. Quality-0 trials are each the best at a rung so far
  // and always continue; quality-4 trials are always outside the top third
  // (from the second trial on) and stop at the first rung.
  for (const Json& s : trials) {
    const int64_t id = s["trial"];
    if (id % 5 == 0) {
      EXPECT_EQ(stopped_at.count(id), 0u) << id;
    }
    if (id % 5 == 4) {
      EXPECT_EQ(stopped_at.count(id) ? stopped_at.at(id) : 0, 1) << id;
    }
  }
  for (const auto& [id, step] : stopped_at) EXPECT_TRUE(step == 1 || step == 3) << id << " stopped at " << step;
  EXPECT_LE(epochs, 30 * 9 * 6 / 10);  // a large share of the budget saved
  EXPECT_EQ(tuner->trials().at(4).state, TrialState::EarlyStopped);
}

TEST(TuneMedianStop, StopsACurveWorseThanTheMedian) {
  const Json space = Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1}})");
  Json c = config(space, 10, 1);
  c["objective"] = {{"metric", "val_accuracy"}, {"goal", "maximize"}};
  c["early_stopping"] = {{"rule", "median"}, {"grace_steps", 2}, {"min_trials", 3}};
  const auto tuner = make_tuner("random", c);
  const Json trials = tuner->suggest(5);
  // Three completed trials with accuracy 0.5 + 0.1*step/5 (averages ~0.53 at step 2).
  for (int i = 0; i < 3; ++i) {
    for (int step = 1; step <= 5; ++step) tuner->observe(trials[i]["trial"], step, 0.5 + 0.02 * step, false, "");
    tuner->observe(trials[i]["trial"], 5, 0.6, true, "succeeded");
  }
  // A bad curve: below the median, stopped once past the grace steps.
  const int64_t bad = trials[3]["trial"];
  tuner->observe(bad, 1, 0.2, false, "");
  EXPECT_FALSE(tuner->should_stop(bad));  // grace
  tuner->observe(bad, 2, 0.25, false, "");
  EXPECT_TRUE(tuner->should_stop(bad));
  // A good curve keeps running.
  const int64_t good = trials[4]["trial"];
  for (int step = 1; step <= 5; ++step) {
    tuner->observe(good, step, 0.7, false, "");
    EXPECT_FALSE(tuner->should_stop(good));
  }
}

TEST(TuneMedianStop, NeedsMinTrialsCompleted) {
  const Json space = Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1}})");
  Json c = config(space, 10, 1);
  c["early_stopping"] = {{"rule", "median"}, {"grace_steps", 1}, {"min_trials", 3}};
  const auto tuner = make_tuner("random", c);
  const Json trials = tuner->suggest(3);
  tuner->observe(trials[0]["trial"], 1, 0.1, false, "");
  tuner->observe(trials[0]["trial"], 1, 0.1, true, "succeeded");
  tuner->observe(trials[1]["trial"], 1, 5.0, false, "");  // much worse, but only one trial completed
  EXPECT_FALSE(tuner->should_stop(trials[1]["trial"]));
}

TEST(TuneConfig, RejectsBadConfigNamingTheField) {
  const Json space = Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1}})");
  Json c = config(space, 10, 1);
  c["objective"]["goal"] = "up";
  EXPECT_THROW(make_tuner("random", c), ConfigError);
  EXPECT_THROW(make_tuner("asha", config(space, 10, 1)), ConfigError);  // no max_resource
  EXPECT_THROW(make_tuner("annealing", config(space, 10, 1)), ConfigError);
}

// The same algorithms through kiln_tune.so's KilnTunerApi, as the engine uses them.
TEST(TunePlugin, DrivesTheTunerTableThroughTheAbi) {
  const auto library = kiln::host::PluginLibrary::load(KILN_TEST_TUNE_PLUGIN);
  for (const std::string name :
       {"tune.search", "tune.random", "tune.grid", "tune.tpe", "tune.nsga2", "tune.asha", "tune.hyperband",
        "tune.pbt"}) {
    const kiln::host::LoadedComponent* component = library->find(name);
    ASSERT_NE(component, nullptr) << name;
    ASSERT_NE(component->tuner, nullptr) << name;
    EXPECT_EQ(component->manifest.kind, "tune");
  }
  const KilnTunerApi* api = library->find("tune.asha")->tuner;
  const KilnHostApi* host = kiln::host::host_api();

  KilnTuner* tuner = nullptr;
  KilnError* error = api->create(host, R"({"objective": {"metric": "loss"}, "space": {}})", &tuner);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(host->error_code(error), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(host->error_message(error), "space: a non-empty mapping of parameters is required");
  host->error_release(error);

  const Json c = config(Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1}})"), 4, 9, {{"max_resource", 9}});
  ASSERT_EQ(api->create(host, c.dump().c_str(), &tuner), nullptr);
  const char* json = nullptr;
  ASSERT_EQ(api->suggest(tuner, 3, &json), nullptr);
  const Json first = Json::parse(json);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(api->suggest(tuner, 3, &json), nullptr);
  EXPECT_EQ(Json::parse(json).size(), 1u);  // max_trials = 4
  ASSERT_EQ(api->observe(tuner, 0, 1, 0.5, 0, nullptr), nullptr);
  int32_t stop = -1;
  ASSERT_EQ(api->should_stop(tuner, 0, &stop), nullptr);
  EXPECT_EQ(stop, 0);
  ASSERT_EQ(api->observe(tuner, 1, 1, 0.9, 0, nullptr), nullptr);
  ASSERT_EQ(api->should_stop(tuner, 1, &stop), nullptr);
  EXPECT_EQ(stop, 1);  // worse than the best third at rung 1
  ASSERT_EQ(api->observe(tuner, 1, 1, 0.9, 1, "\"early-stopped\""), nullptr);
  error = api->observe(tuner, 77, 1, 0.1, 0, nullptr);
  ASSERT_NE(error, nullptr);
  host->error_release(error);
  api->destroy(tuner);
  api->destroy(nullptr);
}

// What a search through a KilnTunerApi did: every suggestion's text, the
// best loss, and which trials the scheduler stopped.
struct AbiSearch {
  std::vector<std::string> suggestions;
  double best = 1e300;
  std::set<int64_t> stopped;
};

// Runs `trials` trials one at a time on (x - 0.3)^2 + (y - 0.6)^2, each
// reporting a curve that improves, worsens at step 3, then improves again.
AbiSearch run_walk(const KilnTunerApi* api, uint64_t seed, int64_t trials) {
  const KilnHostApi* host = kiln::host::host_api();
  const Json space = Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1},
                                     "y": {"type": "uniform", "low": 0, "high": 1}})");
  KilnTuner* tuner = nullptr;
  EXPECT_EQ(api->create(host, config(space, trials, seed).dump().c_str(), &tuner), nullptr);
  AbiSearch out;
  for (;;) {
    const char* json = nullptr;
    EXPECT_EQ(api->suggest(tuner, 1, &json), nullptr);
    const Json batch = Json::parse(json);
    if (batch.empty()) break;
    out.suggestions.push_back(batch[0].dump());
    const int64_t id = batch[0]["trial"];
    const Json& p = batch[0]["parameters"];
    EXPECT_TRUE(p["x"] >= 0.0 && p["x"] <= 1.0 && p["y"] >= 0.0 && p["y"] <= 1.0) << p;
    const double loss = std::pow(p["x"].get<double>() - 0.3, 2) + std::pow(p["y"].get<double>() - 0.6, 2);
    const double curve[] = {loss + 0.3, loss + 0.1, loss + 0.2, loss};
    for (int64_t step = 1; step <= 4; ++step) {
      EXPECT_EQ(api->observe(tuner, id, step, curve[step - 1], 0, nullptr), nullptr);
      int32_t stop = -1;
      EXPECT_EQ(api->should_stop(tuner, id, &stop), nullptr);
      if (stop == 1) {
        out.stopped.insert(id);
        break;
      }
    }
    const char* status = out.stopped.count(id) ? "\"early-stopped\"" : "\"succeeded\"";
    EXPECT_EQ(api->observe(tuner, id, -1, loss, 1, status), nullptr);
    out.best = std::min(out.best, loss);
  }
  api->destroy(tuner);
  return out;
}

TEST(TuneSdk, ASamplerAndASchedulerWrittenAgainstTheSdkComposeThroughTheAbi) {
  const auto library = kiln::host::PluginLibrary::load(kiln::test::fixture("fixture_search"));
  const kiln::host::LoadedComponent* component = library->find("fixture.walk");
  ASSERT_NE(component, nullptr);
  ASSERT_NE(component->tuner, nullptr);
  EXPECT_EQ(component->manifest.kind, "tune");
  const KilnTunerApi* api = component->tuner;
  const KilnHostApi* host = kiln::host::host_api();

  // Each half's configuration errors come back as values naming the field.
  const Json uniform = Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1}})");
  const std::pair<Json, std::string> bad[] = {
      {config(uniform, 4, 1, {{"step", 2}}), "settings.step: a number in (0.000000, 1.000000) is required"},
      {config(uniform, 4, 1, {{"patience", 0}}), "settings.patience: an integer >= 1 is required"},
      {config(Json::parse(R"({"x": {"type": "log_uniform", "low": 1, "high": 2}})"), 4, 1),
       "space.x: fixture.walk takes uniform parameters with low < high"},
      {config(uniform, 0, 1), "max_trials: a positive integer is required"}};
  for (const auto& [c, message] : bad) {
    KilnTuner* tuner = nullptr;
    KilnError* error = api->create(host, c.dump().c_str(), &tuner);
    ASSERT_NE(error, nullptr) << c;
    EXPECT_EQ(host->error_code(error), KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(std::string(host->error_message(error)), message);
    host->error_release(error);
  }

  const AbiSearch walk = run_walk(api, 5, 30);
  ASSERT_EQ(walk.suggestions.size(), 30u);  // max_trials, kept by the SDK's Search
  EXPECT_EQ(Json::parse(walk.suggestions[0])["parameters"], Json::parse(R"({"x": 0.5, "y": 0.5})"));
  EXPECT_LT(walk.best, 0.01);  // the middle's loss is 0.05
  EXPECT_EQ(walk.stopped.size(), 30u);  // every curve worsens at step 3
  EXPECT_EQ(run_walk(api, 5, 30).suggestions, walk.suggestions);  // the seed decides
  EXPECT_NE(run_walk(api, 6, 30).suggestions, walk.suggestions);
}

}  // namespace
}  // namespace kiln::tune

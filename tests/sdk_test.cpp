// The SDK through the real ABI: the util plugin loaded into this process,
// its components invoked through the host function table.
#include <gtest/gtest.h>
#include <kiln/host/invoke.hpp>
#include <kiln/host/plugin_library.hpp>

#include <kiln/sdk.hpp>
#include <kiln/sdk/replica.hpp>

#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "test_support.hpp"

using kiln::host::Json;
using kiln::host::PluginLibrary;
using kiln::test::RecordingSink;
using kiln::test::TempDir;

namespace {

const kiln::host::LoadedComponent& util(const std::string& name) {
  const auto library = PluginLibrary::load(kiln::test::util_plugin());
  const auto* component = library->find(name);
  if (component == nullptr) throw std::runtime_error("util plugin lacks " + name);
  return *component;
}

kiln::host::StepOutcome invoke(const std::string& name, const Json& params, const TempDir& dir, RecordingSink& sink,
                               std::map<std::string, kiln::host::InputArtifact> inputs = {}) {
  return kiln::test::invoke_component(kiln::test::util_plugin(), name, params, dir.path(), sink, std::move(inputs));
}

}  // namespace

TEST(Sdk, EchoWritesItsArtifactAndOutputParameter) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = invoke("util.echo", Json{{"message", "hi there"}}, dir, sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_EQ(kiln::test::read_text(dir / "out/text/message.txt"), "hi there");
  EXPECT_EQ(sink.output_parameters["message"], Json("hi there"));
  EXPECT_EQ(sink.output_metadata["text"]["length"], Json(8));
  ASSERT_FALSE(sink.logs.empty());
  EXPECT_EQ(sink.logs.front().second, "echo: hi there");
  EXPECT_EQ(sink.progress.back(), 1.0);
}

TEST(Sdk, EchoReadsAWiredOptionalInput) {
  TempDir dir;
  kiln::test::write_text(dir / "upstream/message.txt", "first");
  RecordingSink sink;
  const auto outcome = invoke("util.echo", Json{{"message", "second"}}, dir, sink, {{"text", {dir / "upstream", {}}}});
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_EQ(kiln::test::read_text(dir / "out/text/message.txt"), "first\nsecond");
}

TEST(Sdk, DefaultsComeFromTheManifest) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(invoke("util.echo", Json::object(), dir, sink).ok);
  EXPECT_EQ(sink.output_parameters["message"], Json("hello"));
}

TEST(Sdk, ThrownStdExceptionBecomesAnInternalError) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = invoke("util.fail", Json{{"mode", "throw"}, {"message", "boom"}}, dir, sink);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_INTERNAL);
  EXPECT_EQ(outcome.message, "uncaught exception: boom");
}

TEST(Sdk, KilnErrorKeepsItsCode) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = invoke("util.fail", Json{{"mode", "error"}, {"message", "bad input"}}, dir, sink);
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(outcome.message, "bad input");
}

TEST(Sdk, SleepStopsWhenCancelled) {
  TempDir dir;
  RecordingSink sink;
  const auto& component = util("util.sleep");
  kiln::host::StepInvocation invocation;
  invocation.parameters = Json{{"seconds", 60.0}, {"print", false}};  // every parameter, as the planner gives them
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancelled = true;
  });
  const auto outcome = kiln::host::invoke_component(component, invocation, sink, cancelled);
  canceller.join();
  EXPECT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_CANCELLED);
}

TEST(Sdk, HostRejectsUndeclaredPortsAndBadValues) {
  // A raw view of the host table as a plugin sees it.
  const auto& component = util("util.echo");
  RecordingSink sink;
  TempDir dir;
  kiln::host::StepInvocation invocation;
  invocation.parameters = Json{{"message", "x"}};
  invocation.output_dir = dir / "out";
  const std::atomic<bool> not_cancelled{false};
  KilnStepContext ctx(component.manifest, invocation, sink, not_cancelled);
  const KilnHostApi* host = kiln::host::host_api();
  const auto code_of = [&](KilnError* error) {
    const KilnErrorCode code = host->error_code(error);
    host->error_release(error);
    return code;
  };
  const char* text = nullptr;
  int64_t number = 0;
  EXPECT_EQ(code_of(host->param_string(&ctx, "message", &text)), 0);
  EXPECT_STREQ(text, "x");
  EXPECT_EQ(code_of(host->param_int(&ctx, "message", &number)), KILN_ERROR_TYPE_MISMATCH);
  EXPECT_EQ(code_of(host->param_string(&ctx, "absent", &text)), KILN_ERROR_NOT_FOUND);
  EXPECT_EQ(code_of(host->output_path(&ctx, "nope", &text)), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(code_of(host->input_path(&ctx, "text", &text)), KILN_ERROR_NOT_FOUND);
  EXPECT_EQ(code_of(host->output_parameter(&ctx, "message", "42")), KILN_ERROR_TYPE_MISMATCH);
  EXPECT_EQ(code_of(host->output_parameter(&ctx, "message", "{broken")), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(code_of(host->metric(&ctx, "bad name!", 1.0, 0)), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(code_of(host->metric(&ctx, "loss", 0.5, 3)), 0);
  EXPECT_EQ(code_of(host->progress(&ctx, 1.5, nullptr)), KILN_ERROR_INVALID_ARGUMENT);
  ASSERT_EQ(sink.metrics.size(), 1u);
  EXPECT_EQ(sink.metrics[0].name, "loss");
  EXPECT_EQ(sink.metrics[0].step, 3);
}

TEST(Sdk, ResolveParametersReportsEveryProblem) {
  const auto& component = util("util.fail");
  std::vector<std::string> problems;
  kiln::host::resolve_parameters(component.manifest, Json{{"mode", "explode"}, {"exit_code", 300}, {"colour", 1}},
                                 problems);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_NE(problems[0].find("no parameter 'colour'"), std::string::npos);
  EXPECT_NE(problems[1].find("\"explode\" is not one of"), std::string::npos);
  EXPECT_NE(problems[2].find("300 is above the maximum 255"), std::string::npos);
}

TEST(Sdk, TheAuthoringGuideExampleWorks) {
  const auto library = PluginLibrary::load(KILN_TEST_GREETER_PLUGIN);
  const auto* greeter = library->find("sample.greet");
  ASSERT_NE(greeter, nullptr);
  TempDir dir;
  RecordingSink sink;
  std::vector<std::string> problems;
  kiln::host::StepInvocation invocation;
  invocation.parameters =
      kiln::host::resolve_parameters(greeter->manifest, Json{{"name", "Ada"}, {"times", 2}}, problems);
  ASSERT_TRUE(problems.empty());
  invocation.output_dir = dir / "out";
  const std::atomic<bool> not_cancelled{false};
  const auto outcome = kiln::host::invoke_component(*greeter, invocation, sink, not_cancelled);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_EQ(kiln::test::read_text(dir / "out/greeting/greeting.txt"), "Hello, Ada!\nHello, Ada!\n");
  EXPECT_EQ(sink.output_parameters["words"], Json(4));
  ASSERT_EQ(sink.metrics.size(), 1u);
  EXPECT_EQ(sink.metrics[0].value, 2.0);
  EXPECT_EQ(sink.progress, (std::vector<double>{0.5, 1.0}));
}

// ---- the SDK's tuner and serving wrappers, through their C tables ----------

namespace {

const KilnHostApi* host() {
  return kiln::host::host_api();
}

// Code and message of an error, which it releases; {0, ""} for none.
std::pair<KilnErrorCode, std::string> take(KilnError* error) {
  if (error == nullptr) return {0, ""};
  std::pair<KilnErrorCode, std::string> out{host()->error_code(error), host()->error_message(error)};
  host()->error_release(error);
  return out;
}

// A tuner whose behaviour the config names: {"fail": "error"|"throw"} fails
// the constructor; suggest hands out `ids` (or misbehaves with "bad").
class ScriptedTuner {
 public:
  static inline std::atomic<int> alive{0};
  explicit ScriptedTuner(const std::string& config) : config_(config) {
    if (config == R"({"fail": "error"})")
      throw kiln::Error("settings.fail: asked to fail", KILN_ERROR_INVALID_ARGUMENT);
    if (config == R"({"fail": "throw"})") throw std::runtime_error("constructor threw");
    ++alive;
  }
  ~ScriptedTuner() { --alive; }
  ScriptedTuner(const ScriptedTuner&) = delete;
  ScriptedTuner& operator=(const ScriptedTuner&) = delete;

  std::vector<kiln::Trial> suggest(uint32_t max_count) {
    if (config_ == R"({"suggest": "too many"})") return {{0, "{}"}, {1, "{}"}, {2, "{}"}};
    if (config_ == R"({"suggest": "negative"})") return {{-1, "{}"}};
    if (config_ == R"({"suggest": "list"})") return {{0, "[1, 2]"}};
    std::vector<kiln::Trial> out;
    for (uint32_t i = 0; i < max_count && next_ < 3; ++i, ++next_)
      out.push_back({next_, "{\"x\": " + std::to_string(next_) + "}"});
    return out;
  }
  void observe(const kiln::Observation& o) {
    if (o.trial == 99) throw kiln::Error("no trial 99", KILN_ERROR_NOT_FOUND);
    observations.push_back(o);
  }
  bool should_stop(int64_t trial) {
    if (trial < 0) throw std::out_of_range("negative trial");
    return trial == 1;
  }

  std::vector<kiln::Observation> observations;

 private:
  std::string config_;
  int64_t next_ = 0;
};

// What the SDK put behind a KilnTuner* (the test peeks at its own class).
ScriptedTuner& scripted(KilnTuner* t) {
  return kiln::detail::tuner_box<ScriptedTuner>(t)->tuner;
}

// A tuner that takes every objective's values (ABI 1.3).
struct ObjectivesTuner {
  explicit ObjectivesTuner(const std::string& /*config*/) {}
  std::vector<kiln::Trial> suggest(uint32_t /*max_count*/) { return {}; }
  void observe(const kiln::Observation& /*o*/) {}
  bool should_stop(int64_t /*trial*/) { return false; }
  void observe_objectives(int64_t trial, const std::vector<double>& values) {
    if (trial < 0) throw kiln::Error("observe_objectives: no trial " + std::to_string(trial), KILN_ERROR_NOT_FOUND);
    seen[trial] = values;
  }
  std::map<int64_t, std::vector<double>> seen;
};

}  // namespace

TEST(SdkTuner, ConstructorErrorsBecomeErrorValues) {
  const KilnTunerApi* api = kiln::tuner_table<ScriptedTuner>();
  EXPECT_EQ(api->struct_size, sizeof(KilnTunerApi));
  KilnTuner* tuner = nullptr;
  EXPECT_EQ(take(api->create(host(), R"({"fail": "error"})", &tuner)),
            std::make_pair(KILN_ERROR_INVALID_ARGUMENT, std::string("settings.fail: asked to fail")));
  EXPECT_EQ(take(api->create(host(), R"({"fail": "throw"})", &tuner)),
            std::make_pair(KILN_ERROR_INTERNAL, std::string("uncaught exception: constructor threw")));
  EXPECT_EQ(tuner, nullptr);
  EXPECT_EQ(ScriptedTuner::alive, 0);
}

// observe_objectives is offered only by a tuner class that has it, and
// hands the values over as a vector; its errors are error values.
TEST(SdkTuner, ObserveObjectivesIsOfferedOnlyByATunerThatTakesThem) {
  EXPECT_EQ(kiln::tuner_table<ScriptedTuner>()->observe_objectives, nullptr);
  const KilnTunerApi* api = kiln::tuner_table<ObjectivesTuner>();
  ASSERT_NE(api->observe_objectives, nullptr);
  KilnTuner* tuner = nullptr;
  ASSERT_EQ(take(api->create(host(), "{}", &tuner)).first, 0);
  const double values[] = {0.25, std::nan("")};
  EXPECT_EQ(take(api->observe_objectives(tuner, 3, values, 2)).first, 0);
  EXPECT_EQ(take(api->observe_objectives(tuner, -1, values, 2)),
            std::make_pair(KILN_ERROR_NOT_FOUND, std::string("observe_objectives: no trial -1")));
  EXPECT_EQ(take(api->observe_objectives(tuner, 4, nullptr, 2)).first, KILN_ERROR_INVALID_ARGUMENT);
  const auto& seen = kiln::detail::tuner_box<ObjectivesTuner>(tuner)->tuner.seen;
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_EQ(seen.at(3).size(), 2u);
  EXPECT_EQ(seen.at(3)[0], 0.25);
  EXPECT_TRUE(std::isnan(seen.at(3)[1]));
  api->destroy(tuner);
}

TEST(SdkTuner, SuggestHandsOutJsonOwnedByTheTuner) {
  const KilnTunerApi* api = kiln::tuner_table<ScriptedTuner>();
  KilnTuner* tuner = nullptr;
  ASSERT_EQ(take(api->create(host(), nullptr, &tuner)).first, 0);  // NULL config: "{}"
  EXPECT_EQ(ScriptedTuner::alive, 1);
  const char* json = nullptr;
  ASSERT_EQ(take(api->suggest(tuner, 2, &json)).first, 0);
  EXPECT_EQ(Json::parse(json), Json::parse(R"([{"trial": 0, "parameters": {"x": 0}},
                                              {"trial": 1, "parameters": {"x": 1}}])"));
  ASSERT_EQ(take(api->suggest(tuner, 5, &json)).first, 0);
  EXPECT_STREQ(json, R"([{"trial":2,"parameters":{"x": 2}}])");
  ASSERT_EQ(take(api->suggest(tuner, 5, &json)).first, 0);
  EXPECT_STREQ(json, "[]");  // exhausted
  api->destroy(tuner);
  EXPECT_EQ(ScriptedTuner::alive, 0);
  api->destroy(nullptr);  // a no-op
}

TEST(SdkTuner, ABrokenSuggestionIsAnInternalError) {
  const KilnTunerApi* api = kiln::tuner_table<ScriptedTuner>();
  for (const auto& [config, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"suggest": "too many"})", "suggest returned 3 trials, at most 2 were asked for"},
           {R"({"suggest": "negative"})", "suggest returned a negative trial id"},
           {R"({"suggest": "list"})", "suggest: the parameters of trial 0 are not a JSON object"}}) {
    KilnTuner* tuner = nullptr;
    ASSERT_EQ(take(api->create(host(), config.c_str(), &tuner)).first, 0);
    const char* json = nullptr;
    EXPECT_EQ(take(api->suggest(tuner, 2, &json)), std::make_pair(KILN_ERROR_INTERNAL, message)) << config;
    api->destroy(tuner);
  }
}

TEST(SdkTuner, ObserveDecodesTheStatusAndShouldStopAnswers) {
  const KilnTunerApi* api = kiln::tuner_table<ScriptedTuner>();
  KilnTuner* tuner = nullptr;
  ASSERT_EQ(take(api->create(host(), "{}", &tuner)).first, 0);
  EXPECT_EQ(take(api->observe(tuner, 0, 3, 0.25, 0, nullptr)).first, 0);
  EXPECT_EQ(take(api->observe(tuner, 0, -1, 0.5, 1, "\"succeeded\"")).first, 0);
  EXPECT_EQ(take(api->observe(tuner, 1, -1, std::nan(""), 1, "early-stopped")).first, 0);  // a bare word too
  EXPECT_EQ(take(api->observe(tuner, 2, 1, 1.0, 1, "\"failed\"")).first, 0);
  EXPECT_EQ(take(api->observe(tuner, 2, 1, 1.0, 1, "\"cancelled\"")),
            std::make_pair(KILN_ERROR_INVALID_ARGUMENT,
                           std::string("observe: status must be succeeded, failed or early-stopped, got 'cancelled'")));
  EXPECT_EQ(take(api->observe(tuner, 2, 1, 1.0, 1, nullptr)).first, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(take(api->observe(tuner, 99, 1, 1.0, 0, nullptr)),
            std::make_pair(KILN_ERROR_NOT_FOUND, std::string("no trial 99")));
  const auto& seen = scripted(tuner).observations;
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].status, kiln::TrialStatus::Running);
  EXPECT_FALSE(seen[0].is_final());
  EXPECT_EQ(seen[0].step, 3);
  EXPECT_EQ(seen[0].value, 0.25);
  EXPECT_EQ(seen[1].status, kiln::TrialStatus::Succeeded);
  EXPECT_EQ(seen[2].status, kiln::TrialStatus::EarlyStopped);
  EXPECT_TRUE(std::isnan(seen[2].value));
  EXPECT_EQ(seen[3].status, kiln::TrialStatus::Failed);

  int32_t stop = -1;
  EXPECT_EQ(take(api->should_stop(tuner, 1, &stop)).first, 0);
  EXPECT_EQ(stop, 1);
  EXPECT_EQ(take(api->should_stop(tuner, 0, &stop)).first, 0);
  EXPECT_EQ(stop, 0);
  EXPECT_EQ(take(api->should_stop(tuner, -4, &stop)),
            std::make_pair(KILN_ERROR_INTERNAL, std::string("uncaught exception: negative trial")));
  api->destroy(tuner);
}

namespace {

// A serving model that doubles FP32 input "x" into output "y". Its config
// text picks misbehaviour; `released` watches the lifetime of outputs.
class Doubler {
 public:
  static inline std::atomic<int> alive{0};
  static inline std::atomic<int> metadata_calls{0};

  static std::unique_ptr<Doubler> load(const std::filesystem::path& dir, const std::string& config) {
    if (config == "error") throw kiln::Error(dir.string() + ": no model here", KILN_ERROR_NOT_FOUND);
    if (config == "null") return nullptr;
    return std::make_unique<Doubler>(config);
  }
  explicit Doubler(std::string config) : config_(std::move(config)) { ++alive; }
  ~Doubler() { --alive; }
  Doubler(const Doubler&) = delete;
  Doubler& operator=(const Doubler&) = delete;

  std::string metadata() const {
    ++metadata_calls;
    return R"({"inputs": [{"name": "x"}], "outputs": [{"name": "y"}]})";
  }

  std::vector<kiln::Output> infer(const kiln::Inputs& inputs) {
    if (config_ == "empty") return {};
    const KilnTensor* x = inputs.find("x");
    if (x == nullptr) throw kiln::Error("input 'x' is missing", KILN_ERROR_INVALID_ARGUMENT);
    if (x->datatype != KILN_DT_FP32) throw std::runtime_error("not FP32");
    const size_t n = x->byte_size / sizeof(float);
    auto values = std::make_shared<std::vector<float>>(n);
    for (size_t i = 0; i < n; ++i) (*values)[i] = 2 * static_cast<const float*>(x->data)[i];
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      last_owner = values;
    }
    const std::vector<int64_t> shape(x->shape, x->shape + x->ndim);
    kiln::Output y{"y", KILN_DT_FP32, shape, values->data(), n * sizeof(float), values};
    if (config_ == "short") y.byte_size -= sizeof(float);
    std::vector<kiln::Output> out{std::move(y)};
    if (config_ == "copy") out.push_back(kiln::Output::copy_of("n", KILN_DT_INT64, {1}, &x->ndim, 0) /* bad size */);
    return out;
  }

  std::weak_ptr<const void> last_owner;  // of the latest call

 private:
  std::string config_;
  std::mutex mutex_;
};

struct Request {
  std::vector<float> data{1.5F, -2.0F, 4.0F};
  std::vector<int64_t> shape{1, 3};
  KilnTensor tensor{sizeof(KilnTensor), KILN_DT_FP32, "x", shape.data(), 2, 0, data.data(), 3 * sizeof(float)};
};

}  // namespace

TEST(SdkServing, LoadErrorsBecomeErrorValues) {
  const KilnServingApi* api = kiln::serving_table<Doubler>();
  EXPECT_EQ(api->struct_size, sizeof(KilnServingApi));
  KilnModel* model = nullptr;
  EXPECT_EQ(take(api->load(host(), "/nowhere", "error", &model)),
            std::make_pair(KILN_ERROR_NOT_FOUND, std::string("/nowhere: no model here")));
  EXPECT_EQ(take(api->load(host(), "/nowhere", "null", &model)),
            std::make_pair(KILN_ERROR_INTERNAL, std::string("load returned no model")));
  EXPECT_EQ(model, nullptr);
  EXPECT_EQ(Doubler::alive, 0);
}

TEST(SdkServing, OutputsLiveUntilReleasedAndTheModelUntilUnloaded) {
  const KilnServingApi* api = kiln::serving_table<Doubler>();
  KilnModel* model = nullptr;
  const int metadata_before = Doubler::metadata_calls;
  ASSERT_EQ(take(api->load(host(), "/m", nullptr, &model)).first, 0);
  EXPECT_EQ(Doubler::alive, 1);
  const char* metadata = nullptr;
  ASSERT_EQ(take(api->metadata(model, &metadata)).first, 0);
  EXPECT_EQ(Json::parse(metadata)["inputs"][0]["name"], "x");
  const char* again = nullptr;
  ASSERT_EQ(take(api->metadata(model, &again)).first, 0);
  EXPECT_EQ(again, metadata);                               // the same text, kept by the model
  EXPECT_EQ(Doubler::metadata_calls, metadata_before + 1);  // asked once, at load

  Request request;
  const KilnTensor* outputs = nullptr;
  uint32_t count = 0;
  ASSERT_EQ(take(api->infer(model, &request.tensor, 1, &outputs, &count)).first, 0);
  ASSERT_EQ(count, 1u);
  EXPECT_STREQ(outputs[0].name, "y");
  EXPECT_EQ(outputs[0].datatype, KILN_DT_FP32);
  EXPECT_EQ(std::vector<int64_t>(outputs[0].shape, outputs[0].shape + outputs[0].ndim), request.shape);
  ASSERT_EQ(outputs[0].byte_size, 3 * sizeof(float));
  const auto* y = static_cast<const float*>(outputs[0].data);
  EXPECT_EQ(std::vector<float>(y, y + 3), (std::vector<float>{3.0F, -4.0F, 8.0F}));
  const auto owner = kiln::detail::model_box<Doubler>(model)->model->last_owner;
  EXPECT_FALSE(owner.expired());  // kept for the host ...
  api->release_outputs(model, outputs, count);
  EXPECT_TRUE(owner.expired());             // ... until it hands them back
  api->release_outputs(model, nullptr, 0);  // a no-op
  api->unload(model);
  EXPECT_EQ(Doubler::alive, 0);
  api->unload(nullptr);  // a no-op
}

TEST(SdkServing, InferErrorsUseTheModelsHostTable) {
  const KilnServingApi* api = kiln::serving_table<Doubler>();
  Request request;
  const KilnTensor* outputs = nullptr;
  uint32_t count = 0;
  KilnModel* model = nullptr;
  ASSERT_EQ(take(api->load(host(), "/m", "{}", &model)).first, 0);
  request.tensor.name = "z";
  EXPECT_EQ(take(api->infer(model, &request.tensor, 1, &outputs, &count)),
            std::make_pair(KILN_ERROR_INVALID_ARGUMENT, std::string("input 'x' is missing")));
  request.tensor.name = "x";
  request.tensor.datatype = KILN_DT_INT32;
  EXPECT_EQ(take(api->infer(model, &request.tensor, 1, &outputs, &count)),
            std::make_pair(KILN_ERROR_INTERNAL, std::string("uncaught exception: not FP32")));
  EXPECT_EQ(take(api->infer(model, nullptr, 1, &outputs, &count)).first, KILN_ERROR_INVALID_ARGUMENT);
  api->unload(model);

  request.tensor.datatype = KILN_DT_FP32;
  for (const auto& [config, message] : std::vector<std::pair<std::string, std::string>>{
           {"short", "infer: output 'y' holds 8 bytes, its shape needs 12"},
           {"copy", "infer: output 'n' holds 0 bytes, its shape needs 8"}}) {
    ASSERT_EQ(take(api->load(host(), "/m", config.c_str(), &model)).first, 0);
    EXPECT_EQ(take(api->infer(model, &request.tensor, 1, &outputs, &count)),
              std::make_pair(KILN_ERROR_INTERNAL, message));
    EXPECT_TRUE(kiln::detail::model_box<Doubler>(model)->model->last_owner.expired()) << "nothing kept on failure";
    api->unload(model);
  }

  ASSERT_EQ(take(api->load(host(), "/m", "empty", &model)).first, 0);
  outputs = &request.tensor;
  ASSERT_EQ(take(api->infer(model, &request.tensor, 1, &outputs, &count)).first, 0);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(outputs, nullptr);
  api->release_outputs(model, outputs, count);
  api->unload(model);
  EXPECT_EQ(Doubler::alive, 0);
}

TEST(SdkServing, ConcurrentInferCallsKeepTheirOwnOutputs) {
  const KilnServingApi* api = kiln::serving_table<Doubler>();
  KilnModel* model = nullptr;
  ASSERT_EQ(take(api->load(host(), "/m", "{}", &model)).first, 0);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        Request request;
        request.data = {float(t), float(i), 1.0F};
        request.tensor.data = request.data.data();
        const KilnTensor* outputs = nullptr;
        uint32_t count = 0;
        KilnError* error = api->infer(model, &request.tensor, 1, &outputs, &count);
        if (error != nullptr || count != 1) {
          take(error);
          ++wrong;
          continue;
        }
        const auto* y = static_cast<const float*>(outputs[0].data);
        if (y[0] != float(2 * t) || y[1] != float(2 * i) || y[2] != 2.0F) ++wrong;
        api->release_outputs(model, outputs, count);
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_TRUE(kiln::detail::model_box<Doubler>(model)->batches.empty());
  api->unload(model);
}

TEST(SdkJson, QuoteEscapesWhatJsonRequires) {
  EXPECT_EQ(kiln::json_quote("plain"), "\"plain\"");
  EXPECT_EQ(kiln::json_quote("a\"b\\c\n\t\x01"), R"("a\"b\\c\n\t\u0001")");
  EXPECT_EQ(Json::parse(kiln::json_quote("caf\xc3\xa9 \x1f")), Json("caf\xc3\xa9 \x1f"));
}

// kiln/sdk/replica.hpp: the executor-neutral rank contract (docs/distributed.md).
TEST(Sdk, ReplicaIsReadFromTheRankVariables) {
  const kiln::Replica alone = kiln::parse_replica(nullptr, nullptr, nullptr);
  EXPECT_EQ(alone.rank, 0);
  EXPECT_EQ(alone.world_size, 1);
  EXPECT_FALSE(alone.distributed());
  const kiln::Replica r = kiln::parse_replica("1", "2", "node-7.cluster:29500");
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.world_size, 2);
  EXPECT_EQ(r.host, "node-7.cluster");
  EXPECT_EQ(r.port, 29500);
  EXPECT_TRUE(r.distributed());
  EXPECT_EQ(kiln::parse_replica("0", "1", nullptr).world_size, 1);  // one replica needs no rendezvous
}

TEST(Sdk, MalformedReplicaVariablesNameTheVariable) {
  const auto message = [](const char* rank, const char* world, const char* rendezvous) {
    try {
      kiln::parse_replica(rank, world, rendezvous);
    } catch (const kiln::Error& e) {
      EXPECT_EQ(e.code(), KILN_ERROR_INVALID_ARGUMENT);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("2", "2", "h:1"), "KILN_RANK must be an integer in [0, 1], not '2'");
  EXPECT_EQ(message("0", "0", "h:1"), "KILN_WORLD_SIZE must be an integer in [1, 256], not '0'");
  EXPECT_EQ(message("x", "2", "h:1"), "KILN_RANK must be an integer in [0, 1], not 'x'");
  EXPECT_EQ(message("1", "2", "h:1x"), "KILN_RENDEZVOUS's port must be an integer in [1, 65535], not '1x'");
  EXPECT_EQ(message("1", "2", "h:0"), "KILN_RENDEZVOUS's port must be an integer in [1, 65535], not '0'");
  EXPECT_EQ(message("1", "2", nullptr), "KILN_RENDEZVOUS must be HOST:PORT, not ''");
  EXPECT_EQ(message("1", "2", ":80"), "KILN_RENDEZVOUS must be HOST:PORT, not ':80'");
  EXPECT_EQ(message(nullptr, "2", "h:1"), "KILN_RANK and KILN_WORLD_SIZE must be set together");
  EXPECT_EQ(message("1", nullptr, nullptr), "KILN_RANK and KILN_WORLD_SIZE must be set together");
}

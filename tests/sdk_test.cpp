// The SDK through the real ABI: the util plugin loaded into this process,
// its components invoked through the host function table.
#include <gtest/gtest.h>
#include <kiln/host/invoke.hpp>
#include <kiln/host/plugin_library.hpp>

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
  invocation.parameters = Json{{"seconds", 60.0}};
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

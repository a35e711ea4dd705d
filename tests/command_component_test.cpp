// Component files (kind: Component, docs/command-components.md): the parser
// and its positioned errors, the report protocol, discovery beside plugins,
// runs with real commands (/bin/sh, Debian's /usr/bin/python3) under the
// process and in-process executors, cancellation of the whole group, and
// the cache rule (a script edit reruns the step, an unrelated edit does not).
#include <gtest/gtest.h>
#include <signal.h>
#include <kiln/host/command_runner.hpp>
#include <kiln/host/component_file.hpp>
#include <kiln/host/engine.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/spec.hpp>
#include <kiln/host/store.hpp>

#include <fstream>

#include "test_support.hpp"

using kiln::host::Json;
using kiln::test::TempDir;
using kiln::test::write_text;
namespace fs = std::filesystem;
namespace host = kiln::host;

namespace {

constexpr const char* kPython = "/usr/bin/python3";  // Debian's, whatever python3 is first on PATH

// samples/commands (a shell command, a Python script beside its component
// file, a plugin), copied where a test may edit it.
fs::path copy_sample(const TempDir& dir) {
  fs::copy(fs::path(KILN_TEST_SOURCE_DIR) / "samples" / "commands", dir / "commands", fs::copy_options::recursive);
  return dir / "commands";
}

std::vector<std::string> diagnostics_of(const std::string& text, const std::string& file = "c.yaml") {
  try {
    host::parse_component_text(text, file);
  } catch (const host::SpecError& e) {
    std::vector<std::string> out;
    for (const auto& d : e.diagnostics()) out.push_back(d.str());
    return out;
  }
  return {};
}

bool contains(const std::vector<std::string>& lines, const std::string& piece) {
  for (const auto& l : lines)
    if (l.find(piece) != std::string::npos) return true;
  return false;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  return all;
}

}  // namespace

TEST(ComponentFile, ReadsTheManifestAndBindsTheScriptBesideIt) {
  TempDir dir;
  const auto components = copy_sample(dir) / "components";
  const auto c = host::parse_component_file(components / "count.yaml");
  EXPECT_EQ(c.manifest.name, "sample.count-words");
  EXPECT_EQ(c.manifest.version.str(), "1.0.0");
  EXPECT_EQ(c.manifest.kind, "data");
  ASSERT_EQ(c.manifest.parameters.size(), 1u);
  EXPECT_EQ(c.manifest.parameters[0].default_value, Json(1));
  EXPECT_EQ(*c.manifest.parameters[0].max, 10);
  ASSERT_EQ(c.manifest.inputs.size(), 1u);
  EXPECT_EQ(c.manifest.inputs[0].type, "Text");
  EXPECT_EQ(c.manifest.output_parameters.at(0).type, "int");
  ASSERT_EQ(c.implementation.command.size(), 5u);
  EXPECT_EQ(c.implementation.command[1].text, fs::absolute(components / "count.py").lexically_normal().string())
      << "a literal argument naming a file beside the component is that file";
  ASSERT_EQ(c.implementation.files.size(), 1u);
  EXPECT_EQ(c.digest.size(), 64u);
  // The digest follows the script's content, not the file's times.
  const auto before = c.digest;
  const std::string script = kiln::test::read_text(components / "count.py");
  write_text(components / "count.py", script + "# edited\n");
  EXPECT_NE(host::parse_component_file(components / "count.yaml").digest, before);
  write_text(components / "count.py", script);
  EXPECT_EQ(host::parse_component_file(components / "count.yaml").digest, before);
  // A shell component: the script reads the environment.
  const auto greet = host::parse_component_file(components / "greet.yaml");
  ASSERT_TRUE(greet.implementation.shell);
  EXPECT_TRUE(greet.implementation.files.empty());
}

TEST(ComponentFile, EveryMistakeIsReportedAtItsLineAndColumn) {
  const auto problems = diagnostics_of(R"(apiVersion: kiln/v1
kind: Component
metadata:
  name: Bad_Name
  version: one
parameters:
  lr: {type: float, default: 5, max: 1}
  n: {type: integer}
inputs:
  data: {type: 3d}
outputs:
  model: {type: Model, optinal: true}
implementation:
  command: [/bin/echo, "--lr={{ params.lrr }}", "{{ outputs.model }}"]
  env: {KILN_X: a, "1bad": b}
  shell: echo hi
  colour: blue
)");
  const std::string all = joined(problems);
  EXPECT_TRUE(contains(problems, "c.yaml:4:9: 'metadata.name' must be lower-case")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:5:12: 'metadata.version' 'one' is not a semantic version")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:7:7: parameter 'lr'.default: 5 is above the maximum 1")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:8:6: parameter 'n'.type: must be one of")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:10:9: inputs 'data': type: '3d' is not an artifact type name")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:12:24: unknown key 'optinal' in outputs 'model' (did you mean 'optional'?)"))
      << all;
  EXPECT_TRUE(contains(problems, "c.yaml:14:33: unknown placeholder 'params.lrr' (use params.NAME")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:15:9: 'KILN_X': names starting with KILN_ are set by kiln")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:15:20: environment variable name '1bad' is not an identifier")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:16:10: 'implementation' has both 'command' and 'shell'")) << all;
  EXPECT_TRUE(contains(problems, "c.yaml:17:3: unknown key 'colour' in implementation")) << all;
}

TEST(ComponentFile, StructuralMistakesAndLimits) {
  EXPECT_TRUE(contains(diagnostics_of("apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: a.b, version: 1.0.0}\n"
                                      "implementation: {command: [/bin/true]}\n"),
                       "c.yaml:2:7: kind must be 'Component' here, not 'Pipeline'"));
  EXPECT_TRUE(contains(diagnostics_of("apiVersion: kiln/v1\nkind: Component\nmetadata: {name: a.b, version: 1.0.0}\n"),
                       "c.yaml:1:1: missing 'implementation'"));
  EXPECT_TRUE(contains(diagnostics_of("apiVersion: kiln/v1\nkind: Component\nmetadata: {name: a.b, version: 1.0.0}\n"
                                      "implementation: {shell: 'echo {{ params.x }}'}\n"),
                       "c.yaml:4:25: a shell script reads its values from the environment"));
  EXPECT_TRUE(contains(diagnostics_of("apiVersion: kiln/v1\nkind: Component\nmetadata: {name: a.b, version: 1.0.0}\n"
                                      "implementation: {command: [/bin/true, '{{ temp_dir']}\n"),
                       "c.yaml:4:40: '{{' without a closing '}}'"));
  EXPECT_TRUE(contains(diagnostics_of("apiVersion: kiln/v1\nkind: Component\nmetadata: {name: a.b, version: 1.0.0}\n"
                                      "implementation: {command: [/bin/true], files: [../secret, missing.py]}\n"),
                       "c.yaml:4:48: a 'files' entry must be a path inside this file's directory"));
  EXPECT_TRUE(contains(diagnostics_of("key: [unclosed\n"), ": YAML syntax error"));
  EXPECT_TRUE(contains(diagnostics_of(std::string(host::kMaxComponentFileBytes + 1, '#')),
                       "c.yaml:1:1: the component file is larger than 1048576 bytes"));
}

TEST(ReportProtocol, ReadsEachKindOfLineAgainstTheManifest) {
  TempDir dir;
  const auto manifest = host::parse_component_file(copy_sample(dir) / "components" / "count.yaml").manifest;
  std::map<std::string, int64_t> steps;
  const auto line = [&](const std::string& text) { return host::parse_report_line(text, manifest, steps); };
  const auto metric = line("metric loss 0.25 7");
  ASSERT_TRUE(metric.event) << metric.error;
  const auto& m = std::get<host::MetricEvent>(*metric.event);
  EXPECT_EQ(m.name, "loss");
  EXPECT_EQ(m.value, 0.25);
  EXPECT_EQ(m.step, 7);
  EXPECT_EQ(std::get<host::MetricEvent>(*line("metric loss 0.2").event).step, 8) << "a step-less metric counts on";
  EXPECT_EQ(std::get<host::MetricEvent>(*line("metric acc 1e-3\r").event).step, 0);
  const auto progress = std::get<host::ProgressEvent>(*line("progress 0.5   half way there").event);
  EXPECT_EQ(progress.fraction, 0.5);
  EXPECT_EQ(progress.message, "half way there");
  EXPECT_EQ(std::get<host::OutputParameterEvent>(*line("output words 42").event).value, Json(42));
  EXPECT_EQ(std::get<host::LogEvent>(*line("log warning careful now").event).message, "careful now");
  EXPECT_FALSE(line("").event);
  EXPECT_TRUE(line("# a comment").error.empty());
  EXPECT_NE(line("output words many").error.find("must be a int"), std::string::npos);
  EXPECT_NE(line("output nope 1").error.find("declares no output parameter 'nope'"), std::string::npos);
  EXPECT_NE(line("metric loss nan").error.find("not a number"), std::string::npos);
  EXPECT_NE(line("metric loss 1 -2").error.find("whole number"), std::string::npos);
  EXPECT_NE(line("progress 1.5").error.find("from 0 to 1"), std::string::npos);
  EXPECT_NE(line("log loud x").error.find("debug|info|warning|error"), std::string::npos);
  EXPECT_NE(line("result ok").error.find("unknown report 'result'"), std::string::npos);
}

TEST(ComponentDiscovery, ComponentFilesOnTheSearchPathAreListedBesidePlugins) {
  TempDir plugins, cache;
  fs::copy_file(kiln::test::util_plugin(), plugins / "kiln_util.so");
  for (const char* f : {"count.yaml", "count.py", "greet.yaml"})
    fs::copy_file(fs::path(KILN_TEST_SOURCE_DIR) / "samples" / "commands" / "components" / f, plugins / f);
  write_text(plugins / "broken.yml", "apiVersion: kiln/v1\nkind: Component\nmetadata: {name: x.y}\n");
  const std::vector<std::pair<std::string, std::string>> env{{"KILN_PLUGIN_PATH", plugins.path().string()},
                                                             {"KILN_CACHE_DIR", cache.path().string()}};
  const auto list = kiln::test::run_kiln({"plugins", "list", "--json"}, env);
  ASSERT_EQ(list.status.code, 0) << list.output;
  const Json catalog = Json::parse(list.output);
  bool found = false;
  for (const auto& c : catalog["components"])
    if (c["name"] == "sample.count-words") {
      found = true;
      EXPECT_EQ(c["implementation"], "command");
      EXPECT_EQ(c["version"], "1.0.0");
    }
  EXPECT_TRUE(found) << list.output;
  bool broken_reported = false;
  for (const auto& l : catalog["libraries"])
    if (l["path"].get<std::string>().find("broken.yml") != std::string::npos) {
      broken_reported = true;
      EXPECT_EQ(l["status"], "error");
      EXPECT_NE(l["reason"].get<std::string>().find("broken.yml:3:11: missing 'metadata.version'"), std::string::npos)
          << l.dump();
    }
  EXPECT_TRUE(broken_reported) << list.output;
  const auto describe = kiln::test::run_kiln({"plugins", "describe", "sample.count-words"}, env);
  EXPECT_EQ(describe.status.code, 0) << describe.output;
  EXPECT_NE(describe.output.find("component file: "), std::string::npos) << describe.output;
  EXPECT_NE(describe.output.find("scale (int, default 1, min 1, max 10): multiplies"), std::string::npos) << describe.output;
  const auto bad = kiln::test::run_kiln({"plugins", "describe", (plugins / "broken.yml").string()}, env);
  EXPECT_NE(bad.status.code, 0);
  EXPECT_NE(bad.output.find("broken.yml:3:11: missing 'metadata.version'"), std::string::npos) << bad.output;
}

namespace {

// Runs a pipeline file (its component files beside it) with the built
// util plugin, optionally in a store workspace (caching).
struct PipelineRun {
  Json record;
  std::vector<Json> events;
  fs::path run_dir;
};

PipelineRun run_pipeline(const fs::path& file, const std::string& executor, host::Store* store = nullptr,
                         std::function<void(const Json&, host::Engine&)> on_event = {},
                         const Json& overrides = Json::object()) {
  static int runs = 0;
  const auto plan =
      host::plan_pipeline(host::parse_pipeline_file(file.string()), kiln::test::util_catalog(), overrides);
  PipelineRun result;
  host::RunOptions options;
  options.executor = executor;
  options.run_id = "run-" + std::to_string(++runs);
  options.run_dir = file.parent_path() / "runs" / options.run_id;
  options.grace_seconds = 1;
  options.store = store;
  options.spec_text = kiln::test::read_text(file);
  result.run_dir = options.run_dir;
  host::Engine* engine = nullptr;
  kiln::test::JsonEventObserver observer([&](const Json& event) {
    result.events.push_back(event);
    if (on_event) on_event(event, *engine);
  });
  options.observers.push_back(&observer);
  std::map<std::string, std::unique_ptr<host::Executor>> executors;
  executors["inprocess"] = host::make_inprocess_executor();
  executors["process"] = host::make_process_executor(kiln::test::kiln_exe());
  if (kiln::test::read_text(file).find("executor: container") != std::string::npos)
    executors["container"] = host::make_container_executor(kiln::test::kiln_exe(), file.parent_path() / "state");
  host::Engine run(plan, options, std::move(executors));
  engine = &run;
  result.record = run.run();
  return result;
}

}  // namespace

class CommandRun : public ::testing::TestWithParam<std::string> {};

namespace {

// samples/commands/mixed.yaml under `executor` (or its Python step alone
// in a container): every step's outputs, live metrics and progress, the script's log.
void check_mixed_sample(const std::string& executor, bool count_in_container = false) {
  TempDir dir;
  const auto sample = copy_sample(dir);
  if (count_in_container) {
    std::string text = kiln::test::read_text(sample / "mixed.yaml");
    const std::string anchor = "    inputs: {text: greet.outputs.greeting}\n";
    text.replace(text.find(anchor), anchor.size(), anchor + "    executor: container\n");
    write_text(sample / "mixed.yaml", text);
  }
  const auto run = run_pipeline(sample / "mixed.yaml", executor);
  ASSERT_EQ(run.record["status"], "succeeded") << run.record.dump(2);
  EXPECT_EQ(run.record["steps"]["greet"]["outputs"]["words"], 4);
  EXPECT_EQ(run.record["steps"]["tell"]["outputs"]["message"], "4 words") << run.record["steps"].dump(2);
  std::map<std::string, std::vector<double>> metrics, progress;
  bool logged = false;
  for (const auto& e : run.events) {
    const std::string step = e.value("step", "");
    if (e["type"] == "metric") metrics[step + "." + e["name"].get<std::string>()].push_back(e["value"].get<double>());
    if (e["type"] == "progress") progress[step].push_back(e["fraction"].get<double>());
    if (e["type"] == "log" && e.value("message", "") == "counted 2 lines") logged = true;
  }
  EXPECT_EQ(metrics["count.words_so_far"], (std::vector<double>{2, 4}));
  EXPECT_EQ(metrics["greet.greetings"], (std::vector<double>{2}));
  EXPECT_EQ(progress["count"], (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(progress["greet"], (std::vector<double>{0.5, 1.0}));
  EXPECT_TRUE(logged);
  // The script's stdout is the attempt's log.
  EXPECT_EQ(kiln::test::read_text(run.run_dir / "steps" / "count" / "attempt-1" / "stdout.log"), "counted 4\n");
  EXPECT_EQ(kiln::test::read_text(run.run_dir / "steps" / "greet" / "attempt-1" / "outputs" / "greeting" /
                                  "greeting.txt"),
            "Hello, kiln!\nHello, kiln!\n");
}

}  // namespace

TEST_P(CommandRun, AShellCommandAndAPythonScriptBetweenPluginsReportLive) {
  if (!fs::exists(kPython)) KILN_TEST_SKIP("no " << kPython << " (Debian's python3)");
  check_mixed_sample(GetParam());
}

// python/kiln_report.py, which kiln puts on every command's PYTHONPATH:
// metrics, progress, log lines and output parameters through the helper,
// and what the protocol cannot carry refused in Python (ValueError) rather
// than sent as a line kiln would warn about.
namespace {

void check_python_helper(const std::string& executor, bool in_container) {
  TempDir temp;
  const fs::path dir = temp / "helper";  // mode 0755, as a container's user needs
  fs::create_directories(dir);
  write_text(dir / "train.yaml",
             "apiVersion: kiln/v1\nkind: Component\nmetadata: {name: t.train, version: 1.0.0}\n"
             "parameters:\n  epochs: {type: int, default: 4}\n  tag: {type: string, default: 'a b'}\n"
             "outputs:\n  model: {type: Text}\n"
             "output_parameters:\n  best: {type: float}\n  summary: {type: string}\n"
             "  sizes: {type: list}\n  refused: {type: int}\n"
             "implementation:\n  command: [/usr/bin/python3, train.py]\n");
  write_text(dir / "train.py", R"(import os
import kiln_report as kiln

epochs = kiln.param("epochs", int)
for epoch in range(epochs):
    kiln.metric("loss", 1.0 / (epoch + 1), step=epoch)
    kiln.metric("lr", 0.5 ** epoch)
    kiln.progress(epoch + 1, f"epoch {epoch + 1}", total=epochs)
kiln.warning("two\nlines")
with open(os.path.join(kiln.output_dir("model"), "model.txt"), "w") as out:
    out.write(kiln.param("tag"))
kiln.output("best", 1.0 / epochs)
kiln.output("summary", f"{epochs} epochs of {kiln.param('tag')}")
kiln.output("sizes", [epochs, 2])
refused = 0
for bad in (lambda: kiln.metric("nan", float("nan")), lambda: kiln.metric("two words", 1),
            lambda: kiln.metric("m", 1, step=-1), lambda: kiln.output("summary", "a\nb"),
            lambda: kiln.log("loud", "x"), lambda: kiln.progress(3, total=2)):
    try:
        bad()
    except ValueError:
        refused += 1
kiln.output("refused", refused)
)");
  write_text(dir / "p.yaml",
             "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: helper}\nsteps:\n"
             "  - {name: s, component: ./train.yaml, parameters: {epochs: 3}" +
                 std::string(in_container ? ", executor: container" : "") + "}\n");
  const auto run = run_pipeline(dir / "p.yaml", executor);
  ASSERT_EQ(run.record["status"], "succeeded") << run.record.dump(2);
  const Json& outputs = run.record["steps"]["s"]["outputs"];
  EXPECT_DOUBLE_EQ(outputs["best"].get<double>(), 1.0 / 3);
  EXPECT_EQ(outputs["summary"], "3 epochs of a b");
  EXPECT_EQ(outputs["sizes"], Json({3, 2}));
  EXPECT_EQ(outputs["refused"], 6);
  std::map<std::string, std::vector<double>> metrics, steps;
  std::vector<double> progress;
  std::vector<std::string> warnings;
  for (const auto& e : run.events) {
    if (e["type"] == "metric") {
      metrics[e["name"].get<std::string>()].push_back(e["value"].get<double>());
      steps[e["name"].get<std::string>()].push_back(e["at"].get<double>());
    }
    if (e["type"] == "progress") progress.push_back(e["fraction"].get<double>());
    if (e["type"] == "log" && e.value("level", "") == "warning") warnings.push_back(e.value("message", ""));
  }
  EXPECT_EQ(metrics["loss"], (std::vector<double>{1.0, 0.5, 1.0 / 3}));
  EXPECT_EQ(metrics["lr"], (std::vector<double>{1.0, 0.5, 0.25}));
  EXPECT_EQ(steps["lr"], (std::vector<double>{0, 1, 2})) << "no step given: the previous + 1";
  EXPECT_EQ(progress, (std::vector<double>{1.0 / 3, 2.0 / 3, 1.0}));
  EXPECT_EQ(warnings, std::vector<std::string>{"two lines"}) << "and no line kiln refused";
  EXPECT_EQ(kiln::test::read_text(run.run_dir / "steps" / "s" / "attempt-1" / "outputs" / "model" / "model.txt"),
            "a b");
}

}  // namespace

TEST_P(CommandRun, APythonScriptReportsThroughTheHelper) {
  if (!fs::exists(kPython)) KILN_TEST_SKIP("no " << kPython << " (Debian's python3)");
  check_python_helper(GetParam(), false);
}

TEST(CommandContainer, APythonScriptInAContainerReportsThroughTheHelper) {
  if (const auto why = kiln::test::cannot_run_containers(); !why.empty()) KILN_TEST_SKIP(why);
  if (!fs::exists(kPython)) KILN_TEST_SKIP("no " << kPython << " (Debian's python3)");
  check_python_helper("process", true);
}

TEST(CommandContainer, ThePythonStepOfTheMixedSampleRunsInAContainer) {
  if (const auto why = kiln::test::cannot_run_containers(); !why.empty()) KILN_TEST_SKIP(why);
  if (!fs::exists(kPython)) KILN_TEST_SKIP("no " << kPython << " (Debian's python3)");
  check_mixed_sample("process", true);
}

namespace {

// A one-step pipeline around a component file with `implementation` as given.
fs::path one_step(const TempDir& dir, const std::string& implementation, const std::string& step_fields = "") {
  write_text(dir / "c.yaml", "apiVersion: kiln/v1\nkind: Component\nmetadata: {name: t.cmd, version: 1.0.0}\n"
                             "output_parameters: {}\nimplementation:\n" +
                                 implementation);
  write_text(dir / "p.yaml", "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: one}\nsteps:\n"
                             "  - name: s\n    component: ./c.yaml\n" +
                                 step_fields);
  return dir / "p.yaml";
}

std::string message_of(const PipelineRun& run) {
  return run.record["steps"]["s"].value("message", "");
}

}  // namespace

TEST(CommandFailures, ExitStatusesAndMissingProgramsAreClearFailures) {
  TempDir a, b, c;
  const auto exit3 = run_pipeline(one_step(a, "  shell: 'echo oops >&2; exit 3'\n"), "process");
  EXPECT_EQ(exit3.record["steps"]["s"]["status"], "failed");
  EXPECT_NE(message_of(exit3).find("command 'sh' exited with status 3 (see stderr.log)"), std::string::npos)
      << exit3.record.dump(2);
  EXPECT_EQ(kiln::test::read_text(exit3.run_dir / "steps" / "s" / "attempt-1" / "stderr.log"), "oops\n");
  const auto missing = run_pipeline(one_step(b, "  command: [no-such-program-kiln]\n"), "process");
  EXPECT_NE(message_of(missing).find("program 'no-such-program-kiln' is not on PATH"), std::string::npos)
      << missing.record.dump(2);
  // A retried step: the first attempt fails, the second finds its marker.
  const auto flaky = run_pipeline(
      one_step(c, "  shell: 'test -e \"$KILN_CHECKPOINT_DIR/tried\" || { touch \"$KILN_CHECKPOINT_DIR/tried\"; exit 1; }'\n",
               "    retries: {limit: 1, backoff: 0s}\n"),
      "process");
  EXPECT_EQ(flaky.record["steps"]["s"]["status"], "succeeded") << flaky.record.dump(2);
  EXPECT_EQ(flaky.record["steps"]["s"]["attempts"].size(), 2u);
}

TEST_P(CommandRun, CancelStopsTheCommandAndEverythingItStarted) {
  TempDir dir;
  // The command leaves a grandchild (sleep) and says where it is.
  const auto pid_file = dir / "sleep.pid";
  const auto file = one_step(dir,
                             "  shell: 'sleep 60 & echo $! > \"$PID_FILE\"; "
                             "echo \"progress 0.5 started\" >> \"$KILN_REPORT\"; wait'\n"
                             "  env: {PID_FILE: '" + pid_file.string() + "'}\n");
  const auto run = run_pipeline(file, GetParam(), nullptr, [](const Json& event, host::Engine& engine) {
    if (event["type"] == "progress") engine.request_cancel();
  });
  EXPECT_EQ(run.record["status"], "cancelled") << run.record.dump(2);
  ASSERT_TRUE(fs::exists(pid_file));
  const pid_t sleeper = std::stoi(kiln::test::read_text(pid_file));
  EXPECT_TRUE(kiln::test::poll_until([&] { return kiln::test::process_ended(sleeper); }))
      << "the command's child " << sleeper << " outlived the cancel";
}

TEST(CommandCache, AScriptEditRerunsTheStepAndAnUnrelatedEditDoesNot) {
  if (!fs::exists(kPython)) KILN_TEST_SKIP("no " << kPython << " (Debian's python3)");
  TempDir dir;
  const auto sample = copy_sample(dir);
  write_text(sample / "components" / "notes.txt", "unrelated\n");
  host::Store store(dir / "ws");
  const auto cache_of = [](const PipelineRun& run) {
    return run.record["steps"]["count"]["cache"].value("status", "");
  };
  const auto run = [&](const Json& overrides = Json::object()) {
    return run_pipeline(sample / "mixed.yaml", "process", &store, {}, overrides);
  };
  const auto first = run();
  ASSERT_EQ(first.record["status"], "succeeded") << first.record.dump(2);
  EXPECT_EQ(cache_of(first), "miss");
  EXPECT_EQ(cache_of(run()), "hit");
  write_text(sample / "components" / "notes.txt", "still unrelated\n");
  write_text(sample / "components" / "greet.yaml",
             kiln::test::read_text(sample / "components" / "greet.yaml") + "# another component's comment\n");
  const auto unrelated = run();
  EXPECT_EQ(cache_of(unrelated), "hit") << unrelated.record["steps"]["count"].dump(2);
  EXPECT_EQ(unrelated.record["steps"]["greet"]["cache"].value("status", ""), "miss") << "its own file changed";
  write_text(sample / "components" / "count.py",
             kiln::test::read_text(sample / "components" / "count.py") + "# a comment changes the script\n");
  const auto edited = run();
  EXPECT_EQ(cache_of(edited), "miss") << edited.record["steps"]["count"].dump(2);
  EXPECT_EQ(edited.record["steps"]["count"]["cache"].value("reason", ""), "file 'count.py' changed")
      << edited.record["steps"]["count"].dump(2);
  EXPECT_EQ(cache_of(run()), "hit");
  write_text(sample / "components" / "count.yaml",
             kiln::test::read_text(sample / "components" / "count.yaml") + "# a comment changes the component\n");
  const auto described = run();
  EXPECT_EQ(cache_of(described), "miss");
  EXPECT_EQ(described.record["steps"]["count"]["cache"].value("reason", ""), "component file 'count.yaml' changed")
      << described.record["steps"]["count"].dump(2);
  // A parameter the command reads is part of the key too.
  const auto rescaled = run(Json{{"scale", 3}});
  EXPECT_EQ(cache_of(rescaled), "miss");
  EXPECT_EQ(rescaled.record["steps"]["tell"]["outputs"]["message"], "12 words");
}

INSTANTIATE_TEST_SUITE_P(Executors, CommandRun, ::testing::Values("process", "inprocess"));

// The engine end to end with the util plugin: control flow, each failure
// mode under the process executor, retries, timeouts, cancellation.
#include <gtest/gtest.h>
#include <kiln/host/engine.hpp>
#include <kiln/host/spec.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "test_support.hpp"

using kiln::host::Json;
using kiln::test::TempDir;
namespace fs = std::filesystem;

namespace {

struct RunResult {
  Json record;
  fs::path dir;
  std::vector<Json> events;
  const Json& step(const std::string& name) const { return record["steps"][name]; }
  std::string status(const std::string& name) const { return step(name).value("status", ""); }
};

struct RunSettings {
  std::string executor = "process";
  int jobs = 2;
  double grace = 0.5;
  Json overrides = Json::object();
  // Called from the engine thread on every event (docs/events.md); may ask to cancel.
  std::function<void(const Json&, kiln::host::Engine&)> on_event;
  std::vector<int> gpus{};  // the run's GPU pool (a fake one: none is touched)
};

class EngineTest : public ::testing::Test {
 protected:
  RunResult run(const std::string& steps_yaml, RunSettings settings = {}) {
    const std::string yaml = "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n" + steps_yaml;
    auto plan = kiln::host::plan_pipeline(kiln::host::parse_pipeline_text(yaml, "t.yaml"), kiln::test::util_catalog(),
                                          settings.overrides);
    RunResult result;
    result.dir = workspace / ("run-" + std::to_string(++runs_));
    kiln::host::RunOptions options;
    options.executor = settings.executor;
    options.jobs = settings.jobs;
    options.run_dir = result.dir;
    options.run_id = result.dir.filename().string();
    options.grace_seconds = settings.grace;
    options.gpus = {settings.gpus, "the test's pool"};
    kiln::host::Engine* engine_ptr = nullptr;
    kiln::test::JsonEventObserver observer([&](const Json& event) {
      result.events.push_back(event);
      if (settings.on_event) settings.on_event(event, *engine_ptr);
    });
    options.observers.push_back(&observer);
    std::map<std::string, std::unique_ptr<kiln::host::Executor>> executors;
    executors["inprocess"] = kiln::host::make_inprocess_executor();
    executors["process"] = kiln::host::make_process_executor(kiln::test::kiln_exe());
    kiln::host::Engine engine(plan, options, std::move(executors));
    engine_ptr = &engine;
    result.record = engine.run();
    // run.json on disk is the same record the engine returned.
    EXPECT_EQ(Json::parse(kiln::test::read_text(result.dir / "run.json")), result.record);
    return result;
  }

  std::string counter() { return (workspace / ("counter-" + std::to_string(++counters_))).string(); }

  TempDir workspace;

 private:
  int runs_ = 0, counters_ = 0;
};

const Json& last_attempt(const Json& step) {
  return step["attempts"].back();
}

}  // namespace

TEST_F(EngineTest, RunsADagAndWiresArtifactsAndOutputParameters) {
  const auto r = run(R"(
steps:
  - name: first
    component: util.echo
    parameters: {message: one}
  - name: second
    component: util.echo
    parameters: {message: "two after {{ steps.first.outputs.message }}"}
    inputs: {text: first.outputs.text}
)");
  EXPECT_EQ(r.record["status"], "succeeded");
  EXPECT_EQ(r.step("second")["outputs"]["message"], "one\ntwo after one");
  const fs::path artifact = r.dir / r.step("second")["artifacts"]["text"].get<std::string>() / "message.txt";
  EXPECT_EQ(kiln::test::read_text(artifact), "one\ntwo after one");
  EXPECT_EQ(r.step("second")["artifact_metadata"]["text"]["length"], std::string("one\ntwo after one").size());
  EXPECT_EQ(last_attempt(r.step("first"))["executor"], "process");
}

TEST_F(EngineTest, PipelineDirNamesTheDirectoryOfThePipelineFile) {
  const auto r = run(R"(
steps:
  - name: where
    component: util.echo
    parameters: {message: "{{ pipeline.dir }}/data.csv"}
)");
  // The text pipeline is "t.yaml" in the current directory.
  EXPECT_EQ(r.step("where")["outputs"]["message"], (fs::current_path() / "data.csv").lexically_normal().string());
}

// The process executor hands a step its request through the step server's
// start message (no request.json); one too big for a message goes by file.
TEST_F(EngineTest, AProcessStepGetsItsRequestInlineOrByFileWhenItIsBig) {
  RunSettings settings;
  const std::string big(40 * 1024, 'x');
  settings.overrides = {{"big", big}};
  const auto r = run(R"(
parameters:
  big: {type: string}
steps:
  - {name: small, component: util.echo, parameters: {message: hello}}
  - {name: large, component: util.echo, parameters: {message: "{{ params.big }}"}}
)",
                     settings);
  ASSERT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
  EXPECT_EQ(r.step("small")["outputs"]["message"], "hello");
  EXPECT_EQ(r.step("large")["outputs"]["message"], big);
  EXPECT_TRUE(fs::is_directory(r.dir / "steps/small/attempt-1"));
  EXPECT_FALSE(fs::exists(r.dir / "steps/small/attempt-1/request.json"));
  EXPECT_TRUE(fs::exists(r.dir / "steps/large/attempt-1/request.json"));
}

// A step given GPUs sees only those (CUDA_VISIBLE_DEVICES) and runs in a
// fresh `kiln step` (exec'd, not a fork of the step server: CUDA cannot be
// used in a child forked after its parent touched it); a CPU step sees no
// GPU and keeps the warm fork. Timeouts still stop and kill a fresh runner.
// The pool is faked: nothing here touches a GPU.
TEST_F(EngineTest, AProcessStepWithGpusRunsInAFreshRunnerAndSeesOnlyItsGpus) {
  RunSettings settings;
  settings.gpus = {0, 1, 2, 3};
  settings.jobs = 5;
  const auto r = run(R"(
steps:
  - {name: gpu, component: util.probe, resources: {gpus: 2}}
  - {name: cpu, component: util.probe}
  - {name: slow, component: util.sleep, parameters: {seconds: 60}, timeout: 1s, resources: {gpus: 1}}
  - {name: stuck, component: util.fail, parameters: {mode: hang}, timeout: 1s, resources: {gpus: 1}}
)",
                     settings);
  const std::string fresh = kiln::test::kiln_exe().string() + " step --request ";
  const Json& gpu = r.step("gpu")["outputs"];
  EXPECT_EQ(gpu["cuda_visible_devices"], "0,1");
  EXPECT_EQ(gpu["command"].get<std::string>().rfind(fresh, 0), 0u) << gpu["command"];
  EXPECT_EQ(last_attempt(r.step("gpu"))["gpus"], Json::array({0, 1}));
  const Json& cpu = r.step("cpu")["outputs"];
  EXPECT_EQ(cpu["cuda_visible_devices"], "");
  EXPECT_EQ(cpu["command"].get<std::string>().find(" step --request "), std::string::npos) << cpu["command"];
  EXPECT_NE(cpu["command"].get<std::string>().find("step-server"), std::string::npos) << cpu["command"];
  EXPECT_FALSE(last_attempt(r.step("cpu")).contains("gpus"));
  // The fresh runners got SIGTERM at their timeout; the one that ignores it was killed.
  for (const char* name : {"slow", "stuck"}) {
    EXPECT_EQ(r.status(name), "failed") << name;
    EXPECT_EQ(last_attempt(r.step(name))["failure"], "timeout") << r.step(name).dump();
  }
  std::set<int> given;
  for (const char* name : {"slow", "stuck"})
    for (const auto& id : last_attempt(r.step(name))["gpus"]) given.insert(id.get<int>());
  EXPECT_EQ(given, (std::set<int>{2, 3}));
}

// Cancelling a run reaches a step's fresh runner: SIGTERM to its process
// group, then the kill after the grace period for one that ignores it.
TEST_F(EngineTest, CancellingARunStopsItsFreshGpuRunners) {
  RunSettings settings;
  settings.gpus = {0, 1};
  settings.on_event = [started = 0](const Json& event, kiln::host::Engine& engine) mutable {
    if (event["type"] == "attempt_started" && ++started == 2) engine.request_cancel();
  };
  const auto r = run(R"(
steps:
  - {name: sleeper, component: util.sleep, parameters: {seconds: 60}, resources: {gpus: 1}}
  - {name: stubborn, component: util.fail, parameters: {mode: hang}, resources: {gpus: 1}}
)",
                     settings);
  EXPECT_EQ(r.record["status"], "cancelled") << r.record.dump(2);
  for (const char* name : {"sleeper", "stubborn"}) {
    EXPECT_EQ(r.status(name), "cancelled") << r.step(name).dump();
    EXPECT_EQ(last_attempt(r.step(name))["gpus"].size(), 1u);
  }
}

// An inprocess step that writes nothing makes no directory: its attempt's
// record still names where its files would be.
TEST_F(EngineTest, AnInprocessStepThatWritesNothingMakesNoDirectory) {
  RunSettings settings;
  settings.executor = "inprocess";
  const auto r = run(R"(
steps:
  - {name: silent, component: util.noop}
  - {name: talks, component: util.echo, parameters: {message: hi}}
)",
                     settings);
  ASSERT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
  EXPECT_EQ(r.step("silent")["attempts"][0]["dir"], "steps/silent/attempt-1");
  EXPECT_FALSE(fs::exists(r.dir / "steps/silent"));
  EXPECT_TRUE(fs::exists(r.dir / "steps/talks/attempt-1/events.jsonl"));  // its log line
}

TEST_F(EngineTest, ConditionsSkipStepsAndWhatNeedsTheirData) {
  const auto r = run(R"(
parameters:
  mode: {type: string, default: quick}
steps:
  - name: thorough
    component: util.echo
    when: params.mode == 'thorough'
  - name: needs-data
    component: util.echo
    inputs: {text: thorough.outputs.text}
  - name: only-after
    component: util.noop
    after: [thorough]
  - name: quick
    component: util.noop
    when: params.mode == 'quick' and not (params.mode in ['slow'])
)");
  EXPECT_EQ(r.record["status"], "succeeded");
  EXPECT_EQ(r.status("thorough"), "skipped");
  EXPECT_EQ(r.status("needs-data"), "skipped");
  EXPECT_EQ(r.status("only-after"), "succeeded");  // ordering only: a skipped step satisfies it
  EXPECT_EQ(r.status("quick"), "succeeded");
}

TEST_F(EngineTest, LoopsFanOutWithAParallelismLimitAndCollectOutputs) {
  int running = 0, peak = 0;
  RunSettings settings;
  settings.jobs = 4;
  settings.executor = "inprocess";
  settings.on_event = [&](const Json& e, kiln::host::Engine&) {
    if (e.value("unit", "").rfind("loop[", 0) != 0) return;
    if (e["type"] == "attempt_started") peak = std::max(peak, ++running);
    if (e["type"] == "unit_finished" && e["status"] == "succeeded") --running;
  };
  const auto r = run(R"(
parameters:
  names: {type: list, default: [a, b, c, d, e]}
steps:
  - name: loop
    component: util.sleep
    for_each: "{{ params.names }}"
    parallelism: 2
    parameters: {seconds: 0.05}
  - name: echo-each
    component: util.echo
    for_each: "{{ params.names }}"
    parameters: {message: "hi {{ item }}"}
  - name: again
    component: util.echo
    for_each: "{{ steps.echo-each.outputs.message }}"
    parameters: {message: "{{ item }}!"}
)",
                     settings);
  EXPECT_EQ(r.record["status"], "succeeded");
  EXPECT_EQ(peak, 2);
  EXPECT_EQ(r.step("loop")["items"], 5);
  EXPECT_EQ(r.step("echo-each")["outputs"]["message"], Json({"hi a", "hi b", "hi c", "hi d", "hi e"}));
  EXPECT_EQ(r.step("again")["outputs"]["message"], Json({"hi a!", "hi b!", "hi c!", "hi d!", "hi e!"}));
}

TEST_F(EngineTest, LoopArtifactsAreCollectedPerItem) {
  const auto r = run(R"(
steps:
  - name: each
    component: util.echo
    for_each: [x, y]
    parameters: {message: "{{ item }}"}
  - name: after-loop
    component: util.noop
    after: [each]
)");
  ASSERT_EQ(r.record["status"], "succeeded");
  const fs::path collected = r.dir / "steps/each/collected/text";
  EXPECT_EQ(kiln::test::read_text(collected / "0/message.txt"), "x");
  EXPECT_EQ(kiln::test::read_text(collected / "1/message.txt"), "y");
}

TEST_F(EngineTest, EveryFailureModeFailsOnlyItsStepUnderTheProcessExecutor) {
  const auto r = run(R"(
options: {failure_policy: continue}
steps:
  - {name: error, component: util.fail, parameters: {mode: error, message: bad input}}
  - {name: throw, component: util.fail, parameters: {mode: throw, message: boom}}
  - {name: segfault, component: util.fail, parameters: {mode: segfault}}
  - {name: abort, component: util.fail, parameters: {mode: abort}}
  - {name: oom-killed, component: util.fail, parameters: {mode: kill}}
  - {name: exit, component: util.fail, parameters: {mode: exit, exit_code: 7}}
  - {name: hang, component: util.fail, parameters: {mode: hang}, timeout: 300ms}
  - {name: fine, component: util.echo}
  - {name: downstream, component: util.noop, after: [segfault]}
)",
                     RunSettings{"process", 4, 0.3, Json::object(), {}});
  EXPECT_EQ(r.record["status"], "failed");
  EXPECT_EQ(r.status("fine"), "succeeded");
  EXPECT_EQ(r.status("downstream"), "upstream-failed");
  const auto failure = [&](const std::string& step) { return last_attempt(r.step(step)); };
  EXPECT_EQ(failure("error")["failure"], "error");
  EXPECT_EQ(failure("error")["message"], "bad input");
  EXPECT_EQ(failure("throw")["failure"], "error");
  EXPECT_EQ(failure("throw")["message"], "uncaught exception: boom");
  for (const auto& [step, signal] :
       {std::pair{"segfault", "SIGSEGV"}, std::pair{"abort", "SIGABRT"}, std::pair{"oom-killed", "SIGKILL"}}) {
    EXPECT_EQ(failure(step)["failure"], "crash") << step;
    EXPECT_NE(failure(step)["message"].get<std::string>().find(std::string("killed by signal ") + signal),
              std::string::npos)
        << failure(step)["message"];
  }
  EXPECT_EQ(failure("exit")["failure"], "crash");
  EXPECT_NE(failure("exit")["message"].get<std::string>().find("exited with status 7"), std::string::npos);
  EXPECT_EQ(failure("hang")["failure"], "timeout");
  EXPECT_EQ(r.status("hang"), "failed");
}

// distributed: {replicas: N} under the process executor (docs/distributed.md):
// util.fail's `rank` makes one rank fail while the others wait until stopped,
// so this run ends only if the group stops the waiting ranks.
TEST_F(EngineTest, ADistributedStepFailsAsSoonAsOneRankFailsNamingIt) {
  const auto r = run(R"(
options: {failure_policy: continue}
steps:
  - {name: exit, component: util.fail, parameters: {mode: exit, exit_code: 7, rank: 2}, distributed: {replicas: 3}}
  - {name: error, component: util.fail, parameters: {message: bad shard, rank: 1}, distributed: {replicas: 2}}
  - {name: rank0, component: util.fail, parameters: {message: bad data, rank: 0}, distributed: {replicas: 2}}
  - {name: killed, component: util.fail, parameters: {mode: kill, rank: 1}, distributed: {replicas: 2}}
  - {name: fine, component: util.echo, parameters: {message: hi}, distributed: {replicas: 2}}
)");
  const auto attempt = [&](const std::string& step) { return last_attempt(r.step(step)); };
  EXPECT_EQ(attempt("exit")["failure"], "crash");
  EXPECT_EQ(attempt("exit")["message"],
            "rank 2 of 3 exited with status 7 (its logs: attempt-1/rank-2/stderr.log); the other ranks were stopped");
  EXPECT_EQ(attempt("error")["failure"], "error");
  EXPECT_EQ(attempt("error")["message"],
            "rank 1 of 2 exited with status 1: bad shard (its logs: attempt-1/rank-1/stderr.log); the other ranks "
            "were stopped");
  EXPECT_EQ(attempt("rank0")["failure"], "error");
  EXPECT_EQ(attempt("rank0")["message"], "rank 0 of 2: bad data");
  EXPECT_EQ(attempt("killed")["failure"], "crash");
  EXPECT_NE(attempt("killed")["message"].get<std::string>().find("rank 1 of 2 was killed by signal SIGKILL"),
            std::string::npos)
      << attempt("killed")["message"];
  // Each rank got its place: only the named rank failed, the others logged their wait.
  const fs::path exit_dir = r.dir / "steps" / "exit" / "attempt-1";
  EXPECT_NE(kiln::test::read_text(exit_dir / "rank-1" / "events.jsonl").find("rank 1 waits for rank 2"),
            std::string::npos);
  EXPECT_NE(kiln::test::read_text(exit_dir / "events.jsonl").find("rank 0 waits for rank 2"), std::string::npos);
  // Every rank succeeding: the step succeeds with rank 0's outputs. Rank
  // 0's request travels in the step server's start message (no file; its
  // place shows in its "waits for" line above); the other ranks' request
  // files carry their own rank and the rendezvous.
  EXPECT_EQ(r.status("fine"), "succeeded");
  EXPECT_EQ(r.step("fine")["outputs"]["message"], "hi");
  const fs::path fine = r.dir / "steps" / "fine" / "attempt-1";
  EXPECT_FALSE(fs::exists(fine / "request.json"));
  const Json rank1 = Json::parse(kiln::test::read_text(fine / "rank-1" / "request.json"))["replica"];
  EXPECT_EQ(rank1["rank"], 1);
  EXPECT_EQ(rank1["world_size"], 2);
  EXPECT_EQ(rank1["rendezvous"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
}

TEST_F(EngineTest, ATimeoutStopsEveryRankOfADistributedStep) {
  // Rank 1 hangs ignoring cancellation; rank 0 waits for it: the timeout
  // cancels both, the grace period's kill reaches the hung one.
  const auto r = run(R"(
steps:
  - {name: hung, component: util.fail, parameters: {mode: hang, rank: 1}, distributed: {replicas: 2}, timeout: 300ms}
)");
  EXPECT_EQ(r.status("hung"), "failed");
  EXPECT_EQ(last_attempt(r.step("hung"))["failure"], "timeout");
}

TEST_F(EngineTest, OnlyTheProcessExecutorRunsReplicas) {
  RunSettings settings;
  settings.executor = "inprocess";
  const auto r = run(R"(
steps:
  - {name: wide, component: util.noop, distributed: {replicas: 2}}
)",
                     settings);
  EXPECT_EQ(r.status("wide"), "failed");
  const std::string message = last_attempt(r.step("wide"))["message"];
  EXPECT_NE(message.find("asks for 2 replicas (distributed): the inprocess executor runs one process per step"),
            std::string::npos)
      << message;
}

TEST_F(EngineTest, RetriesSucceedOnALaterAttempt) {
  RunSettings settings;
  settings.overrides = {{"counter", counter()}};
  const auto r = run(R"(
parameters:
  counter: {type: string}
steps:
  - name: flaky
    component: util.flaky
    parameters: {failures: 2, counter_file: "{{ params.counter }}"}
    retries: {limit: 3, backoff: 10ms, factor: 2}
)",
                     settings);
  EXPECT_EQ(r.record["status"], "succeeded");
  ASSERT_EQ(r.step("flaky")["attempts"].size(), 3u);
  EXPECT_EQ(r.step("flaky")["attempts"][0]["message"], "flaky failure 1");
  EXPECT_EQ(r.step("flaky")["outputs"]["runs"], 3);
  EXPECT_TRUE(fs::is_directory(r.dir / "steps/flaky/attempt-3"));
}

TEST_F(EngineTest, CheckpointDirSurvivesFailedAttemptsAndGoesOnSuccess) {
  // util.flaky counts its runs in the checkpoint dir when given no counter file.
  const auto r = run(R"(
steps:
  - name: flaky
    component: util.flaky
    parameters: {failures: 2}
    retries: {limit: 3, backoff: 1ms}
)");
  EXPECT_EQ(r.record["status"], "succeeded");
  EXPECT_EQ(r.step("flaky")["outputs"]["runs"], 3);
  EXPECT_FALSE(fs::exists(r.dir / "steps/flaky/checkpoint"));
}

TEST_F(EngineTest, RetriesStopAtTheLimitAndOnlyForListedFailures) {
  RunSettings settings;
  settings.overrides = {{"a", counter()}, {"b", counter()}};
  const auto r = run(R"(
parameters:
  a: {type: string}
  b: {type: string}
options: {failure_policy: continue}
steps:
  - name: exhausted
    component: util.flaky
    parameters: {failures: 10, counter_file: "{{ params.a }}"}
    retries: {limit: 2, backoff: 1ms}
  - name: not-on-errors
    component: util.flaky
    parameters: {failures: 10, counter_file: "{{ params.b }}"}
    retries: {limit: 5, backoff: 1ms, on: [crash, timeout]}
)",
                     settings);
  EXPECT_EQ(r.status("exhausted"), "failed");
  EXPECT_EQ(r.step("exhausted")["attempts"].size(), 3u);
  EXPECT_EQ(r.step("not-on-errors")["attempts"].size(), 1u);
}

TEST_F(EngineTest, TimeoutStopsACooperativeStepQuickly) {
  const auto r = run(R"(
steps:
  - {name: slow, component: util.sleep, parameters: {seconds: 30}, timeout: 200ms}
)");
  EXPECT_EQ(r.status("slow"), "failed");
  EXPECT_EQ(last_attempt(r.step("slow"))["failure"], "timeout");
  EXPECT_LT(r.record["duration_seconds"].get<double>(), 10.0);
}

TEST_F(EngineTest, StopPolicyCancelsTheRestAndFinallyStepsStillRun) {
  const auto r = run(R"(
steps:
  - {name: broken, component: util.fail}
  - {name: long, component: util.sleep, parameters: {seconds: 30}}
  - {name: later, component: util.noop, after: [long]}
finally:
  - name: report
    component: util.echo
    parameters: {message: "{{ run.status }}: {{ run.failed_steps }}"}
)");
  EXPECT_EQ(r.record["status"], "failed");
  EXPECT_EQ(r.status("broken"), "failed");
  EXPECT_EQ(r.status("long"), "cancelled");
  EXPECT_EQ(r.status("later"), "cancelled");  // its upstream was cancelled, not failed
  EXPECT_EQ(r.status("report"), "succeeded");
  EXPECT_EQ(r.step("report")["outputs"]["message"], "failed: [\"broken\"]");
}

TEST_F(EngineTest, CancellationStopsRunningStepsAndRunsFinally) {
  RunSettings settings;
  settings.on_event = [](const Json& e, kiln::host::Engine& engine) {
    if (e.value("type", "") == "attempt_started" && e.value("unit", "") == "long") engine.request_cancel();
  };
  const auto r = run(R"(
steps:
  - {name: long, component: util.sleep, parameters: {seconds: 30}}
  - {name: next, component: util.noop, after: [long]}
finally:
  - {name: cleanup, component: util.echo, parameters: {message: "{{ run.status }}"}}
)",
                     settings);
  EXPECT_EQ(r.record["status"], "cancelled");
  EXPECT_EQ(r.status("long"), "cancelled");
  EXPECT_EQ(r.status("next"), "cancelled");
  EXPECT_EQ(r.step("cleanup")["outputs"]["message"], "cancelled");
  EXPECT_LT(r.record["duration_seconds"].get<double>(), 10.0);
}

TEST_F(EngineTest, AStepIgnoringCancellationIsKilledAfterTheGracePeriod) {
  RunSettings settings;
  settings.grace = 0.2;
  settings.on_event = [](const Json& e, kiln::host::Engine& engine) {
    if (e.value("type", "") == "attempt_started" && e.value("unit", "") == "stubborn") engine.request_cancel();
  };
  const auto r = run("steps:\n  - {name: stubborn, component: util.fail, parameters: {mode: hang}}\n", settings);
  EXPECT_EQ(r.record["status"], "cancelled");
  EXPECT_EQ(r.status("stubborn"), "cancelled");
  EXPECT_LT(r.record["duration_seconds"].get<double>(), 10.0);
}

TEST_F(EngineTest, RunTimeoutFailsTheRun) {
  const auto r = run(R"(
options: {timeout: 300ms}
steps:
  - {name: long, component: util.sleep, parameters: {seconds: 30}}
)");
  EXPECT_EQ(r.record["status"], "failed");
  EXPECT_NE(r.record["message"].get<std::string>().find("timed out"), std::string::npos);
}

TEST_F(EngineTest, InProcessExecutorRunsTheSameComponents) {
  RunSettings settings;
  settings.executor = "inprocess";
  const auto r = run(R"(
options: {failure_policy: continue}
steps:
  - {name: hello, component: util.echo, parameters: {message: in-process}}
  - {name: throws, component: util.fail, parameters: {mode: throw, message: oops}}
  - {name: isolated, component: util.echo, executor: process}
)",
                     settings);
  EXPECT_EQ(r.step("hello")["outputs"]["message"], "in-process");
  EXPECT_EQ(last_attempt(r.step("hello"))["executor"], "inprocess");
  EXPECT_EQ(last_attempt(r.step("throws"))["message"], "uncaught exception: oops");
  EXPECT_EQ(last_attempt(r.step("isolated"))["executor"], "process");
}

TEST_F(EngineTest, MetricsAndLogsAreKeptPerAttempt) {
  const auto r = run("steps:\n  - {name: e, component: util.echo, parameters: {message: logged}}\n");
  const std::string events = kiln::test::read_text(r.dir / "steps/e/attempt-1/events.jsonl");
  EXPECT_NE(events.find("\"message\":\"echo: logged\""), std::string::npos) << events;
  EXPECT_NE(events.find("\"event\":\"progress\""), std::string::npos) << events;
}

// ---- tuning steps (issue 7): trials are units of the step ------------------

Json trials_of(const RunResult& r, const std::string& step) {
  return Json::parse(kiln::test::read_text(r.dir / r.step(step)["trials"].get<std::string>()))["trials"];
}

TEST_F(EngineTest, TuningStepRunsTrialsAndOutputsTheBestParameters) {
  const auto r = run(R"(
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 3}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: uniform, low: 0.0, high: 0.6, grid_points: 3}
        y: {type: int, low: 1, high: 3}
      max_trials: 20
      parallel_trials: 2
  - name: use
    component: util.echo
    parameters: {message: "y={{ steps.t.outputs.best_y }}"}
)");
  ASSERT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
  const Json& outputs = r.step("t")["outputs"];
  EXPECT_DOUBLE_EQ(outputs["best_x"].get<double>(), 0.3);
  EXPECT_EQ(outputs["best_y"], 2);
  EXPECT_EQ(outputs["best_parameters"], Json::parse(R"({"x": 0.3, "y": 2})"));
  EXPECT_NEAR(outputs["best_value"].get<double>(), 1.0 / 3, 1e-9);
  EXPECT_EQ(r.step("use")["outputs"]["message"], "y=2");
  const Json trials = trials_of(r, "t");
  ASSERT_EQ(trials.size(), 9u);  // the whole grid, once
  for (const Json& trial : trials) {
    EXPECT_EQ(trial["status"], "succeeded");
    EXPECT_EQ(trial["curve"].size(), 3u) << trial.dump();  // every epoch reached the tuner's view
  }
}

// A median-stop grid over x = 0.3, 1.3, 2.3, 3.3 of 100 epochs, one trial at
// a time, best first: the first trial succeeds, every later one is stopped
// long before its end, and x = 0.3 is the best.
void expect_later_trials_stopped(const RunResult& r) {
  ASSERT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
  const Json trials = trials_of(r, "t");
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_EQ(trials[0]["status"], "succeeded");
  for (size_t i = 1; i < trials.size(); ++i) {
    EXPECT_EQ(trials[i]["status"], "early-stopped") << trials[i].dump();
    EXPECT_LT(trials[i]["curve"].size(), 100u);
  }
  EXPECT_DOUBLE_EQ(r.step("t")["outputs"]["best_x"].get<double>(), 0.3);
}

TEST_F(EngineTest, MedianStopCancelsWorseTrialsAndRecordsThemEarlyStopped) {
  // Sequential trials, best first: every later curve is worse than the
  // median of the finished ones from epoch 2 on and is stopped long before
  // its 100 epochs end.
  const auto r = run(R"(
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 100, epoch_seconds: 0.02, y: 2}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: uniform, low: 0.3, high: 3.3, grid_points: 4}
      early_stopping: {rule: median, grace_steps: 2, min_trials: 1}
      parallel_trials: 1
)");
  expect_later_trials_stopped(r);
}

TEST_F(EngineTest, FailedTrialsCountAgainstMaxFailedTrials) {
  const std::string steps = R"(
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 2, fail_above: 1.5}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: uniform, low: 0.0, high: 3.0, grid_points: 4}
      parallel_trials: 1
      max_failed_trials: MAX
)";
  auto with_max = [&](int max) {
    std::string text = steps;
    text.replace(text.find("MAX"), 3, std::to_string(max));
    return run(text);
  };
  const auto tolerant = with_max(2);  // x = 2 and 3 fail: two failures are allowed
  ASSERT_EQ(tolerant.status("t"), "succeeded") << tolerant.record.dump(2);
  EXPECT_DOUBLE_EQ(tolerant.step("t")["outputs"]["best_x"].get<double>(), 0.0);
  const auto strict = with_max(1);
  EXPECT_EQ(strict.status("t"), "failed");
  EXPECT_NE(strict.step("t")["message"].get<std::string>().find("2 trials failed (max_failed_trials: 1)"),
            std::string::npos)
      << strict.step("t").dump();
  EXPECT_EQ(strict.record["status"], "failed");
}

// Issue 23: a model-based search is a function of its seed, whatever the
// parallelism and however long trials take. Each trial sleeps a suggested
// time per epoch, so at 2 and 4 trials at once they finish out of order;
// with history_lag 4, trial k learns from trials 0 ... k-4 only, and the
// trials table (parameters and values) is the same at 1, 2 and 4 parallel
// trials and when run again, for TPE, GP and CMA-ES.
TEST_F(EngineTest, AModelBasedSearchIsTheSameAtAnyParallelism) {
  for (const std::string sampler : {"tpe", "gp", "cmaes"}) {
    SCOPED_TRACE(sampler);
    auto table = [&](int parallel) {
      RunSettings settings;
      settings.jobs = 4;
      const auto r = run(R"(
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 2}
    tune:
      tuner: tune.search
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: uniform, low: -2.0, high: 2.0}
        y: {type: int, low: -5, high: 9}
        epoch_seconds: {type: uniform, low: 0.0, high: 0.04}
      settings: {sampler: )" + sampler + R"(, n_startup_trials: 3, population: 4, history_lag: 4}
      max_trials: 11
      parallel_trials: )" + std::to_string(parallel) + R"(
      seed: 9
)",
                         settings);
      EXPECT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
      Json rows = Json::array();
      for (const Json& trial : trials_of(r, "t"))
        rows.push_back({{"trial", trial["trial"]}, {"parameters", trial["parameters"]}, {"loss", trial["loss"]}});
      return rows;
    };
    const Json one = table(1);
    ASSERT_EQ(one.size(), 11u) << one.dump();
    EXPECT_EQ(table(2), one);
    const Json four = table(4);
    EXPECT_EQ(four, one);
    EXPECT_EQ(table(4), four);
  }
}

// Issue 23: two objectives that pull apart (util.objective's loss, lowest
// near (0.3, 2), and its cost x^2 + y^2/10, lowest at (0, 0)): the step's
// result is the Pareto front, exactly the trials that no other succeeded
// trial dominates, computed here from each trial's own outputs; best_* is
// the front's trial with the lowest loss, and the trials table marks the front.
TEST_F(EngineTest, TwoObjectivesGiveTheParetoFrontAsTheResult) {
  const auto r = run(R"(
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 1}
    tune:
      tuner: tune.random
      objectives: [{metric: loss, goal: minimize}, {metric: cost, goal: minimize}]
      space:
        x: {type: uniform, low: -1.0, high: 1.0}
        y: {type: int, low: -3, high: 5}
      max_trials: 16
      parallel_trials: 2
      seed: 3
  - name: report
    component: util.echo
    parameters: {message: "front {{ steps.t.outputs.pareto_front }}"}
)");
  ASSERT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
  const Json trials = trials_of(r, "t");
  ASSERT_EQ(trials.size(), 16u);
  std::set<int> expected, marked;
  for (const Json& a : trials) {
    const double loss = a["outputs"]["loss"], cost = a["outputs"]["cost"];
    bool dominated = false;
    for (const Json& b : trials) {
      const double l = b["outputs"]["loss"], c = b["outputs"]["cost"];
      dominated = dominated || (l <= loss && c <= cost && (l < loss || c < cost));
    }
    if (!dominated) expected.insert(a["trial"].get<int>());
    if (a["pareto"].get<bool>()) marked.insert(a["trial"].get<int>());
    EXPECT_EQ(a["cost"], a["outputs"]["cost"]);
  }
  ASSERT_GE(expected.size(), 2u);  // the objectives conflict
  EXPECT_EQ(marked, expected);
  const Json& outputs = r.step("t")["outputs"];
  const Json& front = outputs["pareto_front"];
  std::set<int> listed;
  double previous = -1;
  for (const Json& f : front) {
    listed.insert(f["trial"].get<int>());
    EXPECT_GE(f["values"]["loss"].get<double>(), previous) << front.dump();  // best loss first
    previous = f["values"]["loss"];
    EXPECT_EQ(f["parameters"], trials[f["trial"].get<size_t>()]["parameters"]);
  }
  EXPECT_EQ(listed, expected);
  EXPECT_EQ(outputs["best_trial"], front[0]["trial"]);
  EXPECT_EQ(outputs["best_value"], front[0]["values"]["loss"]);
  // A downstream step reads the front as a value like any other output.
  const std::string message = r.step("report")["outputs"]["message"];
  ASSERT_EQ(message.rfind("front ", 0), 0u) << message;
  EXPECT_EQ(Json::parse(message.substr(6)), front);
  // With one objective there is no front to read: a plan error naming it.
  try {
    run(R"(
steps:
  - name: t
    component: util.objective
    tune:
      tuner: tune.random
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: -1.0, high: 1.0}}
      max_trials: 2
  - name: report
    component: util.echo
    parameters: {message: "{{ steps.t.outputs.pareto_front }}"}
)");
    ADD_FAILURE() << "a single-objective step's pareto_front was planned";
  } catch (const kiln::host::SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("tuning step 't' has no output parameter 'pareto_front'"), std::string::npos)
        << e.what();
  }
}

// A two-objective search on util.objective (loss and cost, both
// minimised), 12 trials of one epoch: the YAML of its steps.
std::string two_objective_steps(const std::string& tuner, const std::string& settings, int parallel) {
  return R"(
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 1}
    tune:
      tuner: )" + tuner + R"(
      objectives: [{metric: loss, goal: minimize}, {metric: cost, goal: minimize}]
      space:
        x: {type: uniform, low: -1.0, high: 1.0}
        y: {type: int, low: -3, high: 5}
        epoch_seconds: {type: uniform, low: 0.0, high: 0.03}
      settings: )" + settings + R"(
      max_trials: 12
      parallel_trials: )" + std::to_string(parallel) + R"(
      seed: 5
)";
}

// What the tuner was told at each trial's final observe: its objectives' values.
std::map<int, Json> objectives_told(const RunResult& r) {
  std::ifstream log(r.dir / "steps" / "t" / "tuner.jsonl");
  std::map<int, Json> told;
  for (std::string line; std::getline(log, line);) {
    const Json j = Json::parse(line);
    if (j.contains("status")) told[j["observe"].get<int>()] = j["values"];
  }
  return told;
}

// The trials table without timings: what must not depend on parallelism.
Json trial_rows(const RunResult& r) {
  Json out = Json::array();
  for (const Json& trial : trials_of(r, "t"))
    out.push_back({{"trial", trial["trial"]}, {"parameters", trial["parameters"]}, {"pareto", trial["pareto"]}});
  return out;
}

// Issue 23: NSGA-II learns from both objectives end to end. The host hands
// every finished trial's loss and cost to the tuner (the tuner log's final
// observes carry them, equal to the trial's outputs); trials of later
// generations are bred from earlier ones; the result is the Pareto front of
// all trials; and with history_lag 2 the trials table is the same whether
// trials run one or two at once, finishing out of order.
TEST_F(EngineTest, Nsga2LearnsFromTwoObjectivesTheSameAtAnyParallelism) {
  auto search = [&](int parallel) {
    RunSettings settings;
    settings.jobs = 2;
    const auto r =
        run(two_objective_steps("tune.search", "{sampler: nsga2, population_size: 4, history_lag: 2}", parallel),
            settings);
    EXPECT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
    return r;
  };
  const auto one = search(1);
  const Json trials = trials_of(one, "t");
  ASSERT_EQ(trials.size(), 12u);
  // What the tuner was told: both objectives of every trial.
  std::map<int, Json> told = objectives_told(one);
  ASSERT_EQ(told.size(), 12u);
  std::set<int> expected, marked;
  for (const Json& a : trials) {
    const double loss = a["outputs"]["loss"], cost = a["outputs"]["cost"];
    EXPECT_EQ(told[a["trial"].get<int>()], Json::array({loss, cost})) << a.dump();
    bool dominated = false;
    for (const Json& b : trials) {
      const double l = b["outputs"]["loss"], c = b["outputs"]["cost"];
      dominated = dominated || (l <= loss && c <= cost && (l < loss || c < cost));
    }
    if (!dominated) expected.insert(a["trial"].get<int>());
    if (a["pareto"].get<bool>()) marked.insert(a["trial"].get<int>());
  }
  EXPECT_EQ(marked, expected);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(one.step("t")["outputs"]["pareto_front"].size(), expected.size());
  // Bred, not drawn: a trial after the first generation (4) repeats an
  // earlier trial's x or epoch_seconds exactly (crossover copies values).
  size_t inherited = 0;
  for (const Json& a : trials)
    for (const Json& b : trials)
      for (const char* name : {"x", "epoch_seconds"})
        inherited += a["trial"] >= 4 && b["trial"] < a["trial"] && a["parameters"][name] == b["parameters"][name];
  EXPECT_GT(inherited, 0u);
  EXPECT_EQ(trial_rows(search(2)), trial_rows(one));
}

// Multi-objective TPE end to end: the tuner is told both objectives of
// every trial, the front is marked, and the trials are the same at 1 and 2
// parallel trials (history_lag 2).
TEST_F(EngineTest, TpeLearnsFromTwoObjectivesTheSameAtAnyParallelism) {
  auto search = [&](int parallel) {
    const auto r = run(two_objective_steps("tune.tpe", "{n_startup_trials: 4, history_lag: 2}", parallel));
    EXPECT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
    return r;
  };
  const auto one = search(1);
  const Json trials = trials_of(one, "t");
  ASSERT_EQ(trials.size(), 12u);
  std::map<int, Json> told = objectives_told(one);
  ASSERT_EQ(told.size(), 12u);
  size_t marked = 0;
  for (const Json& a : trials) {
    EXPECT_EQ(told[a["trial"].get<int>()], Json::array({a["outputs"]["loss"], a["outputs"]["cost"]})) << a.dump();
    marked += a["pareto"].get<bool>();
  }
  EXPECT_GT(marked, 0u);
  EXPECT_EQ(trial_rows(search(2)), trial_rows(one));
}

// A sampler or scheduler that learns from one objective's results refuses
// several, at the objectives' file:line:col.
TEST_F(EngineTest, AModelBasedTunerRefusesSeveralObjectivesNamingTheField) {
  for (const auto& [tuner, settings] : std::vector<std::pair<std::string, std::string>>{
           {"tune.search", "{sampler: gp}"}, {"tune.asha", "{max_resource: 5}"}}) {
    const auto r = run(R"(
steps:
  - name: t
    component: util.objective
    tune:
      tuner: )" + tuner + R"(
      objectives: [{metric: loss, goal: minimize}, {metric: cost, goal: minimize}]
      settings: )" + settings + R"(
      space: {x: {type: uniform, low: 0.0, high: 1.0}}
)");
    EXPECT_EQ(r.status("t"), "failed");
    const std::string message = r.step("t")["message"];
    EXPECT_EQ(message.rfind("t.yaml:10:19: tuner " + tuner + ": objectives: ", 0), 0u) << message;
  }
}

TEST_F(EngineTest, ABadSearchSpaceFailsTheStepNamingTheField) {
  const auto r = run(R"(
steps:
  - name: t
    component: util.objective
    tune:
      tuner: tune.random
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: log_uniform, low: 0.0, high: 3.0}
)");
  EXPECT_EQ(r.status("t"), "failed");
  EXPECT_EQ(r.step("t")["message"], "t.yaml:12:37: tuner tune.random: space.x.low: must be > 0 for log_uniform");
}

TEST_F(EngineTest, CancellingTheRunCancelsTheSearch) {
  RunSettings settings;
  settings.on_event = [](const Json& e, kiln::host::Engine& engine) {
    if (e.value("type", "") == "attempt_started" && e.value("unit", "") == "t[1]") engine.request_cancel();
  };
  const auto r = run(R"(
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 1000, epoch_seconds: 0.01}
    tune:
      tuner: tune.random
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 1.0}}
      max_trials: 6
      parallel_trials: 2
)",
                     settings);
  EXPECT_EQ(r.record["status"], "cancelled");
  EXPECT_EQ(r.status("t"), "cancelled");
  EXPECT_NE(r.step("t")["message"].get<std::string>().find("the search was cancelled"), std::string::npos)
      << r.step("t").dump();
  EXPECT_FALSE(r.step("t").contains("outputs"));
}

// A trial template of three steps: prepare (util.echo) -> fit
// (util.objective, the objective's metric) -> report (util.echo, reading
// prepare's artifact). PARAMS and TUNE complete the tuning step.
std::string template_trial_pipeline(const std::string& params, const std::string& tune) {
  return R"(
templates:
  fit-and-report:
    steps:
      - name: prepare
        component: util.echo
        parameters: {message: data}
      - name: fit
        component: util.objective
        after: prepare
      - name: report
        component: util.echo
        inputs: {text: prepare.outputs.text}
        parameters: {message: reported}
        after: fit
steps:
  - name: t
    parameters: )" +
         params + R"(
    tune:
      trial: fit-and-report
      objective: {metric: loss, goal: minimize}
)" + tune;
}

// The units of trial `trial` of step `step`, by the name of their template step.
std::map<std::string, Json> trial_units_of(const RunResult& r, const std::string& step, int trial) {
  std::map<std::string, Json> out;
  const std::string prefix = std::to_string(trial) + ".";
  for (const auto& [key, unit] : r.step(step)["units"].items())
    if (key.rfind(prefix, 0) == 0) out[key.substr(prefix.size())] = unit;
  return out;
}

TEST_F(EngineTest, ATrialTemplateRunsItsStepsPerTrialAndReportsTheBest) {
  const auto r = run(template_trial_pipeline("{epochs: 3}", R"(      tuner: tune.grid
      space:
        x: {type: uniform, low: 0.0, high: 0.6, grid_points: 3}
        y: {type: int, low: 1, high: 3}
      parallel_trials: 2
  - name: use
    component: util.echo
    inputs: {text: t.outputs.text}
    parameters: {message: "y={{ steps.t.outputs.best_y }}"}
)"));
  ASSERT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
  const Json& outputs = r.step("t")["outputs"];
  EXPECT_DOUBLE_EQ(outputs["best_x"].get<double>(), 0.3);
  EXPECT_EQ(outputs["best_y"], 2);
  EXPECT_NEAR(outputs["best_value"].get<double>(), 1.0 / 3, 1e-9);
  // The best trial's artifacts are the step's: report's text, which read prepare's.
  EXPECT_EQ(r.step("use")["outputs"]["message"], "data\nreported\ny=2");
  const Json trials = trials_of(r, "t");
  ASSERT_EQ(trials.size(), 9u);
  for (const Json& trial : trials) {
    EXPECT_EQ(trial["status"], "succeeded") << trial.dump();
    EXPECT_EQ(trial["curve"].size(), 3u) << trial.dump();  // fit's epochs reached the tuner
    EXPECT_EQ(trial["outputs"]["report"]["message"], "data\nreported") << trial.dump();
    const auto units = trial_units_of(r, "t", trial["trial"].get<int>());
    ASSERT_EQ(units.size(), 3u);
    for (const auto& [name, unit] : units) EXPECT_EQ(unit["status"], "succeeded") << name;
  }
}

TEST_F(EngineTest, EarlyStoppingATrialTemplateCancelsTheRestOfTheTrial) {
  const auto r = run(template_trial_pipeline("{epochs: 100, epoch_seconds: 0.02, y: 2}", R"(      tuner: tune.grid
      space:
        x: {type: uniform, low: 0.3, high: 3.3, grid_points: 4}
      early_stopping: {rule: median, grace_steps: 2, min_trials: 1}
      parallel_trials: 1
)"));
  expect_later_trials_stopped(r);
  const Json trials = trials_of(r, "t");
  for (size_t i = 1; i < trials.size(); ++i) {
    const auto units = trial_units_of(r, "t", trials[i]["trial"].get<int>());
    EXPECT_EQ(units.at("prepare")["status"], "succeeded");
    EXPECT_EQ(units.at("fit")["status"], "early-stopped");
    EXPECT_EQ(units.at("report")["status"], "cancelled");  // never started
    EXPECT_TRUE(units.at("report")["attempts"].empty());
  }
}

TEST_F(EngineTest, AFailingStepFailsItsTrialAndCountsAgainstMaxFailedTrials) {
  const auto with_max = [&](int max) {
    return run(template_trial_pipeline("{epochs: 2, fail_above: 1.5}", R"(      tuner: tune.grid
      space:
        x: {type: uniform, low: 0.0, high: 3.0, grid_points: 4}
      parallel_trials: 1
      max_failed_trials: )" + std::to_string(max) + "\n"));
  };
  const auto tolerant = with_max(2);  // x = 2 and 3 fail in fit: two failures are allowed
  ASSERT_EQ(tolerant.status("t"), "succeeded") << tolerant.record.dump(2);
  EXPECT_DOUBLE_EQ(tolerant.step("t")["outputs"]["best_x"].get<double>(), 0.0);
  const Json trials = trials_of(tolerant, "t");
  ASSERT_EQ(trials.size(), 4u);
  for (const Json& trial : trials) {
    const bool fails = trial["parameters"]["x"].get<double>() > 1.5;
    EXPECT_EQ(trial["status"], fails ? "failed" : "succeeded") << trial.dump();
    if (!fails) continue;
    const auto units = trial_units_of(tolerant, "t", trial["trial"].get<int>());
    EXPECT_EQ(units.at("fit")["status"], "failed");
    EXPECT_EQ(units.at("report")["status"], "upstream-failed");  // the rest of the trial never ran
    EXPECT_TRUE(units.at("report")["attempts"].empty());
  }
  const auto strict = with_max(1);
  EXPECT_EQ(strict.status("t"), "failed");
  EXPECT_NE(strict.step("t")["message"].get<std::string>().find("2 trials failed (max_failed_trials: 1)"),
            std::string::npos)
      << strict.step("t").dump();
}

TEST(StepServer, RunsAComponentsWarmUpOnceBeforeForkingItsSteps) {
  TempDir plugins, cache, runs;
  fs::copy_file(kiln::test::fixture("fixture_warm_up"), plugins / "warm.so");
  const auto catalog = kiln::host::PluginCatalog::discover(
      kiln::host::LibraryScanner({kiln::test::kiln_exe(), cache.path(), std::chrono::seconds(20)}), {plugins.path()});
  const auto log = runs / "warm.log";
  ::setenv("KILN_TEST_WARM_LOG", log.c_str(), 1);  // inherited by the step server
  const auto plan = kiln::host::plan_pipeline(
      kiln::host::parse_pipeline_text("apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: w}\nsteps:\n"
                                      "  - {name: a, component: fixture.warm}\n"
                                      "  - {name: b, component: fixture.warm, after: [a]}\n"
                                      "  - {name: c, component: fixture.warm, after: [b]}\n",
                                      "w.yaml"),
      catalog, Json::object());
  kiln::host::RunOptions options;
  options.run_dir = runs / "run";
  options.run_id = "w";
  std::map<std::string, std::unique_ptr<kiln::host::Executor>> executors;
  executors["process"] = kiln::host::make_process_executor(kiln::test::kiln_exe());
  const Json record = kiln::host::Engine(plan, options, std::move(executors)).run();
  ::unsetenv("KILN_TEST_WARM_LOG");
  ASSERT_EQ(record["status"], "succeeded");
  std::istringstream lines(kiln::test::read_text(log));
  std::vector<std::pair<std::string, int>> entries;
  std::string what;
  int pid = 0;
  while (lines >> what >> pid) entries.emplace_back(what, pid);
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].first, "warm");
  std::set<int> run_pids;
  for (size_t i = 1; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].first, "run");
    EXPECT_NE(entries[i].second, entries[0].second) << "a step ran inside the server";
    run_pids.insert(entries[i].second);
  }
  EXPECT_EQ(run_pids.size(), 3u) << "each step in a process of its own";
}

namespace {

// A catalog with the util plugin and the typed fixture (misbehaving components).
const kiln::host::PluginCatalog& fixture_catalog() {
  static TempDir dir;
  static const auto c = [] {
    fs::copy_file(kiln::test::fixture("fixture_typed"), dir / "typed.so");
    return kiln::host::PluginCatalog::discover(
        kiln::host::LibraryScanner({kiln::test::kiln_exe(), dir / "cache", std::chrono::seconds(20)}),
        {kiln::test::util_plugin().parent_path(), dir.path()});
  }();
  return c;
}

Json run_with_fixtures(const std::string& steps_yaml, const fs::path& dir,
                       std::function<void(const Json&, kiln::host::Engine&)> on_event = {}) {
  const auto plan = kiln::host::plan_pipeline(
      kiln::host::parse_pipeline_text("apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: f}\n" + steps_yaml,
                                      "f.yaml"),
      fixture_catalog(), Json::object());
  kiln::host::RunOptions options;
  options.run_dir = dir;
  options.run_id = "f";
  options.grace_seconds = 0.5;
  kiln::host::Engine* engine = nullptr;
  kiln::test::JsonEventObserver observer([&](const Json& e) {
    if (on_event) on_event(e, *engine);
  });
  options.observers.push_back(&observer);
  std::map<std::string, std::unique_ptr<kiln::host::Executor>> executors;
  executors["process"] = kiln::host::make_process_executor(kiln::test::kiln_exe());
  executors["inprocess"] = kiln::host::make_inprocess_executor();
  kiln::host::Engine e(plan, options, std::move(executors));
  engine = &e;
  return e.run();
}

}  // namespace

TEST(EngineRobustness, GarbageOnTheChannelIsLoggedNotFatal) {
  TempDir dir;
  const Json r = run_with_fixtures("steps:\n  - {name: s, component: fixture.scribble}\n", dir / "run");
  EXPECT_EQ(r["status"], "succeeded");
  const std::string events = kiln::test::read_text(dir / "run/steps/s/attempt-1/events.jsonl");
  EXPECT_NE(events.find("unreadable runner line: \\\"42\\\""), std::string::npos) << events;
  EXPECT_NE(events.find("bad bytes"), std::string::npos) << events;
}

// The process executor copies a step's stdout and stderr from pipes into its
// log files, made when the step first writes: all of it (more than a pipe
// holds), and no file for a step that writes nothing.
TEST(EngineRobustness, LogFilesHoldWhatAStepWroteAndOnlyWhenItWroteSomething) {
  TempDir dir;
  const Json r = run_with_fixtures(R"(steps:
  - {name: loud, component: fixture.shout}
  - {name: quiet, component: fixture.shout, parameters: {lines: 0}}
  - {name: silent, component: util.noop}
)",
                                   dir / "run");
  ASSERT_EQ(r["status"], "succeeded") << r.dump(2);
  std::string expected;
  for (int i = 0; i < 20000; ++i) expected += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(kiln::test::read_text(dir / "run/steps/loud/attempt-1/stdout.log"), expected);
  EXPECT_EQ(kiln::test::read_text(dir / "run/steps/loud/attempt-1/stderr.log"), "to stderr\n");
  EXPECT_FALSE(fs::exists(dir / "run/steps/quiet/attempt-1/stdout.log"));
  EXPECT_EQ(kiln::test::read_text(dir / "run/steps/quiet/attempt-1/stderr.log"), "to stderr\n");
  EXPECT_TRUE(fs::is_directory(dir / "run/steps/silent/attempt-1"));
  EXPECT_FALSE(fs::exists(dir / "run/steps/silent/attempt-1/stdout.log"));
  EXPECT_FALSE(fs::exists(dir / "run/steps/silent/attempt-1/stderr.log"));
}

namespace {

// This process's peak resident memory in KiB (VmHWM), 0 when unreadable.
long peak_memory_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

// Starts a new peak at the current resident size (Linux's clear_refs 5).
bool reset_peak_memory() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  return static_cast<bool>(clear.flush());
}

}  // namespace

TEST(EngineRobustness, AnOverlongChannelLineIsDroppedWithOneWarningInBoundedMemory) {
  TempDir dir;
  const bool measured = reset_peak_memory();
  const long before = peak_memory_kib();
  const Json r = run_with_fixtures("steps:\n  - {name: s, component: fixture.long-line}\n", dir / "run");
  const long growth = peak_memory_kib() - before;
  RecordProperty("peak_memory_growth_kib", static_cast<int>(growth));
  EXPECT_EQ(r["status"], "succeeded");
  const std::string events = kiln::test::read_text(dir / "run/steps/s/attempt-1/events.jsonl");
  const std::string warning = "dropped a runner line longer than the channel's limit of 1048576 bytes";
  const auto first = events.find(warning);
  EXPECT_NE(first, std::string::npos) << events.substr(0, 2000);
  EXPECT_EQ(events.find(warning, first + 1), std::string::npos) << "one warning for the one line";
  EXPECT_NE(events.find("after the long line"), std::string::npos) << "the attempt went on";
  EXPECT_LT(events.size(), size_t{64} << 10) << "the line itself is not recorded";
  if (measured && before > 0) {
    EXPECT_LT(growth, 32L << 10) << "peak memory grew by " << growth << " KiB";
  }
}

TEST(EngineRobustness, AnOutputNestedTooDeepIsRefusedWithAWarning) {
  TempDir dir;
  const Json r = run_with_fixtures("steps:\n  - {name: s, component: fixture.deep-output}\n", dir / "run");
  EXPECT_EQ(r["status"], "succeeded");
  const std::string events = kiln::test::read_text(dir / "run/steps/s/attempt-1/events.jsonl");
  EXPECT_NE(events.find("a value nested deeper than 64 levels"), std::string::npos) << events.substr(0, 2000);
  EXPECT_NE(events.find("after the deep output"), std::string::npos) << "the attempt went on";
  EXPECT_FALSE(r["steps"]["s"].value("outputs", Json::object()).contains("deep")) << r["steps"]["s"].dump();
}

// A step (in the host's own thread, or in a runner) that reports a value
// nested 100,000 levels deep through the host API: the step fails with a
// short message quoting the value's start; nothing recurses that deep.
TEST(EngineRobustness, AValueNestedTooDeepThroughTheHostApiFailsTheStepWithAShortMessage) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"text", "output parameter 'text' must be a string, got [[[["},
      {"items", "output parameter 'items' is nested deeper than 64 levels"},
      {"metadata", "metadata of output 'data' is nested deeper than 64 levels"}};
  for (const std::string executor : {"inprocess", "process"}) {
    TempDir dir;
    std::string steps = "options: {failure_policy: continue}\nsteps:\n";
    for (const auto& [step, expected] : cases)
      steps += "  - {name: " + step + ", component: fixture.deep-value, executor: " + executor +
               ", parameters: {output: " + step + "}}\n";
    const Json r = run_with_fixtures(steps, dir / "run");
    for (const auto& [step, expected] : cases) {
      ASSERT_EQ(r["steps"][step]["status"], "failed") << executor << " " << r["steps"][step].dump();
      const auto& attempt = r["steps"][step]["attempts"].back();
      EXPECT_EQ(attempt["failure"], "error") << executor << " " << attempt.dump();
      const std::string message = attempt["message"];
      EXPECT_NE(message.find(expected), std::string::npos) << executor << " " << message;
      EXPECT_LT(message.size(), 512u) << executor << " " << message.substr(0, 512);
    }
  }
}

// A for_each over a step's output of more than kMaxForEachItems items fails
// the loop step, naming the spec's line and the reference; nothing runs.
TEST(EngineRobustness, AForEachOverTooLongARuntimeListFailsTheStep) {
  TempDir dir;
  const std::string too_many = std::to_string(kiln::host::kMaxForEachItems + 1);
  const Json r = run_with_fixtures(
      "steps:\n"
      "  - {name: gen, component: fixture.count, parameters: {count: " +
          too_many +
          "}}\n"
          "  - {name: loop, component: util.noop, for_each: \"{{ steps.gen.outputs.items }}\"}\n",
      dir / "run");
  EXPECT_EQ(r["status"], "failed");
  EXPECT_EQ(r["steps"]["gen"]["status"], "succeeded");
  EXPECT_EQ(r["steps"]["loop"]["status"], "failed");
  const std::string message = r["steps"]["loop"].value("message", "");
  EXPECT_EQ(message.rfind("f.yaml:6:51: ", 0), 0u) << message;  // the for_each value's place
  EXPECT_NE(message.find("'for_each' (\"{{ steps.gen.outputs.items }}\") resolved to " + too_many +
                         " items, more than the limit of 10000"),
            std::string::npos)
      << message;
  EXPECT_TRUE(r["steps"]["loop"].value("attempts", Json::array()).empty()) << r["steps"]["loop"].dump();
  EXPECT_FALSE(fs::exists(dir / "run/steps/loop[0]")) << "no item ran";
}

TEST(EngineRobustness, ADependencyThatCancelledItselfCancelsDependentsAndFailsTheRun) {
  TempDir dir;
  const Json r = run_with_fixtures(
      "steps:\n  - {name: a, component: fixture.self-cancel}\n  - {name: b, component: util.noop, after: [a]}\n",
      dir / "run");
  EXPECT_EQ(r["steps"]["a"]["status"], "cancelled");
  EXPECT_EQ(r["steps"]["b"]["status"], "cancelled");
  EXPECT_EQ(r["status"], "failed");
}

TEST(EngineRobustness, AProcessLeftBehindDoesNotKeepTheStepAlive) {
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  const Json r =
      run_with_fixtures("steps:\n  - {name: s, component: fixture.fork-and-exit, timeout: 30s}\n", dir / "run");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
  EXPECT_EQ(r["steps"]["s"]["attempts"][0]["failure"], "crash");
  EXPECT_NE(r["steps"]["s"]["attempts"][0]["message"].get<std::string>().find("exited with status 7"),
            std::string::npos);
}

TEST(EngineRobustness, StopPolicyStopsALoopAfterItsFirstFailedItem) {
  TempDir dir;
  const Json r = run_with_fixtures(R"(steps:
  - name: l
    component: util.fail
    for_each: [error, hang, hang]
    parallelism: 1
    timeout: 20s
    parameters: {mode: "{{ item }}"}
)",
                                   dir / "run");
  EXPECT_EQ(r["status"], "failed");
  EXPECT_EQ(r["steps"]["l"]["units"]["0"]["status"], "failed");
  EXPECT_EQ(r["steps"]["l"]["units"]["1"]["status"], "cancelled");
  EXPECT_FALSE(r["steps"]["l"]["units"]["1"].contains("attempts") &&
               !r["steps"]["l"]["units"]["1"]["attempts"].empty());
}

TEST(EngineRobustness, FinallyStepsRetryAfterThePolicyStopped) {
  TempDir dir;
  const auto counter = (dir / "counter").string();
  const Json r = run_with_fixtures(
      "steps:\n  - {name: bad, component: util.fail}\nfinally:\n  - name: cleanup\n"
      "    component: util.flaky\n    retries: {limit: 2, backoff: 10ms}\n"
      "    parameters: {failures: 1, counter_file: \"" +
          counter + "\"}\n",
      dir / "run");
  EXPECT_EQ(r["steps"]["cleanup"]["status"], "succeeded");
  EXPECT_EQ(r["steps"]["cleanup"]["attempts"].size(), 2u);
}

TEST(EngineRobustness, CancellationEndsARetryBackoffAtOnce) {
  TempDir dir;
  const auto counter = (dir / "counter").string();
  const auto start = std::chrono::steady_clock::now();
  const Json r = run_with_fixtures(
      "steps:\n  - name: f\n    component: util.flaky\n    retries: {limit: 3, backoff: 60s}\n"
      "    parameters: {failures: 5, counter_file: \"" +
          counter + "\"}\n",
      dir / "run", [](const Json& e, kiln::host::Engine& engine) {
        if (e.value("type", "") == "retry_scheduled") engine.request_cancel();
      });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
  EXPECT_EQ(r["status"], "cancelled");
  EXPECT_EQ(r["steps"]["f"]["status"], "cancelled");
}

// The engine's scheduling decisions on virtual time with a fake executor
// (tests/support/fake_executor.hpp): no process, no sleep, exact times.
// Dependencies, conditions, loops with parallelism, retries with backoff,
// timeouts and grace kills, cancellation, failure policies, finally steps,
// tuning with early stopping and failed trials, GPUs handed out from a
// faked pool (never shared, released on every end). The real-process tests
// (engine_test.cpp) check the same behaviours end to end.
#include <gtest/gtest.h>
#include <kiln/host/engine.hpp>
#include <kiln/host/spec.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "fake_executor.hpp"
#include "test_support.hpp"

using kiln::host::Json;
using kiln::test::FakeExecutor;
using kiln::test::FakeRecord;
using kiln::test::TempDir;
using kiln::test::VirtualTime;

namespace {

struct Outcome {
  Json record;
  std::vector<FakeRecord> attempts;  // every fake attempt, in start order
  int peak = 0;
  std::vector<std::pair<double, Json>> events;  // (virtual seconds, event)

  const Json& step(const std::string& name) const { return record["steps"][name]; }
  std::string status(const std::string& name) const { return step(name).value("status", ""); }
  // The attempts of one unit, in order.
  std::vector<FakeRecord> of(const std::string& unit) const {
    std::vector<FakeRecord> out;
    for (const auto& a : attempts)
      if (a.unit == unit) out.push_back(a);
    return out;
  }
};

struct Settings {
  int jobs = 2;
  double grace = 2.0;
  // On every event (engine thread): may cancel the run.
  std::function<void(const Json&, kiln::host::Engine&)> on_event;
  std::vector<int> gpus{};  // the run's GPU pool (none by default)
};

class Scenario : public ::testing::Test {
 protected:
  Outcome run(const std::string& body, Settings settings = {}) {
    const std::string yaml = "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: s}\n" + body;
    const auto plan = kiln::host::plan_pipeline(kiln::host::parse_pipeline_text(yaml, "s.yaml"), kiln::test::util_catalog(), {});
    VirtualTime time;
    auto fake = std::make_unique<FakeExecutor>(time);
    const FakeExecutor& executor = *fake;
    kiln::host::RunOptions options;
    options.executor = "fake";
    options.jobs = settings.jobs;
    options.grace_seconds = settings.grace;
    options.run_dir = dir.path() / ("run-" + std::to_string(++runs_));
    options.run_id = options.run_dir.filename().string();
    options.time = &time;
    options.gpus = {settings.gpus, "the test's pool"};
    Outcome out;
    kiln::host::Engine* engine = nullptr;
    kiln::test::JsonEventObserver observer([&](const Json& e) {
      out.events.emplace_back(time.seconds(), e);
      if (settings.on_event) settings.on_event(e, *engine);
    });
    options.observers.push_back(&observer);
    std::map<std::string, std::unique_ptr<kiln::host::Executor>> executors;
    executors["fake"] = std::move(fake);
    kiln::host::Engine e(plan, options, std::move(executors));
    engine = &e;
    out.record = e.run();
    out.attempts = executor.records();
    out.peak = executor.peak();
    return out;
  }

  TempDir dir;

 private:
  int runs_ = 0;
};

}  // namespace

TEST_F(Scenario, DependenciesStartAStepWhenItsLastUpstreamStepEnds) {
  const auto o = run(R"(steps:
  - {name: a, component: util.sleep, parameters: {seconds: 1}}
  - {name: b, component: util.sleep, parameters: {seconds: 2}, after: [a]}
  - {name: c, component: util.sleep, parameters: {seconds: 3}, after: [a]}
  - {name: d, component: util.echo, parameters: {message: "{{ steps.e.outputs.message }}"}, after: [b, c]}
  - {name: e, component: util.echo, parameters: {message: from-e}}
)");
  ASSERT_EQ(o.record["status"], "succeeded") << o.record.dump(2);
  EXPECT_DOUBLE_EQ(o.of("a").at(0).started, 0);
  EXPECT_DOUBLE_EQ(o.of("b").at(0).started, 1);
  EXPECT_DOUBLE_EQ(o.of("c").at(0).started, 1);
  EXPECT_DOUBLE_EQ(o.of("d").at(0).started, 4);  // after c, the later of b and c
  EXPECT_EQ(o.step("d")["outputs"]["message"], "from-e");
  EXPECT_EQ(o.peak, 2);  // --jobs 2: a and e, then b and c
}

TEST_F(Scenario, ConditionsSkipAStepAndWhatNeedsItsDataButNotWhatOnlyRunsAfterIt) {
  const auto o = run(R"(parameters:
  go: {type: bool, default: false}
steps:
  - {name: gate, component: util.echo, when: params.go}
  - {name: reader, component: util.echo, inputs: {text: gate.outputs.text}}
  - {name: follower, component: util.echo, after: [gate]}
  - {name: other, component: util.noop, when: not params.go}
)");
  EXPECT_EQ(o.record["status"], "succeeded");
  EXPECT_EQ(o.status("gate"), "skipped");
  EXPECT_EQ(o.status("reader"), "skipped");
  EXPECT_EQ(o.status("follower"), "succeeded");
  EXPECT_EQ(o.status("other"), "succeeded");
  EXPECT_TRUE(o.of("gate").empty() && o.of("reader").empty());
}

TEST_F(Scenario, ALoopRunsItsItemsAtMostParallelismAtOnce) {
  Settings settings;
  settings.jobs = 8;
  const auto o = run(R"(steps:
  - name: loop
    component: util.sleep
    for_each: [1, 2, 3, 4, 5]
    parallelism: 2
    parameters: {seconds: "{{ item }}"}
  - {name: after, component: util.noop, after: [loop]}
)",
                     settings);
  ASSERT_EQ(o.record["status"], "succeeded") << o.record.dump(2);
  EXPECT_EQ(o.peak, 2);
  // Items 1 and 2 start at 0; 3 when 1 ends (1); 4 when 2 ends (2); 5 when 3 ends (4).
  EXPECT_DOUBLE_EQ(o.of("loop[2]").at(0).started, 1);
  EXPECT_DOUBLE_EQ(o.of("loop[3]").at(0).started, 2);
  EXPECT_DOUBLE_EQ(o.of("loop[4]").at(0).started, 4);
  EXPECT_DOUBLE_EQ(o.of("after").at(0).started, 9);  // loop[4] ends at 4 + 5
  EXPECT_EQ(o.step("loop")["items"], 5);
}

TEST_F(Scenario, RetriesWaitTheirBackoffAndStopAtTheLimit) {
  const auto o = run(R"(options: {failure_policy: continue}
steps:
  - name: flaky
    component: util.flaky
    parameters: {failures: 2}
    retries: {limit: 3, backoff: 10s, factor: 2, max_backoff: 1h}
  - name: hopeless
    component: util.flaky
    parameters: {failures: 100}
    retries: {limit: 2, backoff: 1s, factor: 3}
  - name: not-on-errors
    component: util.flaky
    retries: {limit: 5, backoff: 1s, on: [crash, timeout]}
)",
                     Settings{3, 2.0, {}});
  EXPECT_EQ(o.status("flaky"), "succeeded");
  const auto flaky = o.of("flaky");
  ASSERT_EQ(flaky.size(), 3u);
  EXPECT_DOUBLE_EQ(flaky[1].started, 10);  // backoff 10 s
  EXPECT_DOUBLE_EQ(flaky[2].started, 30);  // then 20 s
  EXPECT_EQ(o.step("flaky")["outputs"]["runs"], 3);
  EXPECT_EQ(o.status("hopeless"), "failed");
  const auto hopeless = o.of("hopeless");
  ASSERT_EQ(hopeless.size(), 3u);  // the first and two retries
  EXPECT_DOUBLE_EQ(hopeless[2].started, 4);  // 1 s, then 3 s
  EXPECT_EQ(o.of("not-on-errors").size(), 1u);
  EXPECT_EQ(o.record["status"], "failed");
}

TEST_F(Scenario, ATimeoutAsksTheStepToStopAndKillsItAfterTheGracePeriod) {
  const auto o = run(R"(steps:
  - {name: cooperative, component: util.sleep, parameters: {seconds: 100}, timeout: 5s}
  - {name: stubborn, component: util.fail, parameters: {mode: hang}, timeout: 5s}
)",
                     Settings{2, 3.0, {}});
  EXPECT_EQ(o.status("cooperative"), "failed");
  EXPECT_EQ(o.status("stubborn"), "failed");
  EXPECT_DOUBLE_EQ(o.of("cooperative").at(0).ended, 5);
  EXPECT_EQ(o.of("cooperative").at(0).how, "cancelled");
  EXPECT_DOUBLE_EQ(o.of("stubborn").at(0).ended, 8);  // 5 s, then 3 s of grace
  EXPECT_EQ(o.of("stubborn").at(0).how, "killed");
  EXPECT_EQ(o.step("stubborn")["attempts"][0]["failure"], "timeout");
  EXPECT_EQ(o.step("cooperative")["attempts"][0]["message"], "timed out after 5.0 s");
}

TEST_F(Scenario, CancellingStopsWhatRunsStartsNothingNewAndStillRunsFinally) {
  Settings settings;
  settings.on_event = [](const Json& e, kiln::host::Engine& engine) {
    if (e["type"] == "attempt_started" && e["unit"] == "long") engine.request_cancel();
  };
  const auto o = run(R"(steps:
  - {name: long, component: util.sleep, parameters: {seconds: 30}}
  - {name: next, component: util.noop, after: [long]}
finally:
  - {name: cleanup, component: util.echo, parameters: {message: "{{ run.status }}"}}
)",
                     settings);
  EXPECT_EQ(o.record["status"], "cancelled");
  EXPECT_EQ(o.status("long"), "cancelled");
  EXPECT_EQ(o.status("next"), "cancelled");
  EXPECT_TRUE(o.of("next").empty());
  EXPECT_EQ(o.step("cleanup")["outputs"]["message"], "cancelled");
  EXPECT_DOUBLE_EQ(o.of("long").at(0).ended, 0);
}

TEST_F(Scenario, ASecondCancelKillsWithoutWaitingForTheGracePeriod) {
  int cancels = 0;
  Settings settings;
  settings.grace = 60;
  settings.on_event = [&](const Json& e, kiln::host::Engine& engine) {
    if (e["type"] == "attempt_started" && e["unit"] == "stubborn") engine.request_cancel();
    if (e["type"] == "cancel_requested" && ++cancels == 1) engine.request_cancel();
  };
  const auto o = run("steps:\n  - {name: stubborn, component: util.fail, parameters: {mode: hang}}\n", settings);
  EXPECT_EQ(o.record["status"], "cancelled");
  EXPECT_EQ(o.of("stubborn").at(0).how, "killed");
  EXPECT_DOUBLE_EQ(o.of("stubborn").at(0).ended, 0);
}

TEST_F(Scenario, TheStopPolicyCancelsRunningStepsWhileContinueLetsThemFinish) {
  const std::string body = R"(steps:
  - {name: broken, component: util.fail}
  - {name: slow, component: util.sleep, parameters: {seconds: 10}}
  - {name: child, component: util.noop, after: [broken]}
  - {name: later, component: util.noop, after: [slow]}
)";
  const auto stop = run("options: {failure_policy: stop}\n" + body);
  EXPECT_EQ(stop.record["status"], "failed");
  EXPECT_EQ(stop.status("broken"), "failed");
  EXPECT_EQ(stop.status("slow"), "cancelled");
  EXPECT_DOUBLE_EQ(stop.of("slow").at(0).ended, 0);
  EXPECT_EQ(stop.status("child"), "upstream-failed");
  EXPECT_EQ(stop.status("later"), "cancelled");

  const auto keep_going = run("options: {failure_policy: continue}\n" + body);
  EXPECT_EQ(keep_going.record["status"], "failed");
  EXPECT_EQ(keep_going.status("slow"), "succeeded");
  EXPECT_EQ(keep_going.status("later"), "succeeded");
  EXPECT_DOUBLE_EQ(keep_going.of("later").at(0).started, 10);
  EXPECT_EQ(keep_going.status("child"), "upstream-failed");
}

TEST_F(Scenario, FinallyStepsRunAfterEverythingElseAndSeeTheOutcome) {
  const auto o = run(R"(steps:
  - {name: work, component: util.sleep, parameters: {seconds: 2}}
  - {name: broken, component: util.fail, after: [work]}
finally:
  - {name: report, component: util.echo, parameters: {message: "{{ run.status }} {{ run.failed_steps }}"}}
  - {name: flaky-cleanup, component: util.flaky, retries: {limit: 1, backoff: 1s}}
)");
  EXPECT_EQ(o.record["status"], "failed");
  EXPECT_EQ(o.step("report")["outputs"]["message"], "failed [\"broken\"]");
  EXPECT_DOUBLE_EQ(o.of("report").at(0).started, 2);
  EXPECT_EQ(o.status("flaky-cleanup"), "succeeded");  // finally steps retry whatever the policy did
  EXPECT_EQ(o.of("flaky-cleanup").size(), 2u);
}

TEST_F(Scenario, ARunTimeoutCancelsTheRunAndFailsIt) {
  const auto o = run("options: {timeout: 1m}\nsteps:\n  - {name: long, component: util.sleep, parameters: {seconds: 3600}}\n");
  EXPECT_EQ(o.record["status"], "failed");
  EXPECT_EQ(o.record["message"], "the run timed out after 60.0 s");
  EXPECT_DOUBLE_EQ(o.of("long").at(0).ended, 60);
}

TEST_F(Scenario, MedianStoppingStopsWorseTrialsEarlyAndTheSearchStillSucceeds) {
  const auto o = run(R"(steps:
  - name: t
    component: util.objective
    parameters: {epochs: 100, epoch_seconds: 1, y: 2}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: uniform, low: 0.3, high: 3.3, grid_points: 4}
      early_stopping: {rule: median, grace_steps: 2, min_trials: 1}
      parallel_trials: 1
)");
  ASSERT_EQ(o.status("t"), "succeeded") << o.record.dump(2);
  EXPECT_DOUBLE_EQ(o.step("t")["outputs"]["best_x"].get<double>(), 0.3);
  const auto first = o.of("t[0]");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].how, "succeeded");
  EXPECT_DOUBLE_EQ(first[0].ended, 100);
  for (const std::string unit : {"t[1]", "t[2]", "t[3]"}) {
    const auto trial = o.of(unit);
    ASSERT_EQ(trial.size(), 1u) << unit;
    EXPECT_EQ(trial[0].how, "cancelled") << unit;
    EXPECT_LT(trial[0].ended - trial[0].started, 10) << unit << ": stopped within a few epochs";
    EXPECT_EQ(o.step("t")["units"][unit.substr(2, 1)]["status"], "early-stopped") << unit;
  }
  int stops = 0, finished = 0;
  for (const auto& [at, e] : o.events) {
    stops += e["type"] == "stop_requested";
    finished += e["type"] == "trial_finished";
  }
  EXPECT_EQ(stops, 3);
  EXPECT_EQ(finished, 4);
}

TEST_F(Scenario, FailedTrialsCountAgainstMaxFailedTrials) {
  const std::string body = R"(steps:
  - name: t
    component: util.objective
    parameters: {epochs: 2, epoch_seconds: 1, fail_above: 1.5}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: uniform, low: 0.0, high: 3.0, grid_points: 4}
      parallel_trials: 2
      max_failed_trials: )";
  const auto tolerant = run(body + "2\n");
  ASSERT_EQ(tolerant.status("t"), "succeeded") << tolerant.record.dump(2);
  EXPECT_DOUBLE_EQ(tolerant.step("t")["outputs"]["best_x"].get<double>(), 0.0);
  const auto strict = run(body + "1\n");
  EXPECT_EQ(strict.status("t"), "failed");
  EXPECT_NE(strict.step("t")["message"].get<std::string>().find("2 trials failed (max_failed_trials: 1)"),
            std::string::npos)
      << strict.step("t").dump();
}

TEST_F(Scenario, TheSameScenarioGivesTheSameEventsEveryTime) {
  const std::string body = R"(steps:
  - name: loop
    component: util.sleep
    for_each: [3, 1, 2, 1]
    parameters: {seconds: "{{ item }}"}
  - name: t
    component: util.objective
    parameters: {epochs: 5, epoch_seconds: 0.5}
    tune:
      tuner: tune.random
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 1.0}}
      max_trials: 6
      parallel_trials: 2
      seed: 7
)";
  const auto strip = [](const Outcome& o) {
    std::vector<std::pair<double, Json>> out;
    for (auto [at, e] : o.events) {
      e.erase("dir");
      e.erase("run");
      out.emplace_back(at, e);
    }
    return out;
  };
  const auto first = run(body), second = run(body);
  ASSERT_EQ(first.record["status"], "succeeded") << first.record.dump(2);
  EXPECT_EQ(strip(first), strip(second));
}

namespace {

// Whether two attempts ran at the same time (an end at t and a start at t do not overlap).
bool overlap(const FakeRecord& a, const FakeRecord& b) {
  return a.started < b.ended && b.started < a.ended;
}

// A run of `jobs` jobs on the (fake) GPUs `gpus`.
Settings on_gpus(int jobs, std::vector<int> gpus) {
  Settings settings;
  settings.jobs = jobs;
  settings.gpus = std::move(gpus);
  return settings;
}

// No GPU held by two attempts at once, and every attempt held `per_attempt` of `pool`.
void expect_gpus_never_shared(const std::vector<FakeRecord>& attempts, const std::set<int>& pool) {
  for (size_t i = 0; i < attempts.size(); ++i) {
    for (const int gpu : attempts[i].gpus) EXPECT_TRUE(pool.count(gpu)) << attempts[i].unit << " got GPU " << gpu;
    for (size_t j = i + 1; j < attempts.size(); ++j) {
      if (!overlap(attempts[i], attempts[j])) continue;
      for (const int gpu : attempts[i].gpus)
        EXPECT_EQ(std::count(attempts[j].gpus.begin(), attempts[j].gpus.end(), gpu), 0)
            << attempts[i].unit << " and " << attempts[j].unit << " share GPU " << gpu;
    }
  }
}

}  // namespace

TEST_F(Scenario, LoopItemsNeedingAGpuEachRunAsManyAtOnceAsThereAreGpusAndNeverShareOne) {
  const auto o = run(R"(steps:
  - name: loop
    component: util.sleep
    for_each: [1, 1, 1, 1, 1, 1]
    resources: {gpus: 1}
    parameters: {seconds: "{{ item }}"}
  - {name: cpu, component: util.sleep, parameters: {seconds: 2}}
)",
                     on_gpus(8, {0, 1}));
  ASSERT_EQ(o.record["status"], "succeeded") << o.record.dump(2);
  EXPECT_EQ(o.peak, 3);  // two GPU items and the CPU step, which waits for no GPU
  EXPECT_DOUBLE_EQ(o.of("cpu").at(0).started, 0);
  EXPECT_TRUE(o.of("cpu").at(0).gpus.empty());
  std::vector<FakeRecord> items;
  for (int i = 0; i < 6; ++i) {
    const auto attempts = o.of("loop[" + std::to_string(i) + "]");
    ASSERT_EQ(attempts.size(), 1u);
    EXPECT_EQ(attempts[0].gpus.size(), 1u);
    EXPECT_DOUBLE_EQ(attempts[0].started, i / 2);  // two at a time: 0, 0, 1, 1, 2, 2
    items.push_back(attempts[0]);
  }
  expect_gpus_never_shared(items, {0, 1});
  // The attempts' events and records name their GPUs.
  int with_gpus = 0;
  for (const auto& [at, e] : o.events)
    if (e["type"] == "attempt_started" && e["step"] == "loop") with_gpus += e["gpus"].size() == 1;
  EXPECT_EQ(with_gpus, 6);
  EXPECT_EQ(o.record["steps"]["cpu"]["attempts"][0].count("gpus"), 0u);
}

TEST_F(Scenario, AStepNeedingMoreGpusThanTheHostHasOrAnyUnderInprocessIsRefusedBeforeAnythingRuns) {
  Settings settings;
  settings.gpus = {0, 1};
  try {
    run(R"(steps:
  - {name: small, component: util.noop, resources: {gpus: 2}}
  - {name: big, component: util.noop, resources: {gpus: 3}}
  - {name: local, component: util.noop, executor: inprocess, resources: {gpus: 1}}
  - {name: cluster, component: util.noop, executor: slurm, resources: {gpus: 8}}
)",
        settings);
    FAIL() << "the run started";
  } catch (const kiln::host::SpecError& e) {
    ASSERT_EQ(e.diagnostics().size(), 2u) << e.what();  // the Slurm step's GPUs are Slurm's to find
    EXPECT_EQ(e.diagnostics()[0].str(),
              "s.yaml:6:57: step 'big' needs 3 GPUs, but this host has 2 for kiln (the test's pool; see --gpus and "
              "KILN_GPUS)");
    EXPECT_NE(e.diagnostics()[1].str().find("s.yaml:7:80: step 'local' needs 1 GPU, but the inprocess executor"),
              std::string::npos)
        << e.diagnostics()[1].str();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "run-1"));
}

TEST_F(Scenario, AGpuIsFreeAgainAfterAFailureARetryAndATimeout) {
  const auto o = run(R"(options: {failure_policy: continue}
steps:
  - {name: stuck, component: util.fail, parameters: {mode: hang}, timeout: 2s, resources: {gpus: 1}}
  - name: flaky
    component: util.flaky
    parameters: {failures: 1}
    retries: {limit: 1, backoff: 1s}
    resources: {gpus: 1}
  - {name: busy, component: util.sleep, parameters: {seconds: 5}, resources: {gpus: 1}, after: [flaky]}
  - name: again
    component: util.flaky
    parameters: {failures: 1}
    retries: {limit: 1, backoff: 1s}
    resources: {gpus: 1}
    after: [flaky]
)",
                     on_gpus(4, {5}));
  EXPECT_EQ(o.status("stuck"), "failed");
  EXPECT_EQ(o.status("flaky"), "succeeded");
  EXPECT_EQ(o.status("busy"), "succeeded");
  EXPECT_EQ(o.status("again"), "succeeded");
  // stuck holds the one GPU until it is killed: timeout at 2, grace 2.
  EXPECT_DOUBLE_EQ(o.of("stuck").at(0).ended, 4);
  EXPECT_EQ(o.of("stuck").at(0).how, "killed");
  ASSERT_EQ(o.of("flaky").size(), 2u);
  EXPECT_DOUBLE_EQ(o.of("flaky").at(0).started, 4);  // then fails at once
  EXPECT_DOUBLE_EQ(o.of("flaky").at(1).started, 5);  // after its 1 s backoff
  // busy and again both follow flaky: busy takes the GPU at 5; again fails at
  // 10, and its retry, due at 11 while the GPU is free, runs at 11.
  EXPECT_DOUBLE_EQ(o.of("busy").at(0).started, 5);
  ASSERT_EQ(o.of("again").size(), 2u);
  EXPECT_DOUBLE_EQ(o.of("again").at(0).started, 10);
  EXPECT_DOUBLE_EQ(o.of("again").at(1).started, 11);
  for (const auto& a : o.attempts) EXPECT_EQ(a.gpus, std::vector<int>{5}) << a.unit;
  expect_gpus_never_shared(o.attempts, {5});
}

TEST_F(Scenario, ARetryThatNeedsABusyGpuWaitsForItsReleaseRatherThanItsBackoff) {
  const auto o = run(R"(steps:
  - name: flaky
    component: util.flaky
    parameters: {failures: 1}
    retries: {limit: 1, backoff: 1s}
    resources: {gpus: 1}
  - {name: long, component: util.sleep, parameters: {seconds: 5}, resources: {gpus: 1}}
)",
                     on_gpus(4, {0}));
  ASSERT_EQ(o.record["status"], "succeeded") << o.record.dump(2);
  ASSERT_EQ(o.of("flaky").size(), 2u);
  EXPECT_DOUBLE_EQ(o.of("flaky").at(0).started, 0);
  EXPECT_DOUBLE_EQ(o.of("long").at(0).started, 0);  // the GPU was free again once flaky failed
  EXPECT_DOUBLE_EQ(o.of("flaky").at(1).started, 5);  // due at 1, but the GPU is long's until 5
  expect_gpus_never_shared(o.attempts, {0});
}

TEST_F(Scenario, TuningTrialsSpreadOverTheGpusAndWaitForAFreeOne) {
  const auto o = run(R"(steps:
  - name: t
    component: util.objective
    parameters: {epochs: 2, epoch_seconds: 1}
    resources: {gpus: 1}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: uniform, low: 0.0, high: 3.0, grid_points: 4}
      parallel_trials: 4
)",
                     on_gpus(8, {2, 3}));
  ASSERT_EQ(o.status("t"), "succeeded") << o.record.dump(2);
  ASSERT_EQ(o.attempts.size(), 4u);
  EXPECT_EQ(o.peak, 2);  // four trials may run at once, two GPUs let two
  std::set<int> used;
  for (const auto& a : o.attempts) {
    ASSERT_EQ(a.gpus.size(), 1u) << a.unit;
    used.insert(a.gpus[0]);
  }
  EXPECT_EQ(used, (std::set<int>{2, 3}));
  expect_gpus_never_shared(o.attempts, {2, 3});
}

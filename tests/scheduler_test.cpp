// Scheduler (host/lib/engine/scheduler.hpp): the engine's decisions as pure
// functions of a RunState, the plan and a time. No executor, no clock, no
// thread: the state is driven by hand through its transitions, and each test
// asks what the engine would do next.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <tuple>

#include "run_state.hpp"
#include "scheduler.hpp"
#include "test_support.hpp"

using kiln::host::AttemptResult;
using kiln::host::EngineClock;
using kiln::host::FailureClass;
using kiln::host::Json;
using kiln::host::Plan;
using kiln::host::RunState;
using kiln::host::Scheduler;
using kiln::host::SchedulerOptions;
using kiln::host::StepDecision;
using kiln::host::UnitDecision;
using S = kiln::host::StepStatus;
using Kind = StepDecision::Kind;

namespace {

const EngineClock::time_point t0{};

EngineClock::time_point at(double seconds) {
  return t0 + kiln::host::seconds_duration(seconds);
}

RunState state_of(const Plan& plan) {
  return RunState(plan, "/runs/r", "r");
}

// Begins step `index` with one plain unit; returns the unit.
int begin_plain(RunState& state, size_t index) {
  const int id = state.add_unit(index, -1, nullptr);
  state.finish_step(index, S::running, "");
  return id;
}

void start(RunState& state, int id, EngineClock::time_point now = t0,
           std::optional<EngineClock::time_point> deadline = std::nullopt) {
  ++state.unit(id).attempt;
  state.start_attempt(id, now, deadline, "fake", "/runs/r/a", "");
}

AttemptResult failed_with(const std::string& failure_class, const std::string& message = "boom") {
  AttemptResult result;
  result.failure_class = failure_class;
  result.message = message;
  return result;
}

}  // namespace

TEST(Scheduler, AStepWaitsForEveryUpstreamStepAndThenBegins) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: a, component: util.noop}
  - {name: b, component: util.noop}
  - {name: c, component: util.noop, after: [a, b]}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{});
  EXPECT_EQ(scheduler.decide_step(state, 0).kind, Kind::begin_unit);
  EXPECT_EQ(scheduler.decide_step(state, 2).kind, Kind::wait);
  state.finish_step(0, S::succeeded, "");
  EXPECT_EQ(scheduler.decide_step(state, 2).kind, Kind::wait);  // b has not ended
  state.finish_step(1, S::cached, "");
  EXPECT_EQ(scheduler.decide_step(state, 2).kind, Kind::begin_unit);
  EXPECT_FALSE(scheduler.considered(state, 0));  // not pending any more
  EXPECT_TRUE(scheduler.considered(state, 2));
}

TEST(Scheduler, AnUpstreamStepThatDidNotSucceedEndsItsDependentsWithoutRunning) {
  const Plan plan = kiln::test::plan_text(R"(options: {failure_policy: continue}
steps:
  - {name: a, component: util.echo}
  - {name: reader, component: util.echo, inputs: {text: a.outputs.text}}
  - {name: follower, component: util.noop, after: [a]}
)");
  const Scheduler scheduler(SchedulerOptions{});
  for (const auto& [upstream, reader, follower, message] :
       std::vector<std::tuple<S, S, S, std::string>>{
           {S::failed, S::upstream_failed, S::upstream_failed, "upstream step 'a' did not succeed"},
           {S::upstream_failed, S::upstream_failed, S::upstream_failed, "upstream step 'a' did not succeed"},
           {S::cancelled, S::cancelled, S::cancelled, "not started: upstream step 'a' was cancelled"},
       }) {
    RunState state = state_of(plan);
    state.finish_step(0, upstream, "");
    const StepDecision r = scheduler.decide_step(state, 1), f = scheduler.decide_step(state, 2);
    EXPECT_EQ(r.kind, Kind::finish);
    EXPECT_EQ(r.status, reader);
    EXPECT_EQ(r.message, message);
    EXPECT_EQ(f.status, follower);
  }
  // Skipped: what needs its data is skipped; what only runs after it runs (like Argo).
  RunState state = state_of(plan);
  state.finish_step(0, S::skipped, "");
  const StepDecision r = scheduler.decide_step(state, 1);
  EXPECT_EQ(r.kind, Kind::finish);
  EXPECT_EQ(r.status, S::skipped);
  EXPECT_EQ(r.message, "upstream step 'a' was skipped");
  EXPECT_EQ(scheduler.decide_step(state, 2).kind, Kind::begin_unit);
}

TEST(Scheduler, AFalseConditionSkipsAStepAndABadOneFailsIt) {
  const Plan plan = kiln::test::plan_text(R"(parameters:
  go: {type: bool, default: false}
steps:
  - {name: gate, component: util.echo, when: params.go}
  - {name: other, component: util.noop, when: not params.go}
  - {name: a, component: util.echo, parameters: {message: x}}
  - {name: reads, component: util.noop, when: "steps.a.outputs.message == 'x'"}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{});
  const StepDecision gate = scheduler.decide_step(state, 0);
  EXPECT_EQ(gate.kind, Kind::finish);
  EXPECT_EQ(gate.status, S::skipped);
  EXPECT_EQ(gate.message, "condition is false: params.go");
  EXPECT_EQ(scheduler.decide_step(state, 1).kind, Kind::begin_unit);
  // `a` succeeded without setting the output its reader's condition needs: that fails the reader.
  state.finish_step(2, S::succeeded, "");
  const StepDecision reads = scheduler.decide_step(state, 3);
  EXPECT_EQ(reads.kind, Kind::finish);
  EXPECT_EQ(reads.status, S::failed);
  EXPECT_NE(reads.message.find("set no output parameter 'message'"), std::string::npos) << reads.message;
}

TEST(Scheduler, ALoopExpandsItsItemsAndFailsOnAnythingButAList) {
  const Plan plan = kiln::test::plan_text(R"(parameters:
  items: {type: list, default: [3, 1, 2]}
steps:
  - {name: loop, component: util.sleep, for_each: "{{ params.items }}", parameters: {seconds: "{{ item }}"}}
  - {name: each, component: util.echo, for_each: [x, y], parameters: {message: "{{ item }}"}}
  - {name: bad, component: util.sleep, for_each: "{{ steps.each.outputs.message }}", parameters: {seconds: 1}}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{});
  const StepDecision loop = scheduler.decide_step(state, 0);
  EXPECT_EQ(loop.kind, Kind::begin_loop);
  EXPECT_EQ(loop.items, Json::array({3, 1, 2}));
  // A list when the plan was checked; here `each` left a string instead.
  state.step(1).outputs["message"] = "nope";
  state.finish_step(1, S::succeeded, "");
  const StepDecision bad = scheduler.decide_step(state, 2);
  EXPECT_EQ(bad.kind, Kind::finish);
  EXPECT_EQ(bad.status, S::failed);
  EXPECT_EQ(bad.message,
            "p.yaml:9:51: 'for_each' (\"{{ steps.each.outputs.message }}\") resolved to \"nope\", not a list");
}

TEST(Scheduler, UnitsStartInOrderUpToJobsAndALoopsParallelism) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: loop, component: util.sleep, for_each: [1, 2, 3], parallelism: 2, parameters: {seconds: "{{ item }}"}}
  - {name: single, component: util.noop}
)");
  RunState state = state_of(plan);
  for (int i = 0; i < 3; ++i) state.add_unit(0, i, Json(i + 1));
  state.finish_step(0, S::running, "");
  const int single = begin_plain(state, 1);
  const Scheduler scheduler(SchedulerOptions{3, 1.0});
  // loop[0], loop[1], then the loop is full: loop[2] waits and `single` goes next.
  std::vector<int> launched;
  for (size_t from = 0;;) {
    const auto decision = scheduler.next_unit(state, t0, from);
    if (!decision) break;
    ASSERT_EQ(decision->kind, UnitDecision::Kind::launch);
    launched.push_back(decision->unit);
    start(state, decision->unit);
    from = static_cast<size_t>(decision->unit) + 1;
  }
  EXPECT_EQ(launched, (std::vector<int>{0, 1, single}));
  EXPECT_FALSE(scheduler.next_unit(state, t0, 0));  // 3 jobs run
  state.end_attempt(single, S::succeeded, FailureClass::none, "", 1);
  state.finish_unit(single, S::succeeded, "");
  EXPECT_FALSE(scheduler.next_unit(state, t0, 0));  // a job is free, but the loop is still full
  EXPECT_FALSE(scheduler.loop_has_room(state, 0));
  state.end_attempt(0, S::succeeded, FailureClass::none, "", 1);
  state.finish_unit(0, S::succeeded, "");
  const auto next = scheduler.next_unit(state, t0, 0);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->unit, 2);
}

TEST(Scheduler, ARetryWaitsItsBackoffWhichGrowsByItsFactor) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - name: flaky
    component: util.flaky
    retries: {limit: 2, backoff: 10s, factor: 2, max_backoff: 1h}
  - {name: once, component: util.flaky}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{});
  const int id = begin_plain(state, 0);
  start(state, id);
  const auto first = scheduler.after_attempt(state, state.unit(id), failed_with("error"));
  EXPECT_EQ(first.attempt_status, S::failed);
  EXPECT_EQ(first.failure, FailureClass::error);
  ASSERT_TRUE(first.retry);
  EXPECT_DOUBLE_EQ(first.retry_delay, 10);
  EXPECT_EQ(first.message, "boom (retry in 10.0 s)");
  state.end_attempt(id, first.attempt_status, first.failure, "boom", 1);
  state.schedule_retry(id, at(11), first.retry_delay, first.message);
  EXPECT_FALSE(scheduler.next_unit(state, at(10.5), 0));  // still backing off
  EXPECT_EQ(scheduler.next_deadline(state, std::nullopt, at(1000)), at(11));
  EXPECT_EQ(scheduler.next_deadline(state, std::nullopt, at(1000), true), at(11));  // a job is free
  const auto now = scheduler.next_unit(state, at(11), 0);
  ASSERT_TRUE(now);
  EXPECT_EQ(now->kind, UnitDecision::Kind::launch);
  start(state, id, at(11));
  const auto second = scheduler.after_attempt(state, state.unit(id), failed_with("error"));
  ASSERT_TRUE(second.retry);
  EXPECT_DOUBLE_EQ(second.retry_delay, 20);
  state.end_attempt(id, second.attempt_status, second.failure, "boom", 1);
  state.schedule_retry(id, at(32), second.retry_delay, second.message);
  start(state, id, at(32));
  const auto last = scheduler.after_attempt(state, state.unit(id), failed_with("error"));  // limit 2 reached
  EXPECT_FALSE(last.retry);
  EXPECT_EQ(last.unit_status, S::failed);
  EXPECT_EQ(last.message, "boom");
  // Without retries, a failure is final at once; a success always is.
  const int once = begin_plain(state, 1);
  start(state, once);
  EXPECT_FALSE(scheduler.after_attempt(state, state.unit(once), failed_with("crash")).retry);
  const auto ok = scheduler.after_attempt(state, state.unit(once), AttemptResult{});
  EXPECT_EQ(ok.unit_status, S::succeeded);
  EXPECT_EQ(ok.failure, FailureClass::none);
}

TEST(Scheduler, ADueRetryWaitsForAFreeJobRatherThanWakingTheEngineAgainAndAgain) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: flaky, component: util.flaky, retries: {limit: 2, backoff: 1s}}
  - {name: busy, component: util.sleep, parameters: {seconds: 60}}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{1, 1.0});  // one job
  const int flaky = begin_plain(state, 0);
  const int busy = begin_plain(state, 1);
  start(state, flaky);
  const auto failed = scheduler.after_attempt(state, state.unit(flaky), failed_with("error"));
  ASSERT_TRUE(failed.retry);
  state.end_attempt(flaky, failed.attempt_status, failed.failure, "boom", 1);
  state.schedule_retry(flaky, at(1), failed.retry_delay, failed.message);
  start(state, busy);
  // At 5 s the retry is due but the only job is busy: in real time the busy
  // unit's end wakes the engine, so the retry time is no deadline then
  // (the log check is the only one left); in virtual time it still is.
  EXPECT_FALSE(scheduler.next_unit(state, at(5), 0));
  EXPECT_EQ(scheduler.next_deadline(state, std::nullopt, at(1000), true), at(1000));
  EXPECT_EQ(scheduler.next_deadline(state, std::nullopt, at(1000), false), at(1));
  state.end_attempt(busy, S::succeeded, FailureClass::none, "", 1);
  state.finish_unit(busy, S::succeeded, "");
  EXPECT_EQ(scheduler.next_deadline(state, std::nullopt, at(1000), true), at(1));  // a job is free again
}

TEST(Scheduler, OnlyTheListedFailureClassesRetryAndNeverAStoppedUnit) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: a, component: util.flaky, retries: {limit: 5, backoff: 1s, on: [crash, timeout]}}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{});
  const int id = begin_plain(state, 0);
  start(state, id);
  EXPECT_FALSE(scheduler.after_attempt(state, state.unit(id), failed_with("error")).retry);
  EXPECT_TRUE(scheduler.after_attempt(state, state.unit(id), failed_with("crash")).retry);
  // Asked to stop: even a listed class does not retry, and a failure is the stop's.
  state.request_stop(id);
  EXPECT_FALSE(scheduler.after_attempt(state, state.unit(id), failed_with("crash")).retry);
  AttemptResult stopped = failed_with("crash", "killed by signal 15");
  scheduler.classify(state, state.unit(id), stopped);
  EXPECT_EQ(stopped.failure_class, "cancelled");
  const auto outcome = scheduler.after_attempt(state, state.unit(id), stopped);
  EXPECT_FALSE(outcome.retry);
  EXPECT_EQ(outcome.failure, FailureClass::stopped);
  EXPECT_EQ(outcome.attempt_status, S::cancelled);
  EXPECT_EQ(outcome.unit_status, S::cancelled);
  EXPECT_EQ(outcome.message, "killed by signal 15");
}

TEST(Scheduler, AnEarlyStoppedTrialEndsEarlyStoppedWhateverItsAttemptSaid) {
  const Plan plan = kiln::test::plan_text("steps:\n  - {name: a, component: util.sleep, parameters: {seconds: 9}}\n");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{});
  const int id = begin_plain(state, 0);
  start(state, id);
  state.request_stop(id, /*early=*/true);
  AttemptResult result = failed_with("error", "interrupted");
  scheduler.classify(state, state.unit(id), result);
  const auto outcome = scheduler.after_attempt(state, state.unit(id), result);
  EXPECT_EQ(outcome.attempt_status, S::early_stopped);
  EXPECT_EQ(outcome.unit_status, S::early_stopped);
  EXPECT_EQ(outcome.message, "stopped by the tuner");
  const auto early = scheduler.on_early_stop(id, at(3));
  EXPECT_TRUE(early.cancel);
  EXPECT_EQ(early.kill_at, at(8));  // the default grace: 5 s
}

TEST(Scheduler, ATimeoutAsksTheUnitToStopAndKillsItAfterTheGracePeriod) {
  const Plan plan = kiln::test::plan_text(
      "steps:\n  - {name: a, component: util.sleep, parameters: {seconds: 100}, timeout: 5s}\n");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{2, 3.0});
  const int id = begin_plain(state, 0);
  start(state, id, t0, at(5));
  EXPECT_EQ(scheduler.next_deadline(state, at(60), at(0.5)), at(0.5));  // the log check comes first
  EXPECT_EQ(scheduler.next_deadline(state, at(60), at(10)), at(5));
  const auto before = scheduler.check_deadline(state.unit(id), at(4.9));
  EXPECT_FALSE(before.time_out || before.kill);
  const auto due = scheduler.check_deadline(state.unit(id), at(5));
  EXPECT_TRUE(due.time_out);
  EXPECT_FALSE(due.kill);
  EXPECT_EQ(due.kill_at, at(8));
  state.mark_timed_out(id);
  state.set_kill_at(id, due.kill_at);
  EXPECT_EQ(scheduler.next_deadline(state, at(60), at(10)), at(8));  // the timeout is spent; the kill is next
  EXPECT_FALSE(scheduler.check_deadline(state.unit(id), at(7)).kill);
  EXPECT_TRUE(scheduler.check_deadline(state.unit(id), at(8)).kill);
  AttemptResult result = failed_with("crash");
  scheduler.classify(state, state.unit(id), result);
  EXPECT_EQ(result.failure_class, "timeout");
  EXPECT_EQ(result.message, "timed out after 5.0 s");
  // No grace: a timeout kills at once.
  RunState hard = state_of(plan);
  const int other = begin_plain(hard, 0);
  start(hard, other, t0, at(5));
  const auto now = Scheduler(SchedulerOptions{2, 0.0}).check_deadline(hard.unit(other), at(5));
  EXPECT_TRUE(now.time_out && now.kill);
}

TEST(Scheduler, CancellingSignalsOnceWithGraceAndASecondRequestKillsAtOnce) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: a, component: util.sleep, parameters: {seconds: 100}}
  - {name: b, component: util.sleep, parameters: {seconds: 100}}
  - {name: c, component: util.noop, after: [a]}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{2, 5.0});
  const int a = begin_plain(state, 0), b = begin_plain(state, 1);
  start(state, a);
  start(state, b);
  state.request_stop(b);
  state.set_kill_at(b, at(2));  // already being stopped: keeps its kill time
  state.request_cancel();
  const auto first = scheduler.on_cancel(state, at(1));
  ASSERT_EQ(first.size(), 2u);
  EXPECT_TRUE(first[0].cancel);
  EXPECT_EQ(first[0].kill_at, at(6));
  EXPECT_FALSE(first[1].kill_at.has_value());
  // Nothing new starts; what waits is cancelled.
  EXPECT_EQ(scheduler.decide_step(state, 2).kind, Kind::wait);  // its upstream still runs
  state.end_attempt(a, S::cancelled, FailureClass::stopped, "", 1);
  state.finish_unit(a, S::cancelled, "");
  state.finish_step(0, S::cancelled, "");
  EXPECT_EQ(scheduler.decide_step(state, 2).message, "not started: upstream step 'a' was cancelled");
  state.request_cancel();
  const auto second = scheduler.on_cancel(state, at(2));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_FALSE(second[0].cancel);
  EXPECT_EQ(second[0].kill_at, at(2));
}

TEST(Scheduler, AStoppingRunCancelsWaitingUnitsAndStepsButRunsFinallySteps) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: a, component: util.flaky, retries: {limit: 3, backoff: 1h}}
  - {name: b, component: util.noop}
finally:
  - {name: cleanup, component: util.noop}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{});
  const int a = begin_plain(state, 0);
  start(state, a);
  state.end_attempt(a, S::failed, FailureClass::error, "boom", 1);
  state.schedule_retry(a, at(3600), 3600, "boom (retry in 3600.0 s)");
  EXPECT_FALSE(scheduler.considered(state, 2));  // finally steps wait for the DAG
  ASSERT_TRUE(state.begin_policy_stop());
  const auto cancel = scheduler.next_unit(state, t0, 0);  // also ends a retry's backoff
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->kind, UnitDecision::Kind::cancel);
  EXPECT_EQ(cancel->message, "not started: the run is stopping");
  const StepDecision b = scheduler.decide_step(state, 1);
  EXPECT_EQ(b.status, S::cancelled);
  EXPECT_EQ(b.message, "not started: the run is stopping");
  state.finish_unit(a, S::cancelled, cancel->message);
  state.finish_step(0, S::cancelled, "");
  state.finish_step(1, b.status, b.message);
  state.finish_main_phase();
  EXPECT_TRUE(scheduler.considered(state, 2));
  EXPECT_EQ(scheduler.decide_step(state, 2).kind, Kind::begin_unit);
  const int cleanup = begin_plain(state, 2);
  const auto launch = scheduler.next_unit(state, t0, 0);
  ASSERT_TRUE(launch);
  EXPECT_EQ(launch->unit, cleanup);
  EXPECT_EQ(launch->kind, UnitDecision::Kind::launch);
}

TEST(Scheduler, TheStopPolicyStopsRunningDagUnitsAndKeepsAnEarlierKillTime) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: a, component: util.sleep, parameters: {seconds: 100}}
  - {name: b, component: util.sleep, parameters: {seconds: 100}}
finally:
  - {name: cleanup, component: util.sleep, parameters: {seconds: 100}}
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{3, 5.0});
  const int a = begin_plain(state, 0), b = begin_plain(state, 1), cleanup = begin_plain(state, 2);
  start(state, a);
  start(state, b);
  start(state, cleanup);
  state.request_stop(b);
  state.set_kill_at(b, at(2));
  state.begin_policy_stop();
  const auto orders = scheduler.on_policy_stop(state, at(1));
  ASSERT_EQ(orders.size(), 2u);  // not the finally step
  EXPECT_EQ(orders[0].unit, a);
  EXPECT_TRUE(orders[0].cancel);
  EXPECT_EQ(orders[0].kill_at, at(6));
  EXPECT_EQ(orders[1].unit, b);
  EXPECT_EQ(orders[1].kill_at, at(2));
}

TEST(Scheduler, AStepEndsWithItsFirstUnsuccessfulUnitElseSucceededOrAllCached) {
  const Plan plan = kiln::test::plan_text(
      "steps:\n  - {name: loop, component: util.sleep, for_each: [1, 2, 3], parameters: {seconds: 1}}\n");
  const Scheduler scheduler(SchedulerOptions{});
  const auto outcome = [&](std::vector<S> statuses, std::vector<std::string> messages = {}) {
    RunState state = state_of(plan);
    for (size_t i = 0; i < statuses.size(); ++i) {
      const int id = state.add_unit(0, static_cast<int>(i), Json(1));
      state.finish_unit(id, statuses[i], i < messages.size() ? messages[i] : "");
    }
    return scheduler.step_outcome(state, 0);
  };
  EXPECT_EQ(outcome({S::cached, S::cached}).status, S::cached);
  EXPECT_EQ(outcome({S::cached, S::succeeded, S::cached}).status, S::succeeded);
  const auto failed = outcome({S::succeeded, S::failed, S::cancelled}, {"", "boom", ""});
  EXPECT_EQ(failed.status, S::failed);
  EXPECT_EQ(failed.message, "loop[1]: boom");
  EXPECT_EQ(outcome({S::cancelled}).message, "loop[0]: cancelled");
}

TEST(Scheduler, ATrialEndsWithItsWorstStepAndStartsItsStepsInOrder) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - name: t
    component: util.sleep
    parameters: {seconds: 1}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {seconds: {type: uniform, low: 0.0, high: 1.0, grid_points: 2}}
      parallel_trials: 3
)");
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{2, 1.0});
  EXPECT_EQ(scheduler.decide_step(state, 0).kind, Kind::begin_tune);
  EXPECT_EQ(scheduler.trial_parallelism(*state.step(0).planned), 3);
  const int zero = state.add_unit(0, 0, Json{{"seconds", 0.0}});
  const int one = state.add_unit(0, 1, Json{{"seconds", 1.0}});
  state.finish_step(0, S::running, "");
  EXPECT_EQ(scheduler.active_trials(state, 0), 2);
  EXPECT_FALSE(scheduler.trial_status(state, 0, 0));  // not ended
  start(state, zero);
  state.end_attempt(zero, S::early_stopped, FailureClass::stopped, "", 1);
  state.finish_unit(zero, S::early_stopped, "stopped by the tuner");
  EXPECT_EQ(scheduler.trial_status(state, 0, 0), S::early_stopped);
  state.finish_unit(one, S::upstream_failed, "");
  EXPECT_EQ(scheduler.trial_status(state, 0, 1), S::failed);  // a trial fails, not "upstream failed"
  EXPECT_EQ(scheduler.active_trials(state, 0), 0);
  // Halting a trial stops its running units once, and leaves pending ones to the engine.
  const int two = state.add_unit(0, 2, Json{{"seconds", 0.5}});
  start(state, two);
  const auto orders = scheduler.on_halt(state, {two}, at(1));
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_EQ(orders[0].kill_at, at(2));
  state.request_stop(two);
  EXPECT_TRUE(scheduler.on_halt(state, {two}, at(1)).empty());
}

TEST(Scheduler, ATuningStepEndsWithItsBestSuccessfulTrialOrSaysWhyNot) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - name: t
    component: util.sleep
    parameters: {seconds: 1}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {seconds: {type: uniform, low: 0.0, high: 1.0, grid_points: 3}}
)");
  const Scheduler scheduler(SchedulerOptions{});
  const double nan = std::nan("");
  // Trials 0..2 end with `statuses`.
  const auto outcome = [&](std::vector<S> statuses, std::map<int, double> values, const std::string& failure = "") {
    RunState state = state_of(plan);
    for (size_t i = 0; i < statuses.size(); ++i) state.add_unit(0, static_cast<int>(i), Json{{"seconds", 0.5}});
    state.finish_step(0, S::running, "");
    for (size_t i = 0; i < statuses.size(); ++i) state.finish_unit(static_cast<int>(i), statuses[i], "");
    return scheduler.tuning_outcome(state, 0, values, failure);
  };
  const auto best = outcome({S::succeeded, S::cached, S::early_stopped}, {{0, 0.5}, {1, 0.25}, {2, 0.1}});
  EXPECT_EQ(best.status, S::succeeded);
  EXPECT_EQ(best.best_trial, 1);  // the early-stopped trial's lower value does not count
  EXPECT_DOUBLE_EQ(best.best_value, 0.25);
  EXPECT_EQ(best.message, "best: trial 1, loss = 0.25 (1 cached, 1 early-stopped, 1 succeeded)");
  const auto none = outcome({S::succeeded, S::failed}, {{0, nan}, {1, 0.1}});
  EXPECT_EQ(none.status, S::failed);
  EXPECT_EQ(none.best_trial, -1);
  EXPECT_EQ(none.message, "no trial succeeded (1 failed, 1 succeeded)");
  const auto cancelled = outcome({S::succeeded, S::cancelled}, {{0, 1.0}});
  EXPECT_EQ(cancelled.status, S::cancelled);
  EXPECT_EQ(cancelled.message, "the search was cancelled (1 cancelled, 1 succeeded)");
  const auto failed = outcome({S::succeeded, S::failed, S::failed}, {{0, 1.0}}, "2 trials failed (max_failed_trials: 1)");
  EXPECT_EQ(failed.status, S::failed);
  EXPECT_EQ(failed.message, "2 trials failed (max_failed_trials: 1) (2 failed, 1 succeeded)");
}

namespace {

// The fan-out/fan-in DAG of bench/dag_overhead.sh: `layers` layers of
// `width` util.noop steps, each layer after the previous layer's join.
std::string fan_dag(int layers, int width) {
  std::string text = "steps:\n";
  for (int l = 0; l < layers; ++l) {
    std::string join_after;
    for (int i = 0; i < width; ++i) {
      const std::string name = "s" + std::to_string(l) + "_" + std::to_string(i);
      text += "  - {name: " + name + ", component: util.noop" +
              (l > 0 ? ", after: [j" + std::to_string(l - 1) + "]" : std::string()) + "}\n";
      join_after += (i ? ", " : "") + name;
    }
    text += "  - {name: j" + std::to_string(l) + ", component: util.noop, after: [" + join_after + "]}\n";
  }
  return text;
}

struct Examined {
  uint64_t most = 0;   // in one decision
  uint64_t total = 0;  // over the run
  size_t decisions = 0;
};

// Runs `plan` to its end the way the engine drives the scheduler (passes
// over ready steps in index order, then launches; the oldest running unit
// ends next), counting what each decision looked at.
Examined drive(const Plan& plan, int jobs) {
  RunState state = state_of(plan);
  const Scheduler scheduler(SchedulerOptions{jobs, 1.0});
  Examined seen;
  const auto count = [&](uint64_t before) {
    const uint64_t n = scheduler.examined() - before;
    seen.most = std::max(seen.most, n);
    seen.total += n;
    ++seen.decisions;
  };
  while (!state.all_terminal(false)) {
    for (size_t from = 0;;) {
      const uint64_t before = scheduler.examined();
      const auto next = scheduler.next_step(state, from);
      count(before);
      if (!next) break;
      from = *next + 1;
      EXPECT_EQ(scheduler.decide_step(state, *next).kind, Kind::begin_unit);
      begin_plain(state, *next);
    }
    for (size_t from = 0;;) {
      const uint64_t before = scheduler.examined();
      const auto decision = scheduler.next_unit(state, t0, from);
      count(before);
      if (!decision) break;
      from = static_cast<size_t>(decision->unit) + 1;
      start(state, decision->unit);
    }
    if (state.running_units().empty()) {
      ADD_FAILURE() << "nothing runs and the DAG has not ended";
      break;
    }
    const int done = *state.running_units().begin();
    state.end_attempt(done, S::succeeded, FailureClass::none, "", 0);
    state.finish_unit(done, S::succeeded, "");
    state.finish_step(state.unit(done).step, S::succeeded, "");
  }
  return seen;
}

}  // namespace

TEST(Scheduler, ADecisionLooksAtAFewStepsAndUnitsHoweverBigTheDag) {
  const Plan small = kiln::test::plan_text(fan_dag(2, 9));    // 20 steps
  const Plan big = kiln::test::plan_text(fan_dag(40, 49));    // 2,000 steps
  const Examined s = drive(small, 2), b = drive(big, 2);
  EXPECT_EQ(b.most, s.most);  // a scan of every step or unit would look at ~100x more
  EXPECT_LE(b.most, 2u);
  EXPECT_LE(b.total, 2 * b.decisions);
  EXPECT_GE(b.decisions, 2000u);
}

TEST(Scheduler, AFullLoopsWaitingItemsAreNotLookedAtOneByOne) {
  const auto plan_of = [](int items) {
    std::string list;
    for (int i = 0; i < items; ++i) list += (i ? ", " : "") + std::to_string(i);
    return kiln::test::plan_text("steps:\n  - {name: loop, component: util.sleep, parallelism: 1, for_each: [" + list +
                                 "], parameters: {seconds: 1}}\n  - {name: other, component: util.noop}\n");
  };
  const auto examined_for_two_launches = [](const Plan& plan) {
    RunState state = state_of(plan);
    const Scheduler scheduler(SchedulerOptions{3, 1.0});
    const size_t items = state.plan().steps[0].spec.for_each->value.size();
    for (size_t i = 0; i < items; ++i) state.add_unit(0, static_cast<int>(i), Json(1));
    state.finish_step(0, S::running, "");
    const int other = begin_plain(state, 1);
    std::vector<int> launched;
    for (size_t from = 0;;) {
      const auto decision = scheduler.next_unit(state, t0, from);
      if (!decision) break;
      launched.push_back(decision->unit);
      start(state, decision->unit);
      from = static_cast<size_t>(decision->unit) + 1;
    }
    EXPECT_EQ(launched, (std::vector<int>{0, other}));  // the loop is full after its first item
    return scheduler.examined();
  };
  EXPECT_EQ(examined_for_two_launches(plan_of(1000)), examined_for_two_launches(plan_of(3)));
}

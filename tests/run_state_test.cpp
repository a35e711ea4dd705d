// RunState (host/lib/engine/run_state.hpp): the run's statuses and their
// legal transitions, each returning the event the engine publishes. No
// executor, no clock, no store: the state is driven by hand.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "run_state.hpp"
#include "test_support.hpp"

using kiln::host::EngineClock;
using kiln::host::FailureClass;
using kiln::host::IllegalTransition;
using kiln::host::InputArtifact;
using kiln::host::Json;
using kiln::host::Plan;
using kiln::host::RunState;
using kiln::host::RunStatus;
using S = kiln::host::StepStatus;

namespace {

const EngineClock::time_point t0{};

const Plan& loop_plan() {
  static const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: one, component: util.echo, parameters: {message: hi}}
  - {name: loop, component: util.sleep, for_each: [1, 2, 3], parameters: {seconds: "{{ item }}"}}
finally:
  - {name: cleanup, component: util.noop}
)");
  return plan;
}

RunState fresh(const Plan& plan = loop_plan()) {
  return RunState(plan, "/runs/r1", "r1");
}

// Starts and ends one attempt of unit `id` of a running step.
void run_attempt(RunState& state, int id, S attempt_status = S::failed) {
  ++state.unit(id).attempt;
  state.start_attempt(id, t0, std::nullopt, "fake", "/runs/r1/steps/x/attempt-1", "");
  state.end_attempt(id, attempt_status, attempt_status == S::failed ? FailureClass::error : FailureClass::none,
                    "", 1.5);
}

}  // namespace

TEST(RunState, UnitsAreNamedByStepItemAndTrialStep) {
  RunState state = fresh();
  const int plain = state.add_unit(0, -1, nullptr);
  const int item = state.add_unit(1, 2, Json(3));
  EXPECT_EQ(state.unit(plain).name.display, "one");
  EXPECT_EQ(state.unit(plain).name.key, "");
  EXPECT_EQ(state.unit(item).name.display, "loop[2]");
  EXPECT_EQ(state.unit(item).name.key, "2");
  EXPECT_EQ(state.unit(item).dir, "/runs/r1/steps/loop/2");
  EXPECT_EQ(state.unit(item).status(), S::pending);
  EXPECT_EQ(state.step(1).units, std::vector<int>{item});
  EXPECT_EQ(state.relative_to_run("/runs/r1/steps/loop/2/attempt-1"), "steps/loop/2/attempt-1");
  EXPECT_EQ(state.relative_to_run("/elsewhere/x"), "/elsewhere/x");
}

TEST(RunState, AStepGoesFromPendingToRunningToOneTerminalStatusOnly) {
  RunState state = fresh();
  const auto began = state.finish_step(0, S::running, "");
  EXPECT_EQ(began.step, "one");
  EXPECT_EQ(began.status, S::running);
  EXPECT_FALSE(began.has_units);
  EXPECT_THROW(state.finish_step(0, S::running, ""), IllegalTransition);  // began twice
  EXPECT_THROW(state.finish_step(0, S::pending, ""), IllegalTransition);  // back to pending
  state.step(0).outputs = Json{{"message", "hi"}};
  const auto ended = state.finish_step(0, S::succeeded, "");
  EXPECT_EQ(ended.outputs, (Json{{"message", "hi"}}));
  EXPECT_EQ(state.step(0).status(), S::succeeded);
  EXPECT_THROW(state.finish_step(0, S::failed, "again"), IllegalTransition);  // no double finish
  EXPECT_THROW(state.add_unit(0, -1, nullptr), IllegalTransition);           // a finished step takes no unit
  EXPECT_EQ(state.step(0).status(), S::succeeded);
  // A pending step may end at once (skipped, upstream failed, ...); a failed one carries no outputs.
  const auto skipped = state.finish_step(2, S::skipped, "condition is false: x");
  EXPECT_EQ(skipped.message, "condition is false: x");
  EXPECT_TRUE(skipped.outputs.is_null());
}

TEST(RunState, ALoopStepReportsItsItemCount) {
  RunState state = fresh();
  for (int i = 0; i < 3; ++i) state.add_unit(1, i, Json(i + 1));
  const auto began = state.finish_step(1, S::running, "");
  ASSERT_TRUE(began.items.has_value());
  EXPECT_EQ(*began.items, 3u);
  EXPECT_TRUE(began.has_units);
}

TEST(RunState, AnAttemptStartsOnlyForAPendingUnitOfARunningStep) {
  RunState state = fresh();
  const int id = state.add_unit(0, -1, nullptr);
  ++state.unit(id).attempt;
  EXPECT_THROW(state.start_attempt(id, t0, std::nullopt, "fake", "/runs/r1/steps/one/attempt-1", ""),
               IllegalTransition);  // its step has not begun
  state.finish_step(0, S::running, "");
  const auto deadline = t0 + std::chrono::seconds(5);
  const auto started = state.start_attempt(id, t0, deadline, "fake", "/runs/r1/steps/one/attempt-1", "img");
  EXPECT_EQ(started.unit.display, "one");
  EXPECT_EQ(started.attempt, 1);
  EXPECT_EQ(started.dir, "steps/one/attempt-1");
  EXPECT_EQ(started.image, "img");
  EXPECT_EQ(state.unit(id).status(), S::running);
  EXPECT_EQ(state.unit(id).deadline(), deadline);
  EXPECT_EQ(state.running(), 1);
  EXPECT_THROW(state.start_attempt(id, t0, std::nullopt, "fake", "/runs/r1/x", ""), IllegalTransition);
  EXPECT_EQ(state.running(), 1);
}

TEST(RunState, AnAttemptHoldsItsGpusUntilItEndsAndNoTwoHoldOne) {
  RunState state(loop_plan(), "/runs/r1", "r1", {0, 1, 2});
  for (int i = 0; i < 3; ++i) state.add_unit(1, i, Json(i + 1));
  state.finish_step(1, S::running, "");
  for (int id = 0; id < 3; ++id) ++state.unit(id).attempt;
  const auto started = state.start_attempt(0, t0, std::nullopt, "fake", "/runs/r1/steps/loop/0/attempt-1", "", {0, 2});
  EXPECT_EQ(started.gpus, (std::vector<int>{0, 2}));
  EXPECT_EQ(state.unit(0).gpus(), (std::vector<int>{0, 2}));
  EXPECT_EQ(state.free_gpus(), std::set<int>{1});
  EXPECT_THROW(state.start_attempt(1, t0, std::nullopt, "fake", "/runs/r1/x", "", {2}), IllegalTransition);  // held
  EXPECT_THROW(state.start_attempt(1, t0, std::nullopt, "fake", "/runs/r1/x", "", {7}), IllegalTransition);  // not the run's
  EXPECT_THROW(state.start_attempt(1, t0, std::nullopt, "fake", "/runs/r1/x", "", {1, 1}), IllegalTransition);
  EXPECT_EQ(state.free_gpus(), std::set<int>{1});  // a refused start takes nothing
  EXPECT_EQ(state.unit(1).status(), S::pending);
  state.start_attempt(1, t0, std::nullopt, "fake", "/runs/r1/x", "", {1});
  EXPECT_TRUE(state.free_gpus().empty());
  state.end_attempt(0, S::failed, FailureClass::timeout, "timed out", 1);
  EXPECT_EQ(state.free_gpus(), (std::set<int>{0, 2}));
  EXPECT_TRUE(state.unit(0).gpus().empty());
  state.end_attempt(1, S::cancelled, FailureClass::stopped, "", 1);
  EXPECT_EQ(state.free_gpus(), (std::set<int>{0, 1, 2}));
  EXPECT_EQ(state.gpus(), (std::vector<int>{0, 1, 2}));
}

TEST(RunState, AUnitFinishesOnceAndNeverWhileItsAttemptRuns) {
  RunState state = fresh();
  const int id = state.add_unit(0, -1, nullptr);
  state.finish_step(0, S::running, "");
  ++state.unit(id).attempt;
  state.start_attempt(id, t0, std::nullopt, "fake", "/runs/r1/steps/one/attempt-1", "");
  EXPECT_THROW(state.finish_unit(id, S::succeeded, ""), IllegalTransition);  // the attempt has not ended
  EXPECT_THROW(state.end_attempt(id, S::running, FailureClass::none, "", 1), IllegalTransition);
  const auto ended = state.end_attempt(id, S::succeeded, FailureClass::none, "", 2.5);
  EXPECT_EQ(ended.status, S::succeeded);
  EXPECT_DOUBLE_EQ(ended.duration_seconds, 2.5);
  EXPECT_EQ(state.running(), 0);
  EXPECT_DOUBLE_EQ(state.unit(id).attempt_seconds, 2.5);
  EXPECT_THROW(state.end_attempt(id, S::succeeded, FailureClass::none, "", 1), IllegalTransition);  // ended twice
  state.unit(id).result.output_parameters = Json{{"message", "hi"}};
  state.unit(id).artifacts["text"] = InputArtifact{"/runs/r1/steps/one/attempt-1/outputs/text", Json::object(), "d1", {}};
  const auto finished = state.finish_unit(id, S::succeeded, "");
  EXPECT_EQ(finished.outputs, (Json{{"message", "hi"}}));
  ASSERT_EQ(finished.artifacts.size(), 1u);
  EXPECT_EQ(finished.artifacts[0].path, "steps/one/attempt-1/outputs/text");
  EXPECT_EQ(finished.artifacts[0].digest, "d1");
  EXPECT_THROW(state.finish_unit(id, S::failed, "again"), IllegalTransition);
  EXPECT_THROW(state.finish_unit(state.add_unit(1, 0, 1), S::running, ""), IllegalTransition);  // not terminal
  EXPECT_EQ(state.unit(id).status(), S::succeeded);
}

TEST(RunState, AFailedUnitPublishesNoOutputsAndKeepsItsMessage) {
  RunState state = fresh();
  const int id = state.add_unit(0, -1, nullptr);
  state.unit(id).result.output_parameters = Json{{"partial", 1}};
  const auto finished = state.finish_unit(id, S::upstream_failed, "step 'x' of this trial did not succeed");
  EXPECT_EQ(finished.outputs, Json::object());
  EXPECT_TRUE(finished.artifacts.empty());
  EXPECT_EQ(state.unit(id).message(), "step 'x' of this trial did not succeed");
}

TEST(RunState, ARetryNeedsAnAttemptOfThisRunAndWaitsUntilItsTime) {
  RunState state = fresh();
  const int id = state.add_unit(0, -1, nullptr);
  state.finish_step(0, S::running, "");
  EXPECT_THROW(state.schedule_retry(id, t0, 1, ""), IllegalTransition);  // nothing ran yet
  run_attempt(state, id);
  const auto at = t0 + std::chrono::seconds(10);
  const auto retry = state.schedule_retry(id, at, 10, "boom (retry in 10.0 s)");
  EXPECT_EQ(retry.attempt, 1);
  EXPECT_DOUBLE_EQ(retry.delay_seconds, 10);
  EXPECT_EQ(state.unit(id).retry_at(), at);
  EXPECT_EQ(state.unit(id).status(), S::pending);
  // Resumed attempts do not count: a unit whose attempts all came before a resume cannot retry.
  const int resumed = state.add_unit(1, 0, 1);
  state.unit(resumed).attempt = state.unit(resumed).attempt_base = 2;
  EXPECT_THROW(state.schedule_retry(resumed, at, 1, ""), IllegalTransition);
}

TEST(RunState, OnlyARunningUnitIsStoppedTimedOutOrKilled) {
  RunState state = fresh();
  const int id = state.add_unit(0, -1, nullptr);
  EXPECT_THROW(state.request_stop(id), IllegalTransition);
  EXPECT_THROW(state.mark_timed_out(id), IllegalTransition);
  EXPECT_THROW(state.set_kill_at(id, t0), IllegalTransition);
  state.finish_step(0, S::running, "");
  ++state.unit(id).attempt;
  state.start_attempt(id, t0, std::nullopt, "fake", "/runs/r1/a", "");
  state.request_stop(id, /*early=*/true);
  state.mark_timed_out(id);
  state.set_kill_at(id, t0 + std::chrono::seconds(3));
  EXPECT_TRUE(state.unit(id).stop_requested());
  EXPECT_TRUE(state.unit(id).early_stop());
  EXPECT_TRUE(state.unit(id).timed_out());
  EXPECT_EQ(state.unit(id).kill_at(), t0 + std::chrono::seconds(3));
  EXPECT_TRUE(state.halted(state.unit(id)));
}

TEST(RunState, TheRunEndsItsDagPhaseOnceEveryDagStepEnded) {
  RunState state = fresh();
  EXPECT_THROW(state.finish_main_phase(), IllegalTransition);
  state.finish_step(0, S::failed, "boom");
  state.finish_step(1, S::skipped, "");
  EXPECT_TRUE(state.all_terminal(false));
  EXPECT_FALSE(state.all_terminal(true));
  state.finish_main_phase();
  EXPECT_TRUE(state.main_done());
  EXPECT_EQ(state.run_status(), RunStatus::failed);
  EXPECT_THROW(state.finish_main_phase(), IllegalTransition);
  // run.failed_steps and run.status, as a finally step sees them.
  kiln::host::Reference failed;
  failed.kind = kiln::host::Reference::Kind::RunFailedSteps;
  EXPECT_EQ(state.resolver(nullptr)(failed), Json::array({"one"}));
  kiln::host::Reference status;
  status.kind = kiln::host::Reference::Kind::RunStatus;
  EXPECT_EQ(state.resolver(nullptr)(status), "failed");
  const auto finished = state.finish_run(4.0);
  EXPECT_EQ(finished.status, RunStatus::failed);
  EXPECT_THROW(state.finish_run(4.0), IllegalTransition);
  EXPECT_THROW(state.fail_run("late"), IllegalTransition);
}

TEST(RunState, ACancelledOrTimedOutRunIsCancelledOrFailedWhateverItsSteps) {
  RunState cancelled = fresh();
  EXPECT_FALSE(cancelled.stopping());
  EXPECT_EQ(cancelled.request_cancel().requests, 1);
  EXPECT_EQ(cancelled.request_cancel().requests, 2);
  EXPECT_TRUE(cancelled.stopping());
  cancelled.finish_step(0, S::succeeded, "");
  cancelled.finish_step(1, S::succeeded, "");
  cancelled.finish_main_phase();
  EXPECT_EQ(cancelled.run_status(), RunStatus::cancelled);

  RunState timed_out = fresh();
  timed_out.time_out_run("the run timed out after 60.0 s");
  timed_out.request_cancel();
  timed_out.finish_step(0, S::cancelled, "");
  timed_out.finish_step(1, S::cancelled, "");
  timed_out.finish_main_phase();
  EXPECT_EQ(timed_out.run_status(), RunStatus::failed);
  EXPECT_EQ(timed_out.finish_run(60).message, "the run timed out after 60.0 s");
}

TEST(RunState, TheStopPolicyBeginsOnceAndOnlyUnderFailurePolicyStop) {
  RunState stop = fresh();
  EXPECT_TRUE(stop.begin_policy_stop());
  EXPECT_FALSE(stop.begin_policy_stop());
  EXPECT_TRUE(stop.stopping());
  const int dag = stop.add_unit(1, 0, 1);
  const int finally = stop.add_unit(2, -1, nullptr);
  EXPECT_TRUE(stop.halted(stop.unit(dag)));
  EXPECT_FALSE(stop.halted(stop.unit(finally)));  // finally steps run whatever the policy did

  const Plan continuing = kiln::test::plan_text(
      "options: {failure_policy: continue}\nsteps:\n  - {name: a, component: util.noop}\n");
  RunState carry_on = fresh(continuing);
  EXPECT_FALSE(carry_on.begin_policy_stop());
  EXPECT_FALSE(carry_on.stopping());
}

TEST(RunState, ReferencesResolveItemsOnlyInsideALoopAndOutputsOnlyOnceSet) {
  RunState state = fresh();
  const int item = state.add_unit(1, 1, Json(2));
  kiln::host::Reference ref;
  ref.kind = kiln::host::Reference::Kind::Item;
  EXPECT_EQ(state.resolver(&state.unit(item))(ref), 2);
  EXPECT_THROW(state.resolver(nullptr)(ref), std::runtime_error);
  kiln::host::Reference output;
  output.kind = kiln::host::Reference::Kind::StepOutput;
  output.step = "one";
  output.output = "message";
  EXPECT_THROW(state.resolver(nullptr)(output), std::runtime_error);
  state.step(0).outputs["message"] = "hi";
  EXPECT_EQ(state.resolver(nullptr)(output), "hi");
  EXPECT_THROW(state.step_named("nope"), std::runtime_error);
}

TEST(RunState, ItsIndexesFollowEveryTransition) {
  const Plan plan = kiln::test::plan_text(R"(steps:
  - {name: a, component: util.noop}
  - {name: b, component: util.noop, after: [a]}
  - {name: loop, component: util.sleep, for_each: [1, 2], parameters: {seconds: 1}}
finally:
  - {name: cleanup, component: util.noop}
  - {name: report, component: util.noop, after: [cleanup]}
)");
  RunState state = fresh(plan);
  EXPECT_EQ(state.ready_steps(), (std::set<size_t>{0, 2}));  // b waits for a; finally steps for the DAG
  EXPECT_EQ(state.step(1).upstream(), std::vector<size_t>{0});
  state.finish_step(0, S::running, "");
  EXPECT_EQ(state.ready_steps(), std::set<size_t>{2});
  state.finish_step(0, S::succeeded, "");
  EXPECT_EQ(state.ready_steps(), (std::set<size_t>{1, 2}));
  const int one = state.add_unit(2, 0, Json(1)), two = state.add_unit(2, 1, Json(2));
  state.finish_step(2, S::running, "");
  EXPECT_EQ(state.pending_units(), (std::set<int>{one, two}));
  EXPECT_EQ(state.step(2).unfinished_units(), 2);
  ++state.unit(one).attempt;
  state.start_attempt(one, t0, std::nullopt, "fake", "/runs/r1/steps/loop/0/attempt-1", "");
  EXPECT_EQ(state.pending_units(), std::set<int>{two});
  EXPECT_EQ(state.running_units(), std::set<int>{one});
  EXPECT_EQ(state.step(2).running_units(), 1);
  state.end_attempt(one, S::failed, FailureClass::error, "boom", 1);
  EXPECT_TRUE(state.running_units().empty());
  EXPECT_EQ(state.step(2).running_units(), 0);
  const auto later = t0 + std::chrono::seconds(5);
  state.schedule_retry(one, later, 5, "boom (retry in 5.0 s)");
  EXPECT_EQ(state.pending_units(), std::set<int>{two});
  ASSERT_EQ(state.retrying_units().size(), 1u);
  EXPECT_EQ(*state.retrying_units().begin(), std::make_pair(later, one));
  state.finish_unit(one, S::cancelled, "");
  state.finish_unit(two, S::cancelled, "");
  EXPECT_TRUE(state.retrying_units().empty());
  EXPECT_TRUE(state.pending_units().empty());
  EXPECT_EQ(state.step(2).unfinished_units(), 0);
  state.finish_step(2, S::cancelled, "");
  state.finish_step(1, S::skipped, "");
  EXPECT_TRUE(state.ready_steps().empty());
  EXPECT_TRUE(state.all_terminal(false));
  state.finish_main_phase();
  EXPECT_EQ(state.ready_steps(), std::set<size_t>{3});  // report waits for cleanup
  state.finish_step(3, S::succeeded, "");
  EXPECT_EQ(state.ready_steps(), std::set<size_t>{4});
  EXPECT_FALSE(state.all_terminal(true));
}

// A tuning step's trials are indexed as units are added and finish
// (trial_units, trial_ids, active_trials, sibling_named): checked against a
// scan of every unit after each change, for 3,000 trials of a two-step
// template added and finished out of order (issue 16: no lookup scans the
// step's units, which made a search of thousands of trials quadratic).
TEST(RunState, ATuningStepsTrialsAreIndexedAsTheyAreAddedAndFinished) {
  static const Plan plan = kiln::test::plan_text(R"(
templates:
  pair:
    steps:
      - {name: prepare, component: util.sleep}
      - {name: fit, component: util.echo, parameters: {message: fit}, after: prepare}
steps:
  - name: t
    tune:
      trial: pair
      tuner: tune.random
      objective: {metric: loss, goal: minimize}
      space: {seconds: {type: uniform, low: 0.0, high: 1.0}}
      max_trials: 5000
)");
  RunState state = fresh(plan);
  state.finish_step(0, S::running, "");
  const auto scanned_units = [&](int trial) {
    std::vector<int> out;
    for (const int u : state.step(0).units)
      if (state.unit(u).item_index == trial) out.push_back(u);
    return out;
  };
  const auto scanned_active = [&] {
    std::set<int> active;
    for (const int u : state.step(0).units)
      if (!kiln::host::is_terminal(state.unit(u).status())) active.insert(state.unit(u).item_index);
    return static_cast<int>(active.size());
  };
  constexpr int kTrials = 3000;
  std::vector<int> order;  // trial ids suggested out of numeric order
  for (int i = 0; i < kTrials; ++i) order.push_back((i * 7919) % kTrials);
  for (const int trial : order) {
    state.add_unit(0, trial, Json{{"seconds", trial}}, 0);
    state.add_unit(0, trial, Json{{"seconds", trial}}, 1);
  }
  EXPECT_EQ(state.trial_ids(0), order);
  EXPECT_EQ(state.active_trials(0), kTrials);
  EXPECT_TRUE(state.trial_units(0, kTrials + 1).empty());
  for (int i = 0; i < kTrials; ++i) {
    const int trial = order[static_cast<size_t>(i)];
    const std::vector<int>& units = state.trial_units(0, trial);
    ASSERT_EQ(units, scanned_units(trial));
    ASSERT_EQ(units.size(), 2u);
    const kiln::host::UnitState* sibling = state.sibling_named(state.unit(units[1]), "prepare");
    ASSERT_NE(sibling, nullptr);
    EXPECT_EQ(sibling, &state.unit(units[0]));
    EXPECT_EQ(state.sibling_named(state.unit(units[0]), "nothing"), nullptr);
    // Every third trial ends with one unit only: it stays active.
    state.finish_unit(units[0], S::succeeded, "");
    if (i % 3 != 0) state.finish_unit(units[1], i % 2 ? S::succeeded : S::failed, "");
    if (i % 500 == 0) {
      ASSERT_EQ(state.active_trials(0), scanned_active()) << "after trial " << trial;
    }
  }
  EXPECT_EQ(state.active_trials(0), scanned_active());
  EXPECT_EQ(state.active_trials(0), kTrials / 3);
}

// A bound step (Plan::bound_steps): outside the plan, done; the plan's steps
// read its artifacts' directories and its output parameters, and nothing
// waits for it (kiln step runs a compiled tuning step over its pod's inputs).
TEST(RunState, ABoundStepIsReadAsDoneAndNeverRuns) {
  Plan plan = kiln::test::plan_text(R"(steps:
  - {name: one, component: util.echo, parameters: {message: hi}}
  - {name: two, component: util.noop}
)");
  plan.bound_steps["upstream"].artifacts["data"] = {"/pod/inputs/data", Json{{"rows", 3}}};
  plan.bound_steps["upstream"].outputs = Json{{"count", 3}};
  const RunState state = fresh(plan);
  EXPECT_EQ(state.steps().size(), 2u);
  const auto& bound = state.step_named("upstream");
  EXPECT_EQ(bound.status(), S::succeeded);
  EXPECT_EQ(bound.artifacts.at("data").path, "/pod/inputs/data");
  EXPECT_EQ(bound.artifacts.at("data").metadata["rows"], 3);
  const auto resolve = state.resolver(nullptr);
  EXPECT_EQ(resolve(kiln::host::parse_reference("steps.upstream.outputs.count")), 3);
  EXPECT_THROW(resolve(kiln::host::parse_reference("steps.upstream.outputs.other")), std::runtime_error);
  EXPECT_THROW(state.step_named("elsewhere"), std::runtime_error);
  EXPECT_EQ(state.ready_steps().size(), 2u);  // one and two, as without it
}

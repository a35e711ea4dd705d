// The engine's decisions, as pure functions of the run state, the plan, the
// options and the time the engine read from its EngineTime: which pending
// step begins (or ends without running: upstream failed or cancelled, a skip,
// a false condition, a stopping run), which unit starts or is cancelled
// before it starts (jobs, loop parallelism, a trial's order, retry backoff),
// what an ended attempt leads to (finish, or retry at a time), which running
// units to stop and when to kill them (cancellation, the failure policy, a
// tuner, timeouts and grace), how a step and a trial end, and when the engine
// must next wake up. No executors, no store, no threads, no clock of its own:
// the engine carries the decisions out (engine.cpp), RunState records them.
#pragma once

#include "run_state.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

struct SchedulerOptions {
  int jobs = 2;                // attempts running at once
  double grace_seconds = 5.0;  // between asking a unit to stop and killing it
  std::string default_executor = "process";  // runs the steps that name none
};

// How many of the run's GPUs a step's attempt holds: its resources.gpus,
// unless the Slurm executor runs it (Slurm gives it the compute node's GPUs).
int local_gpus(const StepSpec& spec, const std::string& default_executor);

// The steps (trial template steps too) whose GPUs the run cannot give
// before anything runs: more than `pool` holds (`pool_source` says where
// the pool came from), or any under the inprocess executor, which cannot
// give a step GPUs of its own. One diagnostic each, at its resources.gpus.
std::vector<Diagnostic> gpu_problems(const Plan& plan, const std::vector<int>& pool, const std::string& pool_source,
                                     const std::string& default_executor);

// What becomes of a pending step.
struct StepDecision {
  enum class Kind {
    wait,        // an upstream step has not ended
    finish,      // it ends now without running: `status`, `message`
    begin_unit,  // a plain step: one unit
    begin_loop,  // a for_each step: one unit per item of `items` (none: it succeeds at once)
    begin_tune,  // a tuning step: the tuner suggests its trials
  };
  Kind kind = Kind::wait;
  StepStatus status = StepStatus::pending;
  std::string message;
  Json items;  // begin_loop
};

// What to do about one pending unit.
struct UnitDecision {
  enum class Kind {
    launch,  // start its next attempt
    cancel,  // end it, not started, `message`
  };
  Kind kind = Kind::launch;
  int unit = -1;
  std::string message;
  std::vector<int> gpus{};  // launch: the free GPUs its attempt takes
};

// What an ended attempt leads to.
struct AttemptOutcome {
  StepStatus attempt_status = StepStatus::failed;  // for AttemptEnded
  FailureClass failure = FailureClass::none;
  bool retry = false;          // true: retry after `retry_delay` seconds, with `message`
  double retry_delay = 0;
  StepStatus unit_status = StepStatus::failed;  // retry false: the unit ends so
  std::string message;
};

// Ask a running unit to stop: signal it (`cancel`) and kill it at `kill_at`
// (nullopt: leave its kill time as it is).
struct StopOrder {
  int unit = -1;
  bool cancel = true;
  std::optional<EngineClock::time_point> kill_at;
};

// A running unit's deadlines at a time: it timed out now; it is to be killed now.
struct DeadlineCheck {
  bool time_out = false;
  std::optional<EngineClock::time_point> kill_at;  // its kill time after a time out
  bool kill = false;
};

// A step or trial's outcome from its units'.
struct Outcome {
  StepStatus status = StepStatus::pending;
  std::string message;
};

// How a tuning step ends once every trial did: failed (the search failed,
// or no trial succeeded), cancelled (a trial was: the run is stopping), or
// succeeded with its best trial. `message` counts the trials by status.
struct TuningOutcome {
  StepStatus status = StepStatus::failed;
  std::string message;
  int best_trial = -1;  // succeeded only
  double best_value = 0;
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options) : options_(options) {}

  // Whether step `index` is pending and ready to be decided: every upstream
  // step ended (finally steps: and every DAG step ended).
  bool considered(const RunState& state, size_t index) const;
  // The first such step at index `from` or later (from RunState's index of
  // ready steps: the cost does not grow with the DAG).
  std::optional<size_t> next_step(const RunState& state, size_t from) const;
  // A pending step: wait, end it, or begin it (conditions and for_each are
  // evaluated here; an error in them fails the step).
  StepDecision decide_step(const RunState& state, size_t index) const;
  // The next decision about a pending unit, at index `from` or later, in unit
  // order; nullopt once `jobs` attempts run or no unit can do anything now.
  // Looks only at pending units (RunState's indexes), skipping a full loop's
  // items. A unit that needs GPUs waits until that many are free, and takes
  // the lowest free ones (a unit behind it that fits may start first).
  std::optional<UnitDecision> next_unit(const RunState& state, EngineClock::time_point now, size_t from) const;
  // A loop step's units may start another one (its `parallelism`).
  bool loop_has_room(const RunState& state, size_t step) const;
  // The GPUs a unit's attempt needs (local_gpus of what it runs).
  int gpus_needed(const RunState& state, const UnitState& unit) const;
  // A trial template's step starts once the steps of its trial it reads from
  // (or runs after) succeeded.
  bool siblings_done(const RunState& state, const UnitState& unit) const;

  // The failure class and message of an attempt that ended with `result`:
  // a timeout or the engine's stop request overrides what the attempt said.
  void classify(const RunState& state, const UnitState& unit, AttemptResult& result) const;
  // What follows the end of a running unit's attempt (classified, its outputs stored).
  AttemptOutcome after_attempt(const RunState& state, const UnitState& unit, const AttemptResult& result) const;

  // The units to stop for a cancel request (`requests`: how many so far;
  // the second kills at once).
  std::vector<StopOrder> on_cancel(const RunState& state, EngineClock::time_point now) const;
  // The units the failure policy stops (running DAG steps), keeping an earlier kill time.
  std::vector<StopOrder> on_policy_stop(const RunState& state, EngineClock::time_point now) const;
  // `units` that did not start end with a status (the engine's caller says
  // which); running ones not yet asked are stopped. Returns the running ones' orders.
  std::vector<StopOrder> on_halt(const RunState& state, const std::vector<int>& units,
                                 EngineClock::time_point now) const;
  // A unit its tuner stops: signal and kill after the grace period.
  StopOrder on_early_stop(int unit, EngineClock::time_point now) const;
  // A running unit's timeout and kill time at `now`.
  DeadlineCheck check_deadline(const UnitState& unit, EngineClock::time_point now) const;
  // The soonest time something is due (run timeout, unit timeouts and kills,
  // retries, `log_check` while a unit runs); nullopt: only messages can wake the engine.
  // With `wake_on_ends` (real time: a running unit's end is a message that
  // wakes the engine) a due retry counts only while a job is free, so that the
  // engine sleeps rather than spins when every job is busy. A retry that needs
  // more GPUs than are free never counts: only an attempt's end frees one.
  std::optional<EngineClock::time_point> next_deadline(const RunState& state,
                                                       std::optional<EngineClock::time_point> run_deadline,
                                                       EngineClock::time_point log_check,
                                                       bool wake_on_ends = false) const;

  // Every unit of a (non-tuning) step ended: its status and message.
  Outcome step_outcome(const RunState& state, size_t step) const;
  // A trial's outcome from its steps': a failed step fails it, a stopped one
  // stops it; it succeeded when every step did (cached when every step was).
  // nullopt while a step has yet to finish.
  std::optional<StepStatus> trial_status(const RunState& state, size_t step, int trial) const;
  // Every trial of tuning step `step` ended: `values` are their objectives
  // (NaN: none), `failure` why the search failed ("" if it did not).
  TuningOutcome tuning_outcome(const RunState& state, size_t step, const std::map<int, double>& values,
                               const std::string& failure) const;
  // Trials of a tuning step that may run at once, and how many have a unit still to finish.
  int trial_parallelism(const PlannedStep& step) const;
  int active_trials(const RunState& state, size_t step) const;

  EngineClock::time_point after_grace(EngineClock::time_point now) const;

  // Steps and units that next_step and next_unit looked at, in all: for
  // tests that a decision's cost does not grow with the DAG.
  uint64_t examined() const { return examined_; }

 private:
  SchedulerOptions options_;
  mutable uint64_t examined_ = 0;  // a statistic, not state: decisions never read it
};

// `s` seconds as the engine clock's duration.
EngineClock::duration seconds_duration(double s);

}  // namespace kiln::host

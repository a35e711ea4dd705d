// The state of one run: its steps and units with their statuses, and the
// run's own flags (cancel requests, the failure policy's stop, the run
// timeout, the run's status). Single-threaded and free of effects: no
// executor, store, clock or file. Every status change is one method here; it
// checks that the change is legal (nothing leaves a terminal status, a unit
// starts only when pending, ...) and returns the typed event the engine
// publishes, so a status is written in exactly one place. What to change is
// the scheduler's decision (scheduler.hpp); doing it is the engine's.
#pragma once

#include <kiln/host/executor.hpp>
#include <kiln/host/expression.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/run_events.hpp>
#include <kiln/host/run_journal.hpp>
#include <kiln/host/step_context.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace kiln::host {

using EngineClock = std::chrono::steady_clock;

// A transition the state machine does not allow (a bug in the engine, never
// bad input): e.g. finishing a unit twice, or a step leaving a terminal status.
class IllegalTransition : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// One runnable thing: a step, one item of a loop step, or one step of one
// trial. The status and the stop/deadline flags change only through
// RunState; the rest is data the engine fills in (outputs, cache decision).
class UnitState {
 public:
  size_t step = 0;  // index into RunState::steps()
  int item_index = -1;
  int part = -1;  // a trial template's step: index into PlannedStep::trial_steps
  Json item;
  UnitName name;  // name.display: "train", "loop[3]", "tune[3.train]"
  std::filesystem::path dir;
  int attempt = 0;       // the latest attempt's number
  int attempt_base = 0;  // attempts made before a resume: they do not count against retries
  double attempt_seconds = 0;  // all its attempts' durations
  AttemptResult result;
  std::filesystem::path outputs_dir;
  std::map<std::string, InputArtifact> artifacts;  // its outputs, for downstream steps
  std::map<std::string, InputArtifact> inputs;     // what the running attempt reads (for lineage)
  CacheDecision cache;

  StepStatus status() const { return status_; }
  const std::string& message() const { return message_; }  // why it ended, when it did not succeed
  EngineClock::time_point started() const { return started_; }
  const std::optional<EngineClock::time_point>& deadline() const { return deadline_; }
  const std::optional<EngineClock::time_point>& kill_at() const { return kill_at_; }
  const std::optional<EngineClock::time_point>& retry_at() const { return retry_at_; }
  // The GPUs its running attempt holds (none once it ended).
  const std::vector<int>& gpus() const { return gpus_; }
  bool timed_out() const { return timed_out_; }
  bool stop_requested() const { return stop_requested_; }  // the engine asked this attempt to stop
  bool early_stop() const { return early_stop_; }          // ... because its tuner said so (a trial)
  // The latest attempt's directory: dir/attempt-N.
  std::filesystem::path attempt_dir() const { return dir / ("attempt-" + std::to_string(attempt)); }

 private:
  friend class RunState;
  StepStatus status_ = StepStatus::pending;
  std::string message_;
  EngineClock::time_point started_{};
  std::optional<EngineClock::time_point> deadline_, kill_at_, retry_at_;
  std::vector<int> gpus_;
  bool timed_out_ = false;
  bool stop_requested_ = false;
  bool early_stop_ = false;
};

// A step of the plan: its units, and once it succeeded its outputs.
class StepState {
 public:
  const PlannedStep* planned = nullptr;
  std::vector<int> units;
  Json outputs = Json::object();                   // output parameters (lists for loops)
  std::map<std::string, InputArtifact> artifacts;  // output artifacts for downstream inputs

  StepStatus status() const { return status_; }
  const std::string& message() const { return message_; }
  // Its steps that must end first, by index (in `planned->upstream`'s order).
  const std::vector<size_t>& upstream() const { return upstream_; }
  int running_units() const { return running_units_; }        // units with an attempt running
  int unfinished_units() const { return unfinished_units_; }  // units not yet terminal

 private:
  friend class RunState;
  StepStatus status_ = StepStatus::pending;
  std::string message_;
  std::vector<size_t> upstream_, downstream_;
  size_t waiting_for_ = 0;  // upstream steps not yet terminal
  int running_units_ = 0;
  int unfinished_units_ = 0;
  // A tuning step's trials (item index): their units, in suggestion order, and
  // how many of each are not yet terminal.
  struct Trial {
    std::vector<int> units;
    int unfinished = 0;
  };
  std::unordered_map<int, Trial> trials_;
  std::vector<int> trial_ids_;
  int active_trials_ = 0;
};

class RunState {
 public:
  // `gpus`: the host's GPUs the run hands out (kiln/host/gpus.hpp), none by default.
  RunState(const Plan& plan, std::filesystem::path run_dir, std::string run_id, std::vector<int> gpus = {});

  // ---- reading ------------------------------------------------------------
  const Plan& plan() const { return plan_; }
  const std::vector<StepState>& steps() const { return steps_; }
  const std::vector<UnitState>& units() const { return units_; }
  const StepState& step(size_t index) const { return steps_.at(index); }
  StepState& step(size_t index) { return steps_.at(index); }
  const UnitState& unit(int id) const { return units_.at(static_cast<size_t>(id)); }
  UnitState& unit(int id) { return units_.at(static_cast<size_t>(id)); }
  // A step of the plan, else one of its bound steps (Plan::bound_steps: done,
  // with its outputs and artifacts, no units). Throws std::runtime_error for
  // a name that is neither.
  const StepState& step_named(const std::string& name) const;
  // What a unit runs: its step, or its step of a trial template.
  const PlannedStep& planned_of(const UnitState& unit) const;
  // The same trial's unit of the trial template's step `name`, if any.
  const UnitState* sibling_named(const UnitState& unit, const std::string& name) const;
  // The units of one trial of a tuning step: one, or one per step of a trial
  // template, in the template's order (empty for an unknown trial). Kept by
  // add_unit, so a lookup does not scan the step's units (issue 16).
  const std::vector<int>& trial_units(size_t step, int trial) const;
  // The trials of a tuning step, in the order they were suggested.
  const std::vector<int>& trial_ids(size_t step) const { return steps_.at(step).trial_ids_; }
  // Trials of a tuning step with a unit not yet terminal.
  int active_trials(size_t step) const { return steps_.at(step).active_trials_; }
  // Units with an attempt running.
  int running() const { return running_; }
  // The run's GPUs, and those no running attempt holds (ascending).
  const std::vector<int>& gpus() const { return gpus_; }
  const std::set<int>& free_gpus() const { return free_gpus_; }
  // Indexes kept by the transitions, so that a decision looks only at what
  // can change it (issue 16: the cost of a decision does not grow with the DAG):
  // pending steps whose upstream steps all ended (finally steps: once the DAG
  // ended), by index;
  const std::set<size_t>& ready_steps() const { return ready_steps_; }
  // pending units without a retry backoff, by id;
  const std::set<int>& pending_units() const { return pending_units_; }
  // pending units waiting for a retry, by retry time then id;
  const std::set<std::pair<EngineClock::time_point, int>>& retrying_units() const { return retrying_units_; }
  // units with an attempt running, by id.
  const std::set<int>& running_units() const { return running_units_; }
  // `path` (always under the run directory) relative to it, without file-system calls.
  std::string relative_to_run(const std::filesystem::path& path) const;
  // Resolves references in `when`, `for_each` and parameter placeholders
  // (`item` only for a `unit` of a loop or trial).
  Expression::ReferenceResolver resolver(const UnitState* unit) const;

  RunStatus run_status() const { return run_status_; }
  const std::string& run_message() const { return run_message_; }
  int cancel_requests() const { return cancel_requests_; }
  bool run_timed_out() const { return run_timed_out_; }
  bool main_done() const { return main_done_; }  // every DAG step ended: finally steps may begin
  // Cancelled, timed out, or stopped by the failure policy: no DAG step starts.
  bool stopping() const { return cancel_requests_ > 0 || policy_stop_; }
  // Whether a unit must not start again: asked to stop, or a DAG step of a
  // stopping run (finally steps run and retry whatever the policy did).
  bool halted(const UnitState& unit) const;
  // Every step of the phase (DAG steps, or finally steps) is terminal.
  bool all_terminal(bool finally_phase) const;

  // ---- step transitions -----------------------------------------------------
  // A unit of step `step`, not yet terminal (item -1: a plain step; part >= 0: a trial
  // template's step), pending. Returns its id.
  int add_unit(size_t step, int item_index, Json item, int part = -1);
  // pending -> running (it began: its units are added), or pending/running -> a terminal status.
  events::StepChanged finish_step(size_t step, StepStatus status, std::string message);

  // ---- unit transitions -----------------------------------------------------
  // pending -> running: attempt `unit.attempt` started at `now`, holding
  // `gpus` (each free until now: two attempts never hold one GPU).
  events::AttemptStarted start_attempt(int id, EngineClock::time_point now,
                                       std::optional<EngineClock::time_point> deadline, std::string executor,
                                       const std::filesystem::path& attempt_dir, std::string image,
                                       std::vector<int> gpus = {});
  // running -> pending: the attempt is over (its GPUs are free again); the
  // unit finishes or retries next.
  events::AttemptEnded end_attempt(int id, StepStatus attempt_status, FailureClass failure, std::string message,
                                   double duration);
  // pending (after end_attempt) stays pending until `at`.
  events::RetryScheduled schedule_retry(int id, EngineClock::time_point at, double delay, std::string message);
  // pending -> a terminal status (`resumed`: kept by a resume). Outputs go
  // into the event when it succeeded.
  events::UnitFinished finish_unit(int id, StepStatus status, std::string message, bool resumed = false);
  // A running unit is asked to stop (`early`: by its tuner).
  void request_stop(int id, bool early = false);
  // A running unit passed its timeout.
  void mark_timed_out(int id);
  // When a running unit is killed (nullopt: it was killed, or never will be).
  void set_kill_at(int id, std::optional<EngineClock::time_point> at);

  // ---- run transitions --------------------------------------------------------
  events::CancelRequested request_cancel();
  // failure_policy stop after a DAG step failed; returns whether the stop begins now.
  bool begin_policy_stop();
  void time_out_run(std::string message);
  // Every DAG step ended: the run's status is decided (finally steps may still run).
  void finish_main_phase();
  // The engine itself failed (e.g. a full disk).
  void fail_run(std::string message);
  events::RunFinished finish_run(double duration_seconds);

 private:
  UnitState& running_unit(int id, const char* what);
  // A pending unit leaves the pending indexes (it starts or finishes).
  void leave_pending(const UnitState& unit, int id);
  // Step `index` became terminal: its dependents may be ready.
  void release_downstream(size_t index);

  const Plan& plan_;
  std::filesystem::path run_dir_;
  std::string run_id_;
  std::vector<StepState> steps_;
  std::unordered_map<std::string, size_t> step_index_;
  std::map<std::string, StepState> bound_steps_;  // Plan::bound_steps, as done steps
  std::vector<UnitState> units_;
  std::set<size_t> ready_steps_;
  std::set<int> pending_units_, running_units_;
  std::vector<int> gpus_;
  std::set<int> free_gpus_;
  std::set<std::pair<EngineClock::time_point, int>> retrying_units_;
  size_t unfinished_steps_[2] = {0, 0};  // not yet terminal: DAG steps, finally steps
  int running_ = 0;
  int cancel_requests_ = 0;
  bool policy_stop_ = false;
  bool run_timed_out_ = false;
  bool main_done_ = false;
  bool run_finished_ = false;
  RunStatus run_status_ = RunStatus::running;
  std::string run_message_;
  Json failed_steps_ = Json::array();
};

}  // namespace kiln::host

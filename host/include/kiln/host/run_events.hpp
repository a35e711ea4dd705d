// What happens in a run, as typed values. The engine decides and publishes
// one event per state change; observers (run.json, the store's journal, the
// terminal view, the per-run event log) each turn them into their own record.
// A new kind of record is a new observer, never another write in the engine.
// The JSON form of every event (docs/events.md) is `to_json`.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/run_status.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kiln::host {

struct PlannedStep;

// A unit: a step, one item of a loop, or one step of one trial.
struct UnitName {
  std::string step;      // the pipeline's step: "train"
  std::string key;       // "" for a plain step; "3" for item or trial 3; "3.train" for a trial template's step
  std::string display;   // "train", "loop[3]", "tune[3.train]"
  int item_index = -1;   // the item or trial, -1 for a plain step
  const PlannedStep* planned = nullptr;  // what it runs (not serialised)
  const PlannedStep* owner = nullptr;    // its pipeline step, where that is not `planned` (a trial template's step)
};

namespace events {

struct RunStarted {
  std::string run_id, pipeline, file, executor;
  Json parameters = Json::object();
  bool resumed = false;
  std::vector<std::string> steps;  // every step of the plan, in plan order
  // Each step's upstream steps (those that must finish first), in `steps`'
  // order: the run's graph, for a viewer that has no pipeline file.
  std::vector<std::vector<std::string>> needs;
};

struct RunFinished {
  RunStatus status = RunStatus::running;
  std::string message;
  double duration_seconds = 0;
};

// A step (not a unit) changed status; `outputs` are set when it succeeded.
struct StepChanged {
  std::string step;
  StepStatus status = StepStatus::pending;
  std::string message;
  Json outputs;                 // null unless success
  std::optional<size_t> items;  // a loop's item count, once known
  bool has_units = true;        // false: it ended without running anything (skipped, upstream failed...)
  const PlannedStep* planned = nullptr;  // not serialised
};

struct AttemptStarted {
  UnitName unit;
  Json item;  // the loop item or trial parameters (null for a plain step)
  int attempt = 0;
  std::string executor, dir, image;  // dir: relative to the run directory
  std::vector<int> gpus{};           // the host's GPUs it was given (CUDA_VISIBLE_DEVICES)
  // What the unit runs with: its parameters as resolved (placeholders
  // rendered, a trial's suggestion applied, defaults filled in) and its inputs
  // as wired ({input: {step, output, digest?, items?, path?}}), as the
  // launch carries them (LaunchBuilder::describe_inputs).
  Json parameters = Json::object();
  Json inputs = Json::object();
};

struct AttemptEnded {
  UnitName unit;
  int attempt = 0;
  StepStatus status = StepStatus::failed;  // succeeded, failed, cancelled or early-stopped
  FailureClass failure = FailureClass::none;
  std::string message;
  double duration_seconds = 0;
};

struct RetryScheduled {
  UnitName unit;
  int attempt = 0;  // the attempt that failed
  double delay_seconds = 0;
  std::string message;
};

enum class CacheUse : std::uint8_t { hit, miss, off };
std::string_view to_string(CacheUse use);

struct CacheDecided {
  UnitName unit;
  Json item;
  std::string key;
  CacheUse use = CacheUse::off;
  std::string reason;  // why it missed
  // A hit runs no attempt: its resolved parameters and inputs come with the
  // decision instead (as in AttemptStarted); null otherwise.
  Json parameters = nullptr;
  Json inputs = nullptr;
};

struct ArtifactOut {
  std::string name, path, digest;  // path relative to the run directory; digest "" without a store
};

// A unit reached its end: ran, was served from the cache, kept by a resume,
// or was halted before it started.
struct UnitFinished {
  UnitName unit;
  Json item;
  StepStatus status = StepStatus::succeeded;
  std::string message;
  Json outputs = Json::object();  // output parameters (success only)
  std::vector<ArtifactOut> artifacts;
  Json metadata = Json::object();  // output name -> artifact metadata
  bool resumed = false;            // kept from before a resume
};

// The engine asked a running unit to stop (a tuner's early stop).
struct StopRequested {
  UnitName unit;
  std::string reason;
};

struct CancelRequested {
  int requests = 1;  // the second one kills without grace
};

struct Progress {
  UnitName unit;
  double fraction = 0;
  std::string message;
};

struct Metric {
  UnitName unit;
  std::string name;
  double value = 0;
  int64_t step = 0;
  double time = 0;  // seconds since the run (or its resume) started
};

struct Log {
  UnitName unit;
  std::string level, message;
};

// A trial of a tuning step reached its outcome.
struct TrialFinished {
  std::string step;
  int trial = 0;
  StepStatus status = StepStatus::succeeded;
  std::optional<double> value;  // the objective, when finite
  Json parameters = Json::object();
};

// A tuning step's trials table was written.
struct TrialsRecorded {
  std::string step, path, digest;  // path relative to the run directory
};

// A running attempt's log file grew (stdout.log or stderr.log): a hint for
// readers tailing it, sent at most every `kLogGrowthInterval`.
struct LogGrew {
  UnitName unit;
  int attempt = 0;
  std::string file;  // relative to the run directory
  uint64_t bytes = 0;
};

}  // namespace events

using RunEvent = std::variant<events::RunStarted, events::RunFinished, events::StepChanged, events::AttemptStarted,
                              events::AttemptEnded, events::RetryScheduled, events::CacheDecided,
                              events::UnitFinished, events::StopRequested, events::CancelRequested,
                              events::Progress, events::Metric, events::Log, events::TrialFinished,
                              events::TrialsRecorded, events::LogGrew>;

// The event's name in the log: "run_started", "attempt_ended", ...
std::string_view event_type(const RunEvent& event);
// One line of the event log (without seq and ts, which the log adds).
Json to_json(const RunEvent& event);

// Consumes a run's events, in order, on the engine's thread.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  // `seq` counts the run's events from 1 (continuing across a resume).
  virtual void on_event(uint64_t seq, const RunEvent& event) = 0;
  // The engine is about to wait, or (final) the run ended: write what is batched.
  virtual void flush(bool /*final*/) {}
};

}  // namespace kiln::host

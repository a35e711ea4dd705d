// Typed statuses of runs, steps, units and attempts, and how an attempt
// failed. Their text forms are what run.json, the database and the event log
// store (docs/events.md); nothing else in the host compares status strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln::host {

enum class StepStatus : std::uint8_t {
  pending,
  running,
  succeeded,
  failed,
  cancelled,
  skipped,
  cached,           // served from the cache (or kept by a resume): succeeded without running
  early_stopped,    // a trial its tuner stopped (not a failure)
  upstream_failed,  // not started: a step it depends on did not succeed
};

std::string_view to_string(StepStatus status);
std::optional<StepStatus> parse_step_status(std::string_view text);

constexpr bool is_terminal(StepStatus s) { return s != StepStatus::pending && s != StepStatus::running; }
constexpr bool is_success(StepStatus s) { return s == StepStatus::succeeded || s == StepStatus::cached; }

enum class RunStatus : std::uint8_t { running, succeeded, failed, cancelled };

std::string_view to_string(RunStatus status);
std::optional<RunStatus> parse_run_status(std::string_view text);

// Why an attempt did not succeed. `stopped`: the engine asked it to stop
// (cancellation, the failure policy, a tuner) — not a failure of the step's own.
// `out_of_memory`: killed for going over its memory limit (a Slurm job's --mem);
// `lost`: its machine went away under it (a Slurm NODE_FAIL or PREEMPTED job).
enum class FailureClass : std::uint8_t { none, error, crash, timeout, stopped, out_of_memory, lost };

std::string_view to_string(FailureClass failure);
// "error", "crash", "timeout", "out_of_memory", "lost", and "cancelled" for
// stopped (the word run.json uses).
std::optional<FailureClass> parse_failure_class(std::string_view text);

}  // namespace kiln::host

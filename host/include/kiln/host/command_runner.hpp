// Running a component file's command (docs/command-components.md): the
// placeholders resolved into argv, the environment kiln sets, the report
// protocol read live while it runs, its exit mapped to the step's outcome.
#pragma once

#include <kiln/host/component_file.hpp>
#include <kiln/host/invoke.hpp>
#include <kiln/host/runner_event.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <map>
#include <variant>
#include <vector>

namespace kiln::host {

// How a command shares signals with the runner that starts it.
enum class CommandGroup {
  // The runner leads a process group of its own (a `kiln step` forked by the
  // step server): the command stays in it, so the executor's SIGTERM and
  // SIGKILL to the group reach the command and all it started.
  Runners,
  // The runner shares its group (a thread of kiln, pid 1's child in a
  // container): the command leads a new group; the runner sends it SIGTERM
  // when `cancelled` is set, SIGKILL `grace` later, and SIGKILL to what is
  // left of the group when the command has ended.
  Own,
};

struct CommandRun {
  std::filesystem::path component_file;
  StepInvocation invocation;
  CommandGroup group = CommandGroup::Own;
  std::chrono::milliseconds grace{5000};
  // Where the command's stdout.log and stderr.log go; unset: the runner's
  // own stdout and stderr (`kiln step`'s, which its executor already logs).
  std::optional<std::filesystem::path> log_dir{};
};

// The argv, environment and working directory of one run (no process started).
struct CommandLine {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::filesystem::path workdir;
};
// Throws std::runtime_error naming what cannot be resolved (a program not on PATH).
CommandLine command_line(const ComponentFile& component, const StepInvocation& invocation,
                         const std::string& report_file);

// Runs the command to its end. Never throws; problems are the outcome.
StepOutcome run_command_component(const CommandRun& run, StepEventSink& sink, const std::atomic<bool>& cancelled);

// One line of the report protocol, read against the component's manifest:
// an event, nothing (a blank line or a # comment), or why the line is not one.
struct ReportLine {
  std::optional<RunnerEvent> event;
  std::string error;
};
// `metric_steps` numbers metrics reported without a step, per name.
ReportLine parse_report_line(std::string_view line, const ComponentManifest& manifest,
                             std::map<std::string, int64_t>& metric_steps);

}  // namespace kiln::host

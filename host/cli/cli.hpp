// Shared pieces of the `kiln` command line: how subcommands register, how
// the chosen one runs, and how usage errors are reported.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::cli {

// Exit codes of every kiln command.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // the command ran and failed
constexpr int kExitUsage = 2;    // the command line itself is wrong

// A failure the user can act on; printed as "kiln: <message>".
class CommandError : public std::runtime_error {
 public:
  explicit CommandError(const std::string& message, int exit_code = kExitFailure)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// The runnable subcommands. Actions run only after the whole command line
// parsed cleanly, so a misspelt option never half-runs a command.
class Commands {
 public:
  // Adds `name` under `parent`; `run` returns the exit code.
  CLI::App* add(CLI::App& parent, const std::string& name, const std::string& description, std::function<int()> run);
  // Adds a group (`kiln plugins …`) that needs one of its subcommands.
  static CLI::App* add_group(CLI::App& parent, const std::string& name, const std::string& description);
  // Runs the chosen subcommand, or explains which one is missing.
  int run_selected(const CLI::App& root) const;

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> actions_;
};

void add_plugins_commands(CLI::App& app, Commands& commands);
void add_version_command(CLI::App& app, Commands& commands);
void add_internal_commands(CLI::App& app, Commands& commands);
void add_run_commands(CLI::App& app, Commands& commands);
void add_compile_command(CLI::App& app, Commands& commands);
void add_image_commands(CLI::App& app, Commands& commands);
void add_runs_commands(CLI::App& app, Commands& commands);
void add_store_commands(CLI::App& app, Commands& commands);
void add_registry_commands(CLI::App& app, Commands& commands);
void add_serve_command(CLI::App& app, Commands& commands);
void add_ui_command(CLI::App& app, Commands& commands);

// Checks what CLI11 left unparsed and throws a CommandError with a "did you
// mean" suggestion for the first unknown command or option.
void reject_leftovers(const CLI::App& app);

}  // namespace kiln::cli

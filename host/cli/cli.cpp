#include "cli.hpp"

#include <kiln/host/suggest.hpp>

namespace kiln::cli {

CLI::App* Commands::add(CLI::App& parent, const std::string& name, const std::string& description,
                        std::function<int()> run) {
  CLI::App* sub = parent.add_subcommand(name, description);
  sub->allow_extras();
  actions_.emplace_back(sub, std::move(run));
  return sub;
}

CLI::App* Commands::add_group(CLI::App& parent, const std::string& name, const std::string& description) {
  CLI::App* group = parent.add_subcommand(name, description);
  group->allow_extras();
  return group;
}

namespace {

// The chain root → deepest chosen subcommand.
const CLI::App* deepest_selected(const CLI::App& app) {
  const CLI::App* current = &app;
  for (;;) {
    const auto chosen = current->get_subcommands();
    if (chosen.empty()) return current;
    current = chosen.front();
  }
}

std::string command_path(const CLI::App* app) {
  std::string path;
  for (const CLI::App* a = app; a != nullptr; a = a->get_parent())
    path = a->get_name() + (path.empty() ? "" : " " + path);
  return path;
}

std::vector<std::string> visible_subcommands(const CLI::App* app) {
  std::vector<std::string> names;
  for (const auto* sub : app->get_subcommands([](const CLI::App*) { return true; }))
    if (!sub->get_group().empty()) names.push_back(sub->get_name());
  return names;
}

}  // namespace

int Commands::run_selected(const CLI::App& root) const {
  for (const auto& [app, run] : actions_)
    if (app->parsed()) return run();
  const CLI::App* at = deepest_selected(root);
  std::string choices;
  for (const auto& name : visible_subcommands(at)) choices += (choices.empty() ? "" : ", ") + name;
  throw CommandError(
      "'" + command_path(at) + "' needs a command: " + choices + "; run '" + command_path(at) + " --help'", kExitUsage);
}

void reject_leftovers(const CLI::App& app) {
  const CLI::App* at = deepest_selected(app);
  const auto leftovers = at->remaining();
  if (leftovers.empty()) return;
  const std::string& word = leftovers.front();
  const std::string where = command_path(at);
  if (word.rfind("-", 0) == 0) {
    std::vector<std::string> options;
    for (const auto* option : at->get_options()) {
      for (const auto& name : option->get_lnames()) options.push_back("--" + name);
      for (const auto& name : option->get_snames()) options.push_back("-" + name);
    }
    const std::string bare = word.substr(0, word.find('='));
    throw CommandError("unknown option '" + bare + "' for '" + where + "'" + host::did_you_mean(bare, options) +
                           "; run '" + where + " --help'",
                       kExitUsage);
  }
  const auto names = visible_subcommands(at);
  const std::string what = names.empty() ? "unexpected argument" : "unknown command";
  throw CommandError(
      what + " '" + word + "' for '" + where + "'" + host::did_you_mean(word, names) + "; run '" + where + " --help'",
      kExitUsage);
}

}  // namespace kiln::cli

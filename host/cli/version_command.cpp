// `kiln version` and the hidden commands kiln runs as its own children.
#include "cli.hpp"

#include <kiln/plugin_api.h>
#include <unistd.h>
#include <kiln/host/scanner.hpp>
#include <kiln/host/step_server.hpp>
#include <kiln/host/version.hpp>

#include <iostream>

namespace kiln::cli {

void add_version_command(CLI::App& app, Commands& commands) {
  commands.add(app, "version", "Print kiln's version and plugin ABI version", [] {
    std::cout << "kiln " << host::kiln_version() << " (plugin ABI " << KILN_ABI_VERSION_MAJOR << "."
              << KILN_ABI_VERSION_MINOR << ")\n";
    return kExitOk;
  });
}

void add_internal_commands(CLI::App& app, Commands& commands) {
  // Loads one library and writes its description to fd 3 (see scanner.hpp).
  // Runs as a child of `kiln plugins …` so a broken library cannot crash it.
  static std::string library;
  auto* scan = commands.add(app, "__scan-library", "", [] {
    const std::string description = host::describe_library_in_process(library);
    size_t written = 0;
    while (written < description.size()) {
      const ssize_t n = ::write(3, description.data() + written, description.size() - written);
      if (n <= 0) return kExitFailure;
      written += static_cast<size_t>(n);
    }
    return kExitOk;
  });
  scan->group("");
  scan->add_option("LIBRARY", library)->required();

  // Keeps plugins loaded and forks a child per step (see step_server.hpp).
  commands.add(app, "__step-server", "", [] { return host::run_step_server(3); })->group("");
}

}  // namespace kiln::cli

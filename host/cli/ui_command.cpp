// `kiln ui`: the JSON API and live event streams over a workspace
// (host/ui, docs/ui.md). Runs until SIGINT or SIGTERM; runs started
// elsewhere go on when it stops.
#include <kiln/host/files.hpp>
#include <kiln/host/run_store.hpp>
#include <kiln/ui/ui_server.hpp>

#include <pthread.h>

#include <csignal>
#include <iostream>

#include "cli.hpp"

namespace kiln::cli {
namespace {

struct UiArgs {
  std::string workdir, host = "127.0.0.1", pipelines, models, token_file, port_file, ui_dir;
  int port = 8470;
};

std::string read_token(const std::string& file) {
  try {
    return ui::read_token_file(file);
  } catch (const std::runtime_error& e) {
    throw CommandError("--token-file: " + std::string(e.what()), kExitUsage);
  }
}

int ui(const UiArgs& args) {
  ui::UiOptions options;
  options.workspace = host::workspace_dir(args.workdir);
  options.pipelines = args.pipelines;
  options.models = args.models;
  options.ui_dir = args.ui_dir;
  options.host = args.host;
  options.port = static_cast<uint16_t>(args.port);
  if (!args.token_file.empty()) options.token = read_token(args.token_file);
  try {
    ui::check_options(options);
  } catch (const std::invalid_argument& e) {
    throw CommandError(e.what(), kExitUsage);
  }
  // SIGTERM/SIGINT are taken by sigwait below; every thread started from
  // here on inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ui::UiServer server(options);
  try {
    server.start();
  } catch (const std::runtime_error& e) {
    throw CommandError(e.what());
  }
  std::cout << "kiln ui: listening on http://" << args.host << ":" << server.port() << "/ (workspace "
            << options.workspace.string() << (options.token.empty() ? "" : "; token required") << ")" << std::endl;
  if (!args.port_file.empty()) host::write_file_atomic(args.port_file, std::to_string(server.port()) + "\n");
  int signal = 0;
  sigwait(&signals, &signal);
  std::cout << "kiln ui: " << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << ": stopping (runs go on)" << std::endl;
  server.stop();
  return kExitOk;
}

}  // namespace

void add_ui_command(CLI::App& app, Commands& commands) {
  static UiArgs args;
  auto* cmd = commands.add(app, "ui", "Serve the workspace's runs over HTTP: the web UI, a JSON API and live event streams",
                           [] { return ui(args); });
  cmd->add_option("--workdir", args.workdir, "Workspace (default: $KILN_HOME or ./.kiln)");
  cmd->add_option("--host", args.host, "Address to listen on; other than loopback needs --token-file")
      ->capture_default_str();
  cmd->add_option("--port", args.port, "Port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--pipelines", args.pipelines, "Directory of pipeline files to start runs from");
  cmd->add_option("--models", args.models, "A kiln serve model repository to show (docs/serving.md)");
  cmd->add_option("--token-file", args.token_file,
                  "File holding the API token (at least 16 characters): requests must send it as "
                  "'Authorization: Bearer TOKEN' or log in with it");
  cmd->add_option("--ui-dir", args.ui_dir,
                  "Serve the web UI's files from this directory (host/ui/web) instead of the copy built in: "
                  "edit the views without rebuilding");
  cmd->add_option("--port-file", args.port_file, "Write the port listened on to this file once ready");
}

}  // namespace kiln::cli

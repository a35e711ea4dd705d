// `kiln serve`: serve a model repository over the Open Inference Protocol.
#include "cli.hpp"

#include <kiln/host/catalog.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/serve/server.hpp>

#include <pthread.h>
#include <sys/resource.h>
#include <algorithm>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

namespace kiln::cli {
namespace {

struct ServeArgs {
  std::string model_repo;
  std::string host = "127.0.0.1";
  int port = 8080;
  int io_threads = 0;
  int64_t runtime_threads = 0;
  int64_t poll_ms = 1000;
  int64_t request_timeout_ms = 30000;
  int64_t drain_ms = 30000;
  size_t max_body_bytes = 64u << 20;
  size_t max_connections = 1024;
  size_t max_buffered_bytes = 256u << 20;
  std::string access_log = "-";
  std::string port_file;
};

// Files kept open besides client connections: models, logs, epoll, the listener.
constexpr rlim_t kReservedFiles = 256;

// Serving tables by runtime component name, loaded on first use.
serve::ModelRepository::RuntimeResolver make_resolver() {
  auto catalog = std::make_shared<host::PluginCatalog>(host::discover_default_catalog());
  auto mutex = std::make_shared<std::mutex>();
  auto cache = std::make_shared<std::map<std::string, const KilnServingApi*>>();
  return [catalog, mutex, cache](const std::string& name) -> const KilnServingApi* {
    const std::lock_guard<std::mutex> lock(*mutex);
    const auto it = cache->find(name);
    if (it != cache->end()) return it->second;
    const KilnServingApi* api = nullptr;
    if (const auto* component = catalog->find(name)) {
      const auto library = host::PluginLibrary::load(component->library);
      if (const auto* loaded = library->find(name)) api = loaded->serving;
    }
    (*cache)[name] = api;
    return api;
  };
}

// Raises the soft limit on open files so that --max-connections (and the
// files models use) fit under it, as far as the hard limit allows.
void raise_file_limit(size_t connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(connections) + kReservedFiles;
  if (limit.rlim_cur >= wanted) return;
  limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < wanted)
    std::cerr << "kiln serve: the open-file limit (" << limit.rlim_cur << ") is below --max-connections + "
              << kReservedFiles << ": past it, new connections wait in the listen queue\n";
}

int serve(const ServeArgs& args) {
  if (!std::filesystem::is_directory(args.model_repo))
    throw CommandError("--model-repo " + args.model_repo + " is not a directory", kExitUsage);
  if (args.max_buffered_bytes < args.max_body_bytes)
    throw CommandError("--max-buffered-bytes " + std::to_string(args.max_buffered_bytes) +
                           " is less than --max-body-bytes " + std::to_string(args.max_body_bytes) +
                           ": no body of the largest size could be received",
                       kExitUsage);
  // SIGTERM/SIGINT are taken by sigwait below; every thread started from
  // here on inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::ofstream log_file;
  serve::ServerOptions options;
  options.host = args.host;
  options.port = static_cast<uint16_t>(args.port);
  options.io_threads = args.io_threads;
  options.max_body_bytes = args.max_body_bytes;
  options.max_connections = args.max_connections;
  options.max_buffered_bytes = args.max_buffered_bytes;
  options.request_timeout = std::chrono::milliseconds(args.request_timeout_ms);
  if (args.access_log == "-") {
    options.access_log = &std::cerr;
  } else if (!args.access_log.empty() && args.access_log != "off") {
    log_file.open(args.access_log, std::ios::app);
    if (!log_file) throw CommandError("cannot open the access log " + args.access_log);
    options.access_log = &log_file;
  }
  raise_file_limit(args.max_connections);
  serve::Metrics metrics;
  serve::ModelRepository::Options repo_options;
  repo_options.root = args.model_repo;
  repo_options.poll_interval = std::chrono::milliseconds(args.poll_ms);
  repo_options.runtime_threads =
      args.runtime_threads > 0 ? args.runtime_threads : std::max(1u, std::thread::hardware_concurrency());
  serve::ModelRepository repository(repo_options, make_resolver(), &metrics);
  repository.start();
  serve::Server server(options, repository, metrics);
  server.start();
  std::cout << "kiln serve: listening on http://" << args.host << ":" << server.port() << " (model repository "
            << args.model_repo << ")" << std::endl;
  if (!args.port_file.empty()) host::write_file_atomic(args.port_file, std::to_string(server.port()) + "\n");
  int signal = 0;
  sigwait(&signals, &signal);
  std::cout << "kiln serve: " << (signal == SIGTERM ? "SIGTERM" : "SIGINT")
            << ": draining requests in progress, then exiting" << std::endl;
  server.stop(std::chrono::milliseconds(args.drain_ms));
  repository.stop();
  std::cout << "kiln serve: stopped" << std::endl;
  return kExitOk;
}

}  // namespace

void add_serve_command(CLI::App& app, Commands& commands) {
  static ServeArgs args;
  auto* cmd = commands.add(app, "serve", "Serve a model repository over HTTP (Open Inference Protocol / KServe V2)",
                           [] { return serve(args); });
  cmd->add_option("--model-repo", args.model_repo, "Repository: DIR/<model>/<version>/ (see docs/serving.md)")
      ->required();
  cmd->add_option("--host", args.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", args.port, "Port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--io-threads,--threads", args.io_threads,
                  "HTTP I/O threads, each an event loop over many connections (0: one per core); "
                  "--threads is the former name")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  cmd->add_option("--runtime-threads", args.runtime_threads,
                  "Intra-op threads of runtimes when a model's config sets none (0: all cores)")
      ->capture_default_str();
  cmd->add_option("--poll-ms", args.poll_ms, "How often the repository is checked for changes")
      ->capture_default_str()
      ->check(CLI::Range(10, 3600000));
  cmd->add_option("--request-timeout-ms", args.request_timeout_ms, "Longest a request may wait for its model")
      ->capture_default_str();
  cmd->add_option("--drain-ms", args.drain_ms, "On SIGTERM, longest wait for requests in progress")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", args.max_body_bytes, "Larger request bodies get 413")->capture_default_str();
  cmd->add_option("--max-connections", args.max_connections,
                  "Client connections open at once; more are answered 503 and closed")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  cmd->add_option("--max-buffered-bytes", args.max_buffered_bytes,
                  "Request bytes held over all connections (bodies being received or answered); "
                  "a connection that would pass it is answered 503 and closed")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--access-log", args.access_log, "Access log file; '-' for stderr, 'off' for none")
      ->capture_default_str();
  cmd->add_option("--port-file", args.port_file, "Write the port listened on to this file once ready");
}

}  // namespace kiln::cli

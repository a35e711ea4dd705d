// `kiln step`: the runner that executes one component in its own process and
// reports over the channel on fd 3 (see executor.hpp).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <kiln/host/command_runner.hpp>
#include <kiln/host/executor.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/invoke.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/runner_event.hpp>

#include <cstdlib>
#include <functional>
#include <mutex>

namespace kiln::host {
namespace {

std::atomic<bool> g_cancelled{false};
// A reused process's current step, and the step a queued stop named when it
// came before that step began (see run_inline_step_request). Lock-free on
// every platform kiln builds for: safe in a signal handler.
std::atomic<uint64_t> g_step_id{0};
std::atomic<uint64_t> g_stop_for{0};

extern "C" void on_stop_signal(int, siginfo_t* info, void*) {
  if (info != nullptr && info->si_code == SI_QUEUE) {
    const auto id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(info->si_value.sival_ptr));
    if (id != g_step_id.load()) {
      g_stop_for = id;  // meant for a step not begun yet (or one that has ended)
      // The step may have begun meanwhile (the handler can run on another
      // thread): begin_step stores the id, then reads g_stop_for; one of the
      // two sees the other's store.
      if (id == g_step_id.load()) g_cancelled = true;
      return;
    }
  }
  g_cancelled = true;
}

// Clears the stop flag for step `id` and takes a stop that came early
// (in this order: see on_stop_signal).
void begin_step(uint64_t id) {
  g_cancelled = false;
  g_step_id = id;
  if (id != 0 && g_stop_for.load() == id) g_cancelled = true;
}

// Writes events as channel lines; whole lines only, from any thread.
class ChannelWriter : public StepEventSink {
 public:
  explicit ChannelWriter(int fd) : fd_(fd) {}

  void write(const RunnerEvent& event) {
    const std::string line = encode(event) + "\n";
    const std::lock_guard<std::mutex> lock(mutex_);
    size_t written = 0;
    while (written < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the host is gone; nothing left to tell
      written += static_cast<size_t>(n);
    }
  }
  void on_log(KilnLogLevel level, const std::string& message) override {
    write(LogEvent{log_level_from_abi(level), message});
  }
  void on_metric(const std::string& name, double value, int64_t step) override {
    write(MetricEvent{name, value, step});
  }
  void on_progress(double fraction, const std::string& message) override { write(ProgressEvent{fraction, message}); }
  // Checked before the copy: copying a Json recurses.
  void on_output_parameter(const std::string& name, const Json& value) override {
    require_shallow(value, "output parameter '" + name + "'");
    write(OutputParameterEvent{name, value});
  }
  void on_output_metadata(const std::string& name, const Json& metadata) override {
    require_shallow(metadata, "metadata of output '" + name + "'");
    write(OutputMetadataEvent{name, metadata});
  }

 private:
  int fd_;
  std::mutex mutex_;
};

// A data-parallel step's place (docs/distributed.md): exported for the
// component as KILN_RANK, KILN_WORLD_SIZE, KILN_RENDEZVOUS. A field the
// request leaves out keeps the environment's value (a cluster executor may
// set the rank per task, e.g. from SLURM_PROCID).
void export_replica(const Json& request) {
  const auto it = request.find("replica");
  if (it == request.end() || !it->is_object()) return;
  const auto put = [&](const char* key, const char* variable) {
    const auto field = it->find(key);
    if (field == it->end()) return;
    const std::string text = field->is_string() ? field->get<std::string>() : field->dump();
    ::setenv(variable, text.c_str(), 1);
  };
  put("rank", "KILN_RANK");
  put("world_size", "KILN_WORLD_SIZE");
  put("rendezvous", "KILN_RENDEZVOUS");
}

// Whether the command stays in this runner's process group: only when this
// runner leads one and its executor signals that group (the process
// executor's step server). Otherwise (a thread's or a container init's child,
// a Slurm task that alone gets scancel's signal) the command leads its own.
CommandGroup command_group_of(const Json& request) {
  if (request.value("command_group", "") == "own") return CommandGroup::Own;
  return ::getpgrp() == ::getpid() ? CommandGroup::Runners : CommandGroup::Own;
}

constexpr double kMaxGraceSeconds = 24 * 3600.0;

StepInvocation invocation_from(const Json& request) {
  StepInvocation invocation;
  invocation.parameters = request.at("parameters");
  for (const auto& item : request.at("inputs").items())
    invocation.inputs[item.key()] =
        InputArtifact{item.value().at("path").get<std::string>(), item.value().at("metadata")};
  invocation.output_dir = request.at("output_dir").get<std::string>();
  invocation.temp_dir = request.at("temp_dir").get<std::string>();
  invocation.checkpoint_dir = request.value("checkpoint_dir", "");
  return invocation;
}

// As a container's first process (pid 1 of its namespace) the kernel drops
// signals it has no handler for, even ones it sends itself: a plugin's
// abort() or raise(SIGKILL) would not end it. So pid 1 forks the runner and
// stays a tiny init: it forwards SIGTERM/SIGINT, reaps orphans, and exits
// with the runner's status, 128 + N for signal N, as `runc run` reports it.
pid_t g_runner = 0;

extern "C" void forward_stop_signal(int signal) {
  if (g_runner > 0) ::kill(g_runner, signal);
}

int run_as_init(const std::filesystem::path& request_file, int channel_fd) {
  struct sigaction action {};
  action.sa_handler = forward_stop_signal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  g_runner = ::fork();
  if (g_runner < 0) return run_step_request(request_file, channel_fd);
  if (g_runner == 0) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    ::_exit(run_step_request(request_file, channel_fd));
  }
  ::close(channel_fd);  // the runner's copy alone keeps the channel open
  for (;;) {
    int status = 0;
    const pid_t pid = ::wait(&status);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) return 1;
    if (pid != g_runner) continue;  // an orphan the runner left
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }
}

}  // namespace

int run_step_command(const std::filesystem::path& request_file, int channel_fd) {
  return ::getpid() == 1 ? run_as_init(request_file, channel_fd) : run_step_request(request_file, channel_fd);
}

namespace {

// Runs the request `load` returns; an error in loading it is the step's result.
int run_loaded_request(const std::function<Json()>& load, int channel_fd) {
  struct sigaction action {};
  action.sa_sigaction = on_stop_signal;
  action.sa_flags = SA_SIGINFO;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  ChannelWriter channel(channel_fd);
  channel.write(HelloEvent{kRunnerChannelVersion, ::getpid()});
  StepOutcome outcome;
  try {
    const Json request = load();
    if (request.value("channel", 0) != kRunnerChannelVersion)
      throw std::runtime_error("request speaks channel " + std::to_string(request.value("channel", 0)) +
                               ", this runner speaks " + std::to_string(kRunnerChannelVersion));
    export_replica(request);
    const std::filesystem::path file = request.at("library").get<std::string>();
    if (is_component_file(file)) {
      // The command's fd 3 is its report pipe, never this channel.
      ::fcntl(channel_fd, F_SETFD, FD_CLOEXEC);
      CommandRun run{file, invocation_from(request)};
      run.group = command_group_of(request);
      if (const auto grace = request.find("grace_seconds"); grace != request.end() && grace->is_number() &&
                                                             *grace >= 0 && *grace <= kMaxGraceSeconds)
        run.grace = std::chrono::milliseconds(static_cast<int64_t>(grace->get<double>() * 1000));
      outcome = run_command_component(run, channel, g_cancelled);
      channel.write(ResultEvent{outcome.ok, outcome.code, outcome.message});
      return outcome.ok ? 0 : 1;
    }
    const auto library = PluginLibrary::load(request.at("library").get<std::string>());
    const std::string name = request.at("component").get<std::string>();
    const auto* component = library->find(name);
    if (component == nullptr)
      throw std::runtime_error(request.at("library").get<std::string>() + " provides no " + name);
    outcome = invoke_component(*component, invocation_from(request), channel, g_cancelled);
  } catch (const std::exception& e) {
    outcome.code = KILN_ERROR_INTERNAL;
    outcome.message = std::string("runner: ") + e.what();
  }
  channel.write(ResultEvent{outcome.ok, outcome.code, outcome.message});
  return outcome.ok ? 0 : 1;
}

}  // namespace

int run_step_request(const std::filesystem::path& request_file, int channel_fd) {
  return run_loaded_request([&] { return Json::parse(read_file(request_file)); }, channel_fd);
}

int run_inline_step_request(const Json& request, int channel_fd) {
  return run_loaded_request([&] { return request; }, channel_fd);
}

int run_inline_step_request(const Json& request, int channel_fd, uint64_t step_id) {
  begin_step(step_id);
  return run_loaded_request([&] { return request; }, channel_fd);
}

}  // namespace kiln::host

// Running a compiled step in a pod (pod_step.hpp): resolve its parameters
// from the engine's values, run each attempt in a forked child that speaks
// the runner channel over a pipe, enforce the timeout, retry when asked, and
// leave outputs, metadata and output parameters where the engine reads them.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <kiln/host/catalog.hpp>
#include <kiln/host/executor.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/placeholders.hpp>
#include <kiln/host/pod_step.hpp>
#include <kiln/host/runner_event.hpp>
#include <kiln/host/unique_fd.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <iostream>
#include <thread>

namespace kiln::host {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kGraceSeconds = 5.0;
// A component file's command leads a process group of its own that the
// runner, not this process, signals: the runner's SIGKILL to that group must
// come before this process SIGKILLs the runner, or a command that ignores
// SIGTERM outlives the attempt (and runs on beside an in-pod retry).
constexpr double kRunnerGraceSeconds = kGraceSeconds - 1.0;

// SIGTERM/SIGINT to the pod (Kubernetes stopping it): passed on to the
// attempt, which then has the grace period to stop.
std::atomic<bool> g_stop{false};
extern "C" void on_pod_stop(int) {
  g_stop = true;
}

// A reference's value: a constant of the request or one the engine gave.
Json resolve(const PodStep& step, const Reference& ref) {
  const auto& constants = step.request.constants;
  if (ref.kind == Reference::Kind::PipelineDir && constants.count("pipeline.dir")) return constants.at("pipeline.dir");
  if (ref.kind == Reference::Kind::RunName && constants.count("run.name")) return constants.at("run.name");
  const auto it = step.values.find(ref.text());
  if (it == step.values.end()) throw PodRequestError("no value was given for '" + ref.text() + "'");
  return it->second;
}

struct AttemptEnd {
  int status = 0;  // kPodExit*, 0 = success
  std::string message;
  Json output_parameters = Json::object();
  Json output_metadata = Json::object();
};

// Prints a channel event for the pod's log.
void print_event(const RunnerEvent& event) {
  if (const auto* log = std::get_if<LogEvent>(&event))
    std::cerr << "[" << log_level_text(log->level) << "] " << log->message << "\n";
  else if (const auto* metric = std::get_if<MetricEvent>(&event))
    std::cerr << "[metric] " << metric->name << "=" << metric->value << " (step " << metric->step << ")\n";
  else if (const auto* progress = std::get_if<ProgressEvent>(&event))
    std::cerr << "[progress] " << std::lround(progress->fraction * 100) << "% " << progress->message << "\n";
}

// One attempt: a child runs the request and writes the channel to a pipe.
AttemptEnd run_attempt(const Json& request, std::optional<double> timeout_seconds) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {kPodExitCrash, "cannot make a pipe"};
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  std::cout.flush();
  std::cerr.flush();
  const pid_t child = ::fork();
  if (child < 0) return {kPodExitCrash, "cannot fork"};
  if (child == 0) {
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    read_end.reset();
    ::_exit(run_inline_step_request(request, write_end.get()));
  }
  write_end.reset();
  AttemptEnd end;
  std::optional<ResultEvent> result;
  RunnerLineSplitter splitter;
  const auto deadline =
      timeout_seconds ? std::optional<Clock::time_point>(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                                            std::chrono::duration<double>(*timeout_seconds)))
                      : std::nullopt;
  bool timed_out = false, stop_passed = false;
  bool kill_pending = false;
  Clock::time_point kill_at = Clock::now();
  char buffer[65536];
  for (;;) {
    int wait_ms = -1;
    const auto now = Clock::now();
    if (g_stop && !stop_passed) {
      stop_passed = true;
      ::kill(child, SIGTERM);
      if (!kill_pending) {
        kill_pending = true;
        kill_at = now + std::chrono::milliseconds(static_cast<int>(kGraceSeconds * 1000));
      }
    }
    if (deadline && !timed_out) {
      if (now >= *deadline) {
        timed_out = true;
        ::kill(child, SIGTERM);
        kill_pending = true;
        kill_at = now + std::chrono::milliseconds(static_cast<int>(kGraceSeconds * 1000));
      } else {
        wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now).count()) + 1;
      }
    }
    if (kill_pending) {
      if (now >= kill_at) {
        ::kill(child, SIGKILL);
        kill_pending = false;
      } else {
        wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - now).count()) + 1;
      }
    }
    pollfd p{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child closed the channel: it ended
    splitter.feed(
        std::string_view(buffer, static_cast<size_t>(n)),
        [&](std::string_view line) {
          const DecodedLine decoded = decode(line);
          if (!decoded.ok()) {
            std::cerr << "[warning] a channel line was not understood: " << decoded.error << "\n";
            return;
          }
          const RunnerEvent& event = *decoded.event;
          if (const auto* out = std::get_if<OutputParameterEvent>(&event))
            end.output_parameters[out->name] = out->value;
          else if (const auto* meta = std::get_if<OutputMetadataEvent>(&event))
            end.output_metadata[meta->name] = meta->metadata;
          else if (const auto* r = std::get_if<ResultEvent>(&event))
            result = *r;
          else
            print_event(event);
        },
        [] { std::cerr << "[warning] a channel line over the limit was dropped\n"; });
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return {kPodExitTimeout, "timed out after " + std::to_string(*timeout_seconds) + " s"};
  if (!result) {
    const std::string how = WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                                : "exited with status " + std::to_string(WEXITSTATUS(status));
    return {kPodExitCrash, "the step's process " + how + " without a result"};
  }
  if (!result->ok) {
    end.status = kPodExitError;
    end.message = result->message;
  }
  return end;
}

std::string failure_class(int status) {
  return status == kPodExitError ? "error" : status == kPodExitTimeout ? "timeout" : "crash";
}

// Moves a directory where the engine collects it (a copy across filesystems).
void move_tree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to.parent_path());
  std::error_code ec;
  fs::remove_all(to, ec);
  fs::rename(from, to, ec);
  if (!ec) return;
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::remove_all(from);
}

void write_text(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  write_file_atomic(path, text);
}

int run_condition(const PodStep& step) {
  const Expression expression = Expression::parse(*step.request.condition);
  const bool value = expression.evaluate_condition([&](const Reference& ref) { return resolve(step, ref); });
  std::cerr << "condition of step " << step.request.step << " (" << *step.request.condition
            << "): " << (value ? "true" : "false") << "\n";
  write_text(step.parameter_paths.at("result"), value ? "true" : "false");
  return 0;
}

// A scratch directory for the attempt's outputs and temporary files.
fs::path scratch_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = (fs::path(base && *base ? base : "/tmp") / "kiln-pod.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot make a scratch directory");
  return pattern;
}

int run_component(const PodStep& step) {
  const PodRequest& r = step.request;
  const Json parameters = render_placeholders(r.parameters, [&](const Reference& ref) { return resolve(step, ref); });
  const auto catalog = discover_default_catalog();
  const auto* component = catalog.find(r.component, r.version);
  if (component == nullptr)
    throw PodRequestError("the image has no component " + r.component + (r.version.empty() ? "" : "@" + r.version) +
                          " on its plugin path (versions found: " + catalog.versions_of(r.component) + ")");
  Json with_defaults = parameters;  // what the engine fills in from the manifest
  for (const auto& p : component->manifest.parameters)
    if (!with_defaults.contains(p.name) && p.default_value) with_defaults[p.name] = *p.default_value;
  const fs::path scratch = scratch_dir();
  Json inputs = Json::object();
  for (const auto& [name, path] : step.input_paths)
    inputs[name] = {{"path", path}, {"metadata", step.input_metadata.at(name)}};
  const Json request{{"channel", kRunnerChannelVersion},
                     {"step", r.step},
                     {"component", r.component},
                     {"library", component->library.string()},
                     {"parameters", with_defaults},
                     {"inputs", inputs},
                     {"output_dir", (scratch / "outputs").string()},
                     {"temp_dir", (scratch / "tmp").string()},
                     {"checkpoint_dir", (scratch / "checkpoint").string()},
                     {"grace_seconds", kRunnerGraceSeconds}};
  const RetryPolicy retries = r.retries.value_or(RetryPolicy{});
  AttemptEnd end;
  for (int attempt = 1;; ++attempt) {
    std::error_code ec;
    fs::remove_all(scratch / "outputs", ec);
    fs::remove_all(scratch / "tmp", ec);
    for (const char* dir : {"outputs", "tmp", "checkpoint"}) fs::create_directories(scratch / dir);
    for (const auto& o : r.outputs) fs::create_directories(scratch / "outputs" / o);
    end = run_attempt(request, r.timeout_seconds);
    if (end.status == 0) break;
    std::cerr << "step " << r.step << " attempt " << attempt << " failed (" << failure_class(end.status)
              << "): " << end.message << "\n";
    if (!r.retries || attempt > retries.limit || !retries.on.count(failure_class(end.status))) break;
    const double delay = retries.delay_before(attempt);
    std::cerr << "retrying in " << delay << " s\n";
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
  }
  if (end.status == 0) {
    for (const auto& o : r.outputs) {
      move_tree(scratch / "outputs" / o, step.output_paths.at(o));
      const Json metadata = end.output_metadata.value(o, Json::object());
      write_text(step.metadata_paths.at(o), metadata.dump());
    }
    for (const auto& [name, path] : step.parameter_paths)
      write_text(path, end.output_parameters.contains(name) ? end.output_parameters[name].dump() : "null");
  }
  std::error_code ec;
  fs::remove_all(scratch, ec);
  return end.status;
}

}  // namespace

int run_pod_step(const PodStep& step) {
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction action {};
  action.sa_handler = on_pod_stop;  // no SA_RESTART: poll() wakes with EINTR
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  try {
    return step.request.condition ? run_condition(step) : run_component(step);
  } catch (const PodRequestError& e) {
    std::cerr << "kiln step: " << e.what() << "\n";
    return kPodExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "kiln step: " << step.request.step << ": " << e.what() << "\n";
    return kPodExitError;
  }
}

}  // namespace kiln::host

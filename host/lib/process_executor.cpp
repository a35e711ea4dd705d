// The process executor: each attempt in a `kiln step` child, talking JSON
// lines on fd 3. A reader thread turns the channel into observer events; the
// child's end (exit, signal) decides the result when no result line came.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <kiln/host/executor.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/step_server.hpp>
#include <kiln/host/subprocess.hpp>

#include <array>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

namespace kiln::host {
namespace fs = std::filesystem;

void write_step_request(const StepLaunch& launch, const fs::path& request_file) {
  Json inputs = Json::object();
  for (const auto& [name, artifact] : launch.inputs)
    inputs[name] = {{"path", artifact.path.string()}, {"metadata", artifact.metadata}};
  const Json request{{"channel", kRunnerChannelVersion},
                     {"step", launch.step},
                     {"component", launch.component.manifest.name},
                     {"library", launch.component.library.string()},
                     {"parameters", launch.parameters},
                     {"inputs", inputs},
                     {"output_dir", launch.output_dir.string()},
                     {"temp_dir", launch.temp_dir.string()},
                     {"checkpoint_dir", launch.checkpoint_dir.string()}};
  // Read once by the step's process, right after this: no fsync needed.
  std::ofstream out(request_file, std::ios::trunc);
  out << request.dump();
  if (!out.flush()) throw std::runtime_error("cannot write " + request_file.string());
}

namespace {

int open_log(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create " + path.string());
  return fd;
}

// One attempt's outcome, assembled from its channel (read by the reactor)
// and its exit (reported by the step server); whichever comes last reports.
struct AttemptState {
  std::shared_ptr<AttemptObserver> observer;
  std::string buffer;  // a partial channel line
  AttemptResult result;
  bool got_result = false;
  std::mutex mutex;  // guards the three below
  bool channel_closed = false;
  std::optional<ExitStatus> exit;
  bool reported = false;

  void on_channel_closed() {
    std::unique_lock<std::mutex> lock(mutex);
    channel_closed = true;
    finish_if_done(lock);
  }
  void on_exit(ExitStatus status) {
    std::unique_lock<std::mutex> lock(mutex);
    exit = status;
    finish_if_done(lock);
  }

 private:
  void finish_if_done(std::unique_lock<std::mutex>& lock) {
    if (!channel_closed || !exit || reported) return;
    reported = true;
    lock.unlock();
    if (!got_result) {
      result.failure_class = "crash";
      result.message = "the step's process " + describe(*exit) + " before reporting a result";
    } else if (!exit->success() && result.ok()) {
      result.failure_class = "crash";
      result.message = "the step's process " + describe(*exit) + " after reporting success";
    }
    observer->on_finished(std::move(result));
  }
  static std::string describe(const ExitStatus& status) {
    return status.code == -1 && status.signal == 0 ? "was lost (the step server died)" : status.describe();
  }
};

class ProcessAttempt : public RunningAttempt {
 public:
  ProcessAttempt(std::shared_ptr<StepServer> server, pid_t pid) : server_(std::move(server)), pid_(pid) {}
  void cancel() override { server_->signal(pid_, SIGTERM); }
  void kill() override { server_->signal(pid_, SIGKILL); }

 private:
  std::shared_ptr<StepServer> server_;
  pid_t pid_;
};

// Text from a step, safe to store: invalid UTF-8 is replaced, never thrown on.
std::string printable(const std::string& text) {
  return Json(text).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Turns one channel line into what the engine may trust: events of the kinds
// and field types of channel version 1. Anything else (a plugin or one of its
// children scribbling on fd 3) becomes a warning log line, never a crash.
std::optional<Json> checked_event(const Json& e) {
  if (!e.is_object() || !e.contains("event") || !e["event"].is_string()) return std::nullopt;
  const std::string kind = e["event"];
  const auto is_string = [&](const char* key) { return e.contains(key) && e[key].is_string(); };
  const auto is_number = [&](const char* key) { return e.contains(key) && e[key].is_number(); };
  if (kind == "log" && is_string("level") && is_string("message")) return e;
  if (kind == "metric" && is_string("name") && is_number("value") && e.contains("step") &&
      e["step"].is_number_integer())
    return e;
  if (kind == "progress" && is_number("fraction") && (!e.contains("message") || is_string("message"))) return e;
  if ((kind == "output_parameter" && is_string("name") && e.contains("value")) ||
      (kind == "output_metadata" && is_string("name") && e.contains("metadata") && e["metadata"].is_object()) ||
      (kind == "result" && e.contains("ok") && e["ok"].is_boolean() && e.contains("code") &&
       e["code"].is_number_integer() && is_string("message")) ||
      (kind == "hello"))
    return e;
  return std::nullopt;
}

// Applies one channel line to the attempt.
void apply_line(const std::string& line, AttemptState& state) {
  std::optional<Json> event;
  try {
    event = checked_event(Json::parse(line));
  } catch (const std::exception&) {  // not JSON at all
  }
  if (!event) {
    state.observer->on_event(
        {{"event", "log"}, {"level", "warning"}, {"message", "unreadable runner line: " + printable(line)}});
    return;
  }
  const std::string kind = (*event)["event"];
  if (kind == "output_parameter") {
    state.result.output_parameters[(*event)["name"].get<std::string>()] = (*event)["value"];
  } else if (kind == "output_metadata") {
    state.result.output_metadata[(*event)["name"].get<std::string>()] = (*event)["metadata"];
  } else if (kind == "result") {
    state.got_result = true;
    if (!(*event)["ok"].get<bool>()) {
      state.result.failure_class = (*event)["code"].get<int64_t>() == KILN_ERROR_CANCELLED ? "cancelled" : "error";
      state.result.message = (*event)["message"].get<std::string>();
    }
  } else if (kind != "hello") {
    state.observer->on_event(std::move(*event));
  }
}

// One thread reading the channels of every running step (epoll): no thread
// per step to create and tear down.
class ChannelReactor {
 public:
  ChannelReactor() : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (epoll_ < 0 || wake_ < 0) throw std::system_error(errno, std::generic_category(), "epoll");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = wake_;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &event);
    thread_ = std::thread([this] { loop(); });
  }
  ~ChannelReactor() {
    const uint64_t one = 1;
    (void)::write(wake_, &one, sizeof one);
    thread_.join();
    for (const auto& [fd, state] : watched_) ::close(fd);
    ::close(wake_);
    ::close(epoll_);
  }
  ChannelReactor(const ChannelReactor&) = delete;
  ChannelReactor& operator=(const ChannelReactor&) = delete;

  // Takes ownership of `fd`.
  void watch(int fd, std::shared_ptr<AttemptState> state) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      watched_[fd] = std::move(state);
    }
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0)
      throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }

 private:
  void loop() {
    std::array<epoll_event, 64> events;
    for (;;) {
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
      if (n < 0 && errno != EINTR) return;
      for (int i = 0; i < n; ++i) {
        if (events[static_cast<size_t>(i)].data.fd == wake_) return;
        drain(events[static_cast<size_t>(i)].data.fd);
      }
    }
  }

  // Reads what is there; on end of file hands the attempt its closed channel.
  void drain(int fd) {
    std::shared_ptr<AttemptState> state;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      const auto it = watched_.find(fd);
      if (it == watched_.end()) {  // not ours (any more): stop epoll reporting it
        ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
        return;
      }
      state = it->second;
    }
    for (;;) {
      const ssize_t n = ::read(fd, chunk_.data(), chunk_.size());
      if (n > 0) {
        state->buffer.append(chunk_.data(), static_cast<size_t>(n));
        size_t newline;
        while ((newline = state->buffer.find('\n')) != std::string::npos) {
          apply_line(state->buffer.substr(0, newline), *state);
          state->buffer.erase(0, newline + 1);
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      break;  // end of file, or an error: the channel is over
    }
    {  // unregister before the number can be reused by a new step's pipe
      const std::lock_guard<std::mutex> lock(mutex_);
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
      watched_.erase(fd);
      ::close(fd);
    }
    state->on_channel_closed();
  }

  int epoll_, wake_;
  std::mutex mutex_;
  std::map<int, std::shared_ptr<AttemptState>> watched_;
  std::array<char, 65536> chunk_;  // only the reactor thread reads into it
  std::thread thread_;
};

class ProcessExecutor : public Executor {
 public:
  explicit ProcessExecutor(fs::path kiln_exe) : kiln_exe_(std::move(kiln_exe)) {}

  std::unique_ptr<RunningAttempt> start(const StepLaunch& launch, std::shared_ptr<AttemptObserver> observer) override {
    fs::create_directories(launch.attempt_dir);
    const auto request = launch.attempt_dir / "request.json";
    write_step_request(launch, request);
    Pipe channel;
    const Pipe out(open_log(launch.attempt_dir / "stdout.log")), err(open_log(launch.attempt_dir / "stderr.log"));
    auto state = std::make_shared<AttemptState>();
    state->observer = std::move(observer);
    const auto step_server = server();
    const pid_t pid =
        step_server->start(launch.component.library, launch.component.manifest.name, request, launch.attempt_dir,
                           out.read_fd, err.read_fd, channel.write_fd, [state](ExitStatus s) { state->on_exit(s); });
    channel.close_write();
    reactor_.watch(channel.read_fd, state);
    channel.read_fd = -1;  // the reactor owns it now
    return std::make_unique<ProcessAttempt>(step_server, pid);
  }

 private:
  // The step server, started on first use and again if it has died.
  std::shared_ptr<StepServer> server() {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!server_ || !server_->alive()) server_ = std::make_shared<StepServer>(kiln_exe_);
    return server_;
  }

  fs::path kiln_exe_;
  ChannelReactor reactor_;
  std::mutex mutex_;
  std::shared_ptr<StepServer> server_;
};

}  // namespace

std::unique_ptr<Executor> make_process_executor(fs::path kiln_exe) {
  return std::make_unique<ProcessExecutor>(std::move(kiln_exe));
}

}  // namespace kiln::host

// The process executor: each attempt in a `kiln step` child, talking JSON
// lines on fd 3. A reader thread turns the channel into observer events; the
// child's end (exit, signal) decides the result when no result line came.
#include <fcntl.h>
#include <signal.h>
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
                     {"temp_dir", launch.temp_dir.string()}};
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

// One attempt's child, forked by the step server.
struct ChildState {
  std::shared_ptr<StepServer> server;
  pid_t pid = -1;
};

class ProcessAttempt : public RunningAttempt {
 public:
  explicit ProcessAttempt(ChildState state) : state_(std::move(state)) {}
  void cancel() override { state_.server->signal(state_.pid, SIGTERM); }
  void kill() override { state_.server->signal(state_.pid, SIGKILL); }

 private:
  ChildState state_;
};

// Applies one channel line; returns true when it was the final result.
bool apply_line(const std::string& line, AttemptObserver& observer, AttemptResult& result) {
  Json event;
  try {
    event = Json::parse(line);
  } catch (const std::exception&) {
    observer.on_event({{"event", "log"}, {"level", "warning"}, {"message", "unreadable runner line: " + line}});
    return false;
  }
  const std::string kind = event.value("event", "");
  if (kind == "output_parameter") {
    result.output_parameters[event.value("name", "")] = event["value"];
  } else if (kind == "output_metadata") {
    result.output_metadata[event.value("name", "")] = event["metadata"];
  } else if (kind == "result") {
    if (!event.value("ok", false)) {
      result.failure_class = event.value("code", 0) == KILN_ERROR_CANCELLED ? "cancelled" : "error";
      result.message = event.value("message", "");
    }
    return true;
  } else if (kind != "hello") {
    observer.on_event(std::move(event));
  }
  return false;
}

void read_channel(int fd, ChildState state, std::shared_ptr<AttemptObserver> observer) {
  AttemptResult result;
  bool got_result = false;
  std::string buffer;
  std::array<char, 65536> chunk{};
  for (;;) {
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk.data(), static_cast<size_t>(n));
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      got_result = apply_line(buffer.substr(0, newline), *observer, result) || got_result;
      buffer.erase(0, newline + 1);
    }
  }
  ::close(fd);
  const ExitStatus status = state.server->wait(state.pid);
  if (!got_result) {
    result.failure_class = "crash";
    result.message = "the step's process " + status.describe() + " before reporting a result";
  } else if (!status.success() && result.ok()) {
    result.failure_class = "crash";
    result.message = "the step's process " + status.describe() + " after reporting success";
  }
  observer->on_finished(std::move(result));
}

class ProcessExecutor : public Executor {
 public:
  explicit ProcessExecutor(fs::path kiln_exe) : kiln_exe_(std::move(kiln_exe)) {}

  std::unique_ptr<RunningAttempt> start(const StepLaunch& launch, std::shared_ptr<AttemptObserver> observer) override {
    fs::create_directories(launch.attempt_dir);
    const auto request = launch.attempt_dir / "request.json";
    write_step_request(launch, request);
    Pipe channel;
    const Pipe out(open_log(launch.attempt_dir / "stdout.log")), err(open_log(launch.attempt_dir / "stderr.log"));
    ChildState state;
    state.server = server();
    state.pid = state.server->start(launch.component.library, request, launch.attempt_dir, out.read_fd, err.read_fd,
                                    channel.write_fd);
    channel.close_write();
    const int fd = channel.read_fd;
    channel.read_fd = -1;  // the reader thread owns it now
    std::thread(read_channel, fd, state, std::move(observer)).detach();
    return std::make_unique<ProcessAttempt>(state);
  }

 private:
  // The step server, started on first use and again if it has died.
  std::shared_ptr<StepServer> server() {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!server_ || !server_->alive()) server_ = std::make_shared<StepServer>(kiln_exe_);
    return server_;
  }

  fs::path kiln_exe_;
  std::mutex mutex_;
  std::shared_ptr<StepServer> server_;
};

}  // namespace

std::unique_ptr<Executor> make_process_executor(fs::path kiln_exe) {
  return std::make_unique<ProcessExecutor>(std::move(kiln_exe));
}

}  // namespace kiln::host

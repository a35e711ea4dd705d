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

#include "runner_channel.hpp"

#include <array>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

namespace kiln::host {
namespace fs = std::filesystem;

Json step_request(const StepLaunch& launch) {
  Json inputs = Json::object();
  for (const auto& [name, artifact] : launch.inputs)
    inputs[name] = {{"path", artifact.path.string()}, {"metadata", artifact.metadata}};
  return Json{{"channel", kRunnerChannelVersion},
                     {"step", launch.step},
                     {"component", launch.component.manifest.name},
                     {"library", launch.component.library.string()},
                     {"parameters", launch.parameters},
                     {"inputs", inputs},
                     {"output_dir", launch.output_dir.string()},
                     {"temp_dir", launch.temp_dir.string()},
                     {"checkpoint_dir", launch.checkpoint_dir.string()}};
}

void write_step_request(const StepLaunch& launch, const fs::path& request_file) {
  const Json request = step_request(launch);
  // Read once by the step's process, right after this: no fsync needed.
  std::ofstream out(request_file, std::ios::trunc);
  out << request.dump();
  if (!out.flush()) throw std::runtime_error("cannot write " + request_file.string());
}

namespace {

// A request up to this size travels in the step server's start message (one
// file less per attempt); a bigger one is written to request.json.
constexpr size_t kInlineRequestBytes = 32 * 1024;

class ProcessAttempt : public RunningAttempt {
 public:
  ProcessAttempt(std::shared_ptr<StepServer> server, pid_t pid) : server_(std::move(server)), pid_(pid) {}
  void cancel() override { server_->signal(pid_, SIGTERM); }
  void kill() override { server_->signal(pid_, SIGKILL); }

 private:
  std::shared_ptr<StepServer> server_;
  pid_t pid_;
};

class ProcessExecutor : public Executor {
 public:
  explicit ProcessExecutor(fs::path kiln_exe) : kiln_exe_(std::move(kiln_exe)) {}

  std::unique_ptr<RunningAttempt> start(const StepLaunch& launch, std::shared_ptr<AttemptObserver> observer) override {
    // The attempt directory is made by the step's process (its working
    // directory), unless a big request must be written there first.
    Json request = step_request(launch);
    if (request.dump().size() > kInlineRequestBytes) {
      fs::create_directories(launch.attempt_dir);
      const auto file = launch.attempt_dir / "request.json";
      write_step_request(launch, file);
      request = file.string();
    }
    // Pipes, not files: a log file is made when the step first writes to it.
    Pipe channel, out, err;
    auto state = std::make_shared<AttemptState>();
    state->observer = std::move(observer);
    const auto step_server = server();
    const pid_t pid =
        step_server->start(launch.component.library, launch.component.manifest.name, request, launch.attempt_dir,
                           out.write_fd, err.write_fd, channel.write_fd, [state](ExitStatus s) { state->on_exit(s); });
    channel.close_write();
    out.close_write();
    err.close_write();
    reactor_.watch_logs(out.read_fd, err.read_fd, launch.attempt_dir / "stdout.log", launch.attempt_dir / "stderr.log",
                        state);
    out.read_fd = err.read_fd = -1;  // the reactor owns them now
    reactor_.watch(channel.read_fd, state);
    channel.read_fd = -1;
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

// Child processes: spawn with chosen file descriptors, wait with a deadline,
// kill the whole process group, and describe how a child ended.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kiln::host {

struct ExitStatus {
  int code = -1;   // exit code when the child exited
  int signal = 0;  // terminating signal, 0 when it exited
  bool timed_out = false;
  bool success() const { return signal == 0 && code == 0 && !timed_out; }
  // "exited with status 3", "killed by signal SIGSEGV (Segmentation fault)", ...
  std::string describe() const;
};

ExitStatus exit_status_from_wait(int wait_status);
std::string signal_name(int signal);

// A pipe whose ends close themselves; both ends are close-on-exec.
struct Pipe {
  Pipe();
  explicit Pipe(int adopted_read_fd);  // owns an existing descriptor only
  Pipe(Pipe&& other) noexcept : read_fd(other.read_fd), write_fd(other.write_fd) {
    other.read_fd = other.write_fd = -1;
  }
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void close_read();
  void close_write();
  int read_fd = -1, write_fd = -1;
};

class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;
    // (fd in the child, fd in the parent) pairs; stdin is /dev/null unless mapped.
    std::vector<std::pair<int, int>> fds;
    std::optional<std::filesystem::path> cwd;
    std::vector<std::pair<std::string, std::string>> env;  // added or replaced
    // false: the child stays in this process's group (which then signals it too).
    bool new_process_group = true;
  };

  // Starts the child (in a new process group unless told otherwise). Throws std::system_error.
  static ChildProcess spawn(const Options& options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();  // a child still running is killed and reaped

  pid_t pid() const { return pid_; }
  std::optional<ExitStatus> try_wait();
  ExitStatus wait();
  // Sends `signal` to the child's whole process group.
  void kill_group(int signal) const;

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
};

struct CapturedRun {
  ExitStatus status;
  std::string result;  // what the child wrote to fd 3
  std::string output;  // its stdout and stderr, interleaved
};

// Runs `argv` with fd 3 as a result channel, capturing output; kills the
// child (SIGKILL) when it outlives `timeout`.
CapturedRun run_with_result_channel(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// The same with full options (cwd, environment); `options.fds` is replaced.
CapturedRun run_captured(ChildProcess::Options options, std::chrono::milliseconds timeout);

// The executable `name` in $PATH (or /usr/sbin:/usr/bin:/sbin:/bin without one), nullopt when absent.
std::optional<std::filesystem::path> find_in_path(const std::string& name);

}  // namespace kiln::host

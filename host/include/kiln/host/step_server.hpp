// The step server: a single-threaded `kiln __step-server` process that keeps
// plugin libraries loaded and forks one child per step. A step then starts
// in about a millisecond instead of paying exec, dynamic linking and plugin
// loading (≈0.7 s for a library that links LibTorch), while each step still
// runs in a process of its own (crash isolation, kill on timeout).
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/subprocess.hpp>

#include <sys/types.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace kiln::host {

// The host's handle on one step server. Thread-safe.
class StepServer {
 public:
  // Starts `kiln_exe __step-server`. Throws std::system_error.
  explicit StepServer(const std::filesystem::path& kiln_exe);
  ~StepServer();  // stops the server; its children are killed
  StepServer(const StepServer&) = delete;
  StepServer& operator=(const StepServer&) = delete;

  // Forks a step child running `request` (the request itself, or the path of
  // its file) as `kiln step` would, with
  // stdout, stderr and the channel (fd 3) on the given descriptors, in its
  // own process group, working directory `cwd`. The first time it sees
  // `component`, the server runs its warm-up (ABI 1.1) before forking.
  // Returns the child's pid. Throws std::runtime_error when the server
  // cannot start it.
  // `on_exit` is called once, from the server's reader thread, when the child
  // has ended (with status -1 when the server died first). The child is
  // reaped only after on_exit returns, so signal() never hits a recycled pid.
  pid_t start(const std::filesystem::path& library, const std::string& component, const Json& request,
              const std::filesystem::path& cwd, int stdout_fd, int stderr_fd, int channel_fd,
              std::function<void(ExitStatus)> on_exit);

  // Sends `sig` to the child's process group unless it has ended.
  void signal(pid_t pid, int sig);

  bool alive() const;

 private:
  void read_replies();
  // Runs a child's exit callback, then lets the server reap it.
  void finish_child(pid_t pid, const ExitStatus& status, const std::function<void(ExitStatus)>& on_exit);
  void send(const std::string& message, const std::vector<int>& fds);

  int socket_ = -1;
  std::optional<ChildProcess> server_;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::mutex start_mutex_;  // one start request in flight at a time
  std::optional<std::string> start_reply_;
  std::map<pid_t, std::function<void(ExitStatus)>> children_;  // running children and their callbacks
  std::map<pid_t, ExitStatus> early_exits_;                    // ended before start() registered them
  bool server_gone_ = false;
};

// The server side: the loop of `kiln __step-server`, talking on `socket_fd`.
int run_step_server(int socket_fd);

}  // namespace kiln::host

// The step server: a single-threaded `kiln __step-server` process that keeps
// plugin libraries loaded and forks one child per step. A step then starts
// in about a millisecond instead of paying exec, dynamic linking and plugin
// loading (≈0.7 s for a library that links LibTorch), while each step still
// runs in a process of its own (crash isolation, kill on timeout).
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/subprocess.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace kiln::host {

// How a step child ended: its exit status (code -1, no signal: the server
// died first), or, when `start_error` is not empty, why the server could not
// start it at all (a library that does not load, a failed fork).
struct StepEnd {
  ExitStatus status;
  std::string start_error;
};

// How the server starts one step child, besides its request.
struct StepChildOptions {
  // Set in the child's environment before the step runs (CUDA_VISIBLE_DEVICES).
  std::vector<std::pair<std::string, std::string>> env;
  // Not empty: the forked child execs this (`kiln step --request FILE`)
  // instead of running the step in the fork, and the server loads nothing for
  // it. A fresh process shares none of the server's state, which CUDA needs:
  // it cannot be used in a child forked after its parent touched it.
  std::vector<std::string> exec;
  // The step may run in a warm worker that ran an earlier step of the same
  // component and stays for the next (a tuning step's trials: no fork, exit
  // and cold heap per trial). Ignored with `env` or `exec`.
  bool reuse = false;
};

// The host's handle on one step server. Thread-safe.
class StepServer {
 public:
  // Names one start request, and then the child it started.
  using ChildId = uint64_t;

  // Starts the step server: kiln-step-server beside `kiln_exe` (it links
  // less, so its forks are cheaper), else `kiln_exe __step-server`, with
  // CUDA_VISIBLE_DEVICES empty: nothing in the server (a plugin's warm-up)
  // can initialize CUDA on a GPU. Throws std::system_error.
  explicit StepServer(const std::filesystem::path& kiln_exe);
  ~StepServer();  // stops the server; its children are killed
  StepServer(const StepServer&) = delete;
  StepServer& operator=(const StepServer&) = delete;

  // Asks the server to fork a step child running `request_json` (JSON text:
  // the request object itself, or a string holding the path of its file,
  // encoded once by the caller) as `kiln step` would, with stdout,
  // stderr and the channel (fd 3) on the given descriptors (copied: the
  // caller keeps and closes its own), in its own process group, working
  // directory `cwd`. The first time it sees `component`, the server runs its
  // warm-up (ABI 1.1) before forking. Returns at once, without waiting for
  // the server's answer (issue 16: the engine's thread starts the next step
  // meanwhile). Throws std::runtime_error only when the server is gone.
  // `on_end` is called once, from the server's reader thread, when the child
  // has ended or could not be started. The child is reaped only after
  // on_end returns, so signal() never hits a recycled pid. `child`: its
  // environment, or a fresh runner to exec (then `request` is unused).
  ChildId start(const std::filesystem::path& library, const std::string& component, const std::string& request_json,
                const std::filesystem::path& cwd, int stdout_fd, int stderr_fd, int channel_fd,
                std::function<void(const StepEnd&)> on_end, const StepChildOptions& child = {});

  // Sends `sig` to the child's process group unless it has ended; a child
  // not started yet gets it (the strongest asked for) as soon as it is. A
  // step in a warm worker gets SIGTERM/SIGINT queued with its id, so it
  // cancels that step only; SIGKILL ends the worker.
  void signal(ChildId child, int sig);

  bool alive() const;

 private:
  struct Child {
    std::function<void(const StepEnd&)> on_end;
    pid_t pid = 0;           // 0 until the server answered
    int pending_signal = 0;  // asked for before the pid was known
    std::chrono::steady_clock::time_point asked;
    bool worker = false;  // runs in a warm worker (signals are queued with the id)
  };
  void read_replies();
  void send_signal(ChildId id, const Child& child, int sig);
  // Waits for the server's next message; kills the server when a start has
  // waited longer than the start timeout (a hung plugin load or warm-up).
  std::string next_reply(std::vector<char>& buffer);
  void on_started(ChildId id, pid_t pid, bool worker);
  void on_start_error(ChildId id, const std::string& message);
  void on_exited(pid_t pid, int raw_status);
  void send(const std::string& message, const std::vector<int>& fds);

  int socket_ = -1;
  std::optional<ChildProcess> server_;
  std::thread reader_;
  mutable std::mutex mutex_;  // guards what follows
  ChildId next_id_ = 1;
  std::map<ChildId, Child> children_;  // asked for, started, not yet ended
  std::map<pid_t, ChildId> by_pid_;
  bool server_gone_ = false;
};

// The step server's binary for `kiln_exe`: kiln-step-server in the same
// directory when it is there, else `kiln_exe` itself (run as __step-server).
std::filesystem::path step_server_exe(const std::filesystem::path& kiln_exe);

// The server side: the loop of kiln-step-server (or `kiln __step-server`), talking on `socket_fd`.
int run_step_server(int socket_fd);

}  // namespace kiln::host

// Both sides of the step server (see step_server.hpp). Messages are JSON on
// a SOCK_SEQPACKET socket pair; descriptors travel as SCM_RIGHTS.
//   host → server  {"op":"start","id","library","component","request","cwd","env"?,"exec"?} + [stdout, stderr, channel]
//                  ("request": the request itself, or the path of its file when it is big;
//                   "env": {NAME: VALUE} set in the child; "exec": argv the child execs instead)
//                  ("reuse": true: the step may run in a warm worker, below)
//                  {"op":"reap","pid"}
//   server → host  {"op":"started","id","pid","worker"?} | {"op":"error","id","message"}
//                  {"op":"exited","pid","status"}   (the child stays a zombie until "reap")
// The host does not wait for "started": it sends the next start at once. The
// server answers in order, so a child's "started" precedes its "exited".
//
// Warm workers ("reuse"; the process executor asks it for a tuning step's
// trials): the forked child runs its step, then, instead of exiting, lets go
// of the step's descriptors, tells the server {"op":"done","status"} on its
// own socket and waits there for another start of the same component. The
// server reports the step "exited" with that status; once the host has
// reaped it (so it signals that step no more) the worker may be given the
// next one. Stop signals for a worker's step are queued to the worker alone
// with the step's id (sigqueue), so a late or early one cannot cancel
// another step; SIGKILL ends the worker's whole process group, whose exit
// then ends the step it ran. A worker retires after kStepsPerWorker steps,
// bounding what a plugin may leak, and after a step that left a process
// behind (killed with the group when the worker exits).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <kiln/host/error.hpp>
#include <kiln/host/executor.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/step_context.hpp>
#include <kiln/host/step_server.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <set>
#include <system_error>

namespace kiln::host {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxMessage = 65536;
constexpr std::chrono::seconds kStartTimeout{120};
constexpr size_t kMaxFds = 3;
constexpr int kStepsPerWorker = 64;

void send_message(int socket, const std::string& text, const std::vector<int>& fds) {
  iovec data{const_cast<char*>(text.data()), text.size()};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFds)> control{};
  if (!fds.empty()) {
    message.msg_control = control.data();
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  while (::sendmsg(socket, &message, MSG_NOSIGNAL) < 0)
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "step server: send");
}

// Receives one message; an empty text means the peer closed the socket.
// `buffer` is reused between calls: filling a fresh 64 KiB buffer per message
// costs page faults (copy-on-write ones in the forking server).
std::string receive_message(int socket, std::vector<int>& fds, std::vector<char>& buffer, int flags = 0) {
  buffer.resize(kMaxMessage);
  iovec data{buffer.data(), buffer.size()};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFds)> control{};
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  ssize_t n;
  while ((n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC | flags)) < 0)
    if (errno != EINTR) return {};
  for (cmsghdr* h = CMSG_FIRSTHDR(&message); h != nullptr; h = CMSG_NXTHDR(&message, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
      const size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      fds.resize(count);
      std::memcpy(fds.data(), CMSG_DATA(h), sizeof(int) * count);
    }
  return std::string(buffer.data(), static_cast<size_t>(n));
}

// ---- the server process ----------------------------------------------------

// In the forked child: replace it with a fresh runner (argv from the host).
// Returns only when execv failed, having said why on stderr.
void exec_runner(const Json& argv_json) {
  std::vector<std::string> argv;
  for (const auto& arg : argv_json) argv.push_back(arg.is_string() ? arg.get<std::string>() : "");
  std::vector<char*> pointers;
  for (auto& arg : argv) pointers.push_back(arg.data());
  pointers.push_back(nullptr);
  ::execv(pointers[0], pointers.data());  // PR_SET_PDEATHSIG and the process group survive it
  std::cerr << "kiln step server: cannot run " << argv[0] << ": " << std::strerror(errno) << "\n";
}

// In the forked child: become the step's process and run it (or exec a fresh runner that does).
// In a forked child: leave the server's descriptors and lead a process group
// that dies with the server. False when the server died already.
bool detach_from_server(const std::vector<int>& server_fds) {
  for (const int fd : server_fds) ::close(fd);
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // if the server dies, so does the step (it is unreachable then)
  if (::getppid() == 1) return false;  // the server died before that took effect
  sigset_t none;
  sigemptyset(&none);
  ::signal(SIGCHLD, SIG_DFL);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  return true;
}

// Puts the step's stdout, stderr and channel on 1, 2 and 3 and enters its
// working directory (made here, off the host's thread, which starts the
// next step meanwhile). False when that directory cannot be entered.
bool enter_step(const Json& request, const std::vector<int>& fds) {
  ::dup2(fds[0], 1);
  ::dup2(fds[1], 2);
  ::dup2(fds[2], 3);
  for (const int fd : fds)
    if (fd > 3) ::close(fd);
  const fs::path cwd = request.value("cwd", "/");
  std::error_code ignored;
  if (::chdir(cwd.c_str()) != 0) fs::create_directories(cwd, ignored);
  return ::chdir(cwd.c_str()) == 0;
}

void flush_all() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
}

// Whether the worker still has children (a process its step started):
// reaps those that ended; the worker is their subreaper, so orphans of
// orphans count too.
bool has_children() {
  for (;;) {
    const pid_t pid = ::waitpid(-1, nullptr, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0 && errno == EINTR) continue;
    return pid == 0;
  }
}

// A warm worker (see the top): runs `first`, then each start the server
// sends on `worker_socket`, until told to stop (the socket closes) or
// retired: after kStepsPerWorker steps, or after a step that left a process
// behind (it could hold the step's pipes open; the server kills the
// worker's process group when the worker exits).
[[noreturn]] void run_worker(const Json& first, const std::vector<int>& first_fds, int worker_socket) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  Json request = first;
  std::vector<int> fds = first_fds;
  std::vector<char> buffer;
  for (int steps = 1;; ++steps) {
    int code = 1;
    try {  // nothing may unwind into the forked copy of the server's stack
      if (enter_step(request, fds)) {
        const Json& step = request.contains("request") ? request["request"] : Json();
        const auto id = request.value("id", uint64_t{0});
        code = step.is_object() ? run_inline_step_request(step, 3, id) : 1;
      }
    } catch (...) {
      code = 1;
    }
    flush_all();
    // Let go of the step's pipes: the host reads each to its end.
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::close(3);
    ::close(null);
    const bool last = steps >= kStepsPerWorker || has_children();
    const int status = (code & 0xff) << 8;
    try {
      send_message(worker_socket, Json{{"op", "done"}, {"status", status}, {"last", last}}.dump(), {});
      // Exiting with the step's own code: if the server sees the exit before
      // reading "done", it still reports the step's status.
      if (last) ::_exit(code & 0xff);
      fds.clear();
      const std::string text = receive_message(worker_socket, fds, buffer);
      if (text.empty()) ::_exit(0);  // the server is done with us
      request = Json::parse(text, nullptr, false);
    } catch (...) {
      ::_exit(code & 0xff);
    }
    if (!request.is_object() || fds.size() != 3) ::_exit(1);
  }
}

[[noreturn]] void become_step(const Json& request, const std::vector<int>& fds, const std::vector<int>& server_fds) {
  if (!detach_from_server(server_fds)) ::_exit(1);
  int code = 1;
  try {  // nothing may unwind into the forked copy of the server's stack
    const Json& step = request.contains("request") ? request["request"] : Json();
    if (const auto env = request.find("env"); env != request.end() && env->is_object())
      for (const auto& [name, value] : env->items())
        if (value.is_string()) ::setenv(name.c_str(), value.get<std::string>().c_str(), 1);
    if (enter_step(request, fds)) {
      if (const auto exec = request.find("exec"); exec != request.end() && exec->is_array() && !exec->empty())
        exec_runner(*exec);  // returns only when the exec failed
      else
        code = step.is_object() ? run_inline_step_request(step, 3)
                                : run_step_request(fs::path(step.is_string() ? step.get<std::string>() : ""), 3);
    }
  } catch (...) {
    code = 1;
  }
  flush_all();
  ::_exit(code);  // no static destructors: they belong to the server
}

class Server {
 public:
  Server(int socket, int signals) : socket_(socket), signals_(signals) {}

  int loop() {
    int code = 0;
    try {
      std::vector<pollfd> fds;
      for (;;) {
        fds.assign({pollfd{socket_, POLLIN, 0}, pollfd{signals_, POLLIN, 0}});
        for (const auto& [pid, worker] : workers_)
          if (worker.state == Worker::Busy) fds.push_back(pollfd{worker.socket, POLLIN, 0});
        if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
        for (size_t i = 2; i < fds.size(); ++i)
          if (fds[i].revents) on_worker_message(fds[i].fd);
        if (fds[1].revents) report_exits();
        if (fds[0].revents && !handle_request()) break;
      }
    } catch (const std::exception& e) {  // e.g. the host vanished mid-send
      std::cerr << "kiln step server: " << e.what() << "\n";
      code = 1;
    }
    for (const pid_t pid : children_) ::kill(-pid, SIGKILL);  // the host is gone: so are its steps
    return code;
  }

 private:
  // A warm worker's place in its cycle: running a step; its step reported
  // ended but not yet reaped by the host; free for the next step; its
  // process gone (reported, waiting for the host's reap).
  struct Worker {
    enum State { Busy, Ended, Idle, Exited } state = Busy;
    std::string key;  // library and component
    int socket = -1;
    bool retiring = false;
  };

  bool handle_request() {
    std::vector<int> fds;
    const std::string text = receive_message(socket_, fds, buffer_);
    if (text.empty()) return false;
    const Json request = Json::parse(text, nullptr, false);
    const std::string op = request.is_object() ? request.value("op", "") : "";
    if (op == "reap") {
      reap(request.value("pid", 0));
    } else if (op == "start") {
      start(request, text, fds);
    }
    for (const int fd : fds) ::close(fd);
    return true;
  }

  void reap(pid_t pid) {
    const auto worker = workers_.find(pid);
    if (worker != workers_.end() && worker->second.state == Worker::Ended) {
      worker->second.state = Worker::Idle;  // the host signals its last step no more
      return;
    }
    ::waitpid(pid, nullptr, 0);
    children_.erase(pid);
    reported_.erase(pid);
    if (worker != workers_.end()) forget_worker(worker);
  }

  void start(const Json& request, const std::string& text, const std::vector<int>& fds) {
    const Json id = request.value("id", Json(0));
    const std::string library = request.value("library", "");
    // A request too big to travel inline (its file's path) gets a fresh child.
    const bool reuse = request.value("reuse", false) && !request.contains("exec") && !request.contains("env") &&
                       !is_component_file(library) && request.contains("request") && request["request"].is_object();
    const std::string key = library + "\n" + request.value("component", "");
    if (reuse && fds.size() == 3 && hand_to_idle_worker(key, id, text, fds)) return;
    try {
      if (fds.size() != 3) throw std::runtime_error("start needs 3 descriptors");
      // A component file is a command: nothing to load (step_runner runs it);
      // nor for a child that execs a fresh runner, which loads it itself.
      if (!is_component_file(library) && !request.contains("exec")) {
        const auto loaded = PluginLibrary::load(library);  // the child inherits it loaded
        warm_up(*loaded, request.value("component", ""));
      }
    } catch (const std::exception& e) {
      return send_message(socket_, Json{{"op", "error"}, {"id", id}, {"message", e.what()}}.dump(), {});
    }
    std::array<int, 2> pair{-1, -1};
    if (reuse && ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) != 0) pair = {-1, -1};
    const bool worker = pair[0] >= 0;
    // What the child closes, gathered before the fork: nothing may allocate
    // in the child before it is inside a try.
    std::vector<int> server_fds{socket_, signals_};
    for (const auto& [other, w] : workers_) server_fds.push_back(w.socket);
    if (worker) server_fds.push_back(pair[0]);
    const pid_t pid = ::fork();
    if (pid == 0) {
      try {
        if (worker) {
          if (!detach_from_server(server_fds)) ::_exit(1);
          run_worker(request, fds, pair[1]);
        }
        become_step(request, fds, server_fds);
      } catch (...) {
        ::_exit(1);
      }
    }
    if (worker) ::close(pair[1]);
    if (pid < 0) {
      if (worker) ::close(pair[0]);
      return send_message(socket_, Json{{"op", "error"}, {"id", id}, {"message", std::strerror(errno)}}.dump(), {});
    }
    ::setpgid(pid, pid);  // also here: the host may signal the group before the child runs
    children_.insert(pid);
    if (worker) workers_.emplace(pid, Worker{Worker::Busy, key, pair[0], false});
    Json started{{"op", "started"}, {"id", id}, {"pid", pid}};
    if (worker) started["worker"] = true;
    send_message(socket_, started.dump(), {});
  }

  // Sends the start to an idle worker of the same component; false when there is none.
  bool hand_to_idle_worker(const std::string& key, const Json& id, const std::string& text,
                           const std::vector<int>& fds) {
    for (auto& [pid, worker] : workers_) {
      if (worker.state != Worker::Idle || worker.retiring || worker.key != key) continue;
      try {
        send_message(worker.socket, text, fds);
      } catch (const std::exception&) {  // it died meanwhile: its exit is on its way
        worker.retiring = true;
        continue;
      }
      worker.state = Worker::Busy;
      send_message(socket_, Json{{"op", "started"}, {"id", id}, {"pid", pid}, {"worker", true}}.dump(), {});
      return true;
    }
    return false;
  }

  // A worker's "done": its step has ended with that status. `flags`:
  // MSG_DONTWAIT when the worker is known to be gone.
  void on_worker_message(int socket, int flags = 0) {
    const auto worker = std::find_if(workers_.begin(), workers_.end(),
                                     [socket](const auto& item) { return item.second.socket == socket; });
    if (worker == workers_.end()) return;
    std::vector<int> fds;
    const std::string text = receive_message(socket, fds, worker_buffer_, flags);
    for (const int fd : fds) ::close(fd);
    if (text.empty()) {  // it is exiting: report_exits ends its step
      worker->second.retiring = true;
      return;
    }
    const Json done = Json::parse(text, nullptr, false);
    if (!done.is_object() || done.value("op", "") != "done" || worker->second.state != Worker::Busy) return;
    worker->second.state = Worker::Ended;
    worker->second.retiring = worker->second.retiring || done.value("last", false);
    send_message(socket_, Json{{"op", "exited"}, {"pid", worker->first}, {"status", done.value("status", 1 << 8)}}.dump(),
                 {});
  }

  void forget_worker(std::map<pid_t, Worker>::iterator worker) {
    ::close(worker->second.socket);
    workers_.erase(worker);
  }

  // Runs a component's warm-up once, so its forked steps start warm.
  void warm_up(const PluginLibrary& library, const std::string& name) {
    const auto* component = library.find(name);
    if (component == nullptr || component->warm_up == nullptr || !warmed_.insert(name).second) return;
    KilnError* error = component->warm_up(host_api(), component->component->user_data);
    if (error != nullptr) {
      std::cerr << "kiln step server: warm-up of " << name << " failed: " << error->message << "\n";
      error_release(error);
    }
  }

  // Tells the host about ended children without reaping them (WNOWAIT). A
  // worker whose step was reported already ("done") adds nothing; an idle
  // one is reaped here, as no host knows it.
  void report_exits() {
    signalfd_siginfo info{};
    while (::read(signals_, &info, sizeof info) == sizeof info) {
    }
    std::vector<pid_t> idle_gone;
    for (const pid_t pid : children_) {
      if (reported_.count(pid)) continue;
      siginfo_t status{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &status, WEXITED | WNOHANG | WNOWAIT) != 0 || status.si_pid != pid)
        continue;
      const int raw = status.si_code == CLD_EXITED ? (status.si_status & 0xff) << 8 : (status.si_status & 0x7f);
      // The step is over: so are processes it left behind, which could hold
      // its channel open forever. The unreaped leader still pins the group
      // id, so this cannot reach another group.
      ::kill(-pid, SIGKILL);
      reported_.insert(pid);
      const auto worker = workers_.find(pid);
      if (worker != workers_.end()) {
        // A "done" it sent just before exiting is still queued on its
        // socket: it is the step's status, which the exit status must not
        // replace (not waiting: a process it left may hold the other end).
        if (worker->second.state == Worker::Busy) on_worker_message(worker->second.socket, MSG_DONTWAIT);
        const auto was = worker->second.state;
        worker->second.state = Worker::Exited;
        if (was == Worker::Idle) idle_gone.push_back(pid);
        if (was != Worker::Busy) continue;  // its last step was reported by "done"
      }
      send_message(socket_, Json{{"op", "exited"}, {"pid", pid}, {"status", raw}}.dump(), {});
    }
    for (const pid_t pid : idle_gone) {
      ::waitpid(pid, nullptr, 0);
      children_.erase(pid);
      reported_.erase(pid);
      forget_worker(workers_.find(pid));
    }
  }

  int socket_, signals_;
  std::set<pid_t> children_, reported_;
  std::map<pid_t, Worker> workers_;
  std::set<std::string> warmed_;
  std::vector<char> buffer_, worker_buffer_;
};

}  // namespace

int run_step_server(int socket_fd) {
  ::unsetenv("LD_BIND_NOW");  // done its work at start-up; steps' own children need not inherit it
  sigset_t child;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &child, nullptr);
  const int signals = ::signalfd(-1, &child, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signals < 0) return 1;
  ::signal(SIGINT, SIG_IGN);  // Ctrl-C is the host's to handle; it stops us by closing the socket
  return Server(socket_fd, signals).loop();
}

// ---- the host's handle ---------------------------------------------------------

fs::path step_server_exe(const fs::path& kiln_exe) {
  const fs::path own = kiln_exe.parent_path() / "kiln-step-server";
  return ::access(own.c_str(), X_OK) == 0 ? own : kiln_exe;
}

StepServer::StepServer(const fs::path& kiln_exe) {
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  socket_ = pair[0];
  const Pipe server_end(pair[1]);  // closed here once the child has its copy
  // LD_BIND_NOW: resolve every symbol once in the server, not again (with
  // copy-on-write faults) in each forked step.
  const fs::path exe = step_server_exe(kiln_exe);
  std::vector<std::string> argv{exe.string()};
  if (exe == kiln_exe) argv.emplace_back("__step-server");
  server_.emplace(ChildProcess::spawn({argv, {{3, pair[1]}}, {}, {{"LD_BIND_NOW", "1"}, {"CUDA_VISIBLE_DEVICES", ""}}}));
  reader_ = std::thread([this] { read_replies(); });
}

StepServer::~StepServer() {
  ::shutdown(socket_, SHUT_RDWR);  // the server kills its children and exits
  reader_.join();
  ::close(socket_);
  server_->wait();
}

void StepServer::send(const std::string& message, const std::vector<int>& fds) {
  send_message(socket_, message, fds);
}

StepServer::ChildId StepServer::start(const fs::path& library, const std::string& component, const std::string& request_json,
                                      const fs::path& cwd, int stdout_fd, int stderr_fd, int channel_fd,
                                      std::function<void(const StepEnd&)> on_end, const StepChildOptions& options) {
  ChildId id = 0;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (server_gone_) throw std::runtime_error("the step server has exited");
    id = next_id_++;
    children_.emplace(id, Child{std::move(on_end), 0, 0, std::chrono::steady_clock::now()});
  }
  try {
    Json message{{"op", "start"}, {"id", id}, {"library", library.string()}, {"component", component}, {"cwd", cwd.string()}};
    if (!options.env.empty()) {
      Json& env = message["env"] = Json::object();
      for (const auto& [name, value] : options.env) env[name] = value;
    }
    if (!options.exec.empty()) message["exec"] = options.exec;
    if (options.reuse) message["reuse"] = true;
    // The request goes in as the caller encoded it: it is most of the
    // message, and encoding it twice per step showed in the engine's profile.
    std::string text = message.dump();
    text.pop_back();  // the closing brace
    text.append(",\"request\":").append(request_json).push_back('}');
    send(text, {stdout_fd, stderr_fd, channel_fd});
  } catch (...) {  // never sent: no answer will come
    const std::lock_guard<std::mutex> lock(mutex_);
    children_.erase(id);
    throw;
  }
  return id;
}

void StepServer::signal(ChildId id, int sig) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = children_.find(id);
  if (it == children_.end()) return;  // ended (or never started)
  if (it->second.pid > 0)
    send_signal(it->first, it->second, sig);  // still registered: not ended, not reaped
  else if (sig == SIGKILL || it->second.pending_signal == 0)
    it->second.pending_signal = sig;
}

// A worker's stop names its step (step_runner's handler ignores one meant
// for another) and reaches the worker alone; SIGKILL, and any signal to a
// child of its own, reach the whole process group.
void StepServer::send_signal(ChildId id, const Child& child, int sig) {
  if (child.worker && sig != SIGKILL) {
    sigval value{};
    value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(id));
    ::sigqueue(child.pid, sig, value);
  } else {
    ::kill(-child.pid, sig);
  }
}

bool StepServer::alive() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return !server_gone_;
}

std::string StepServer::next_reply(std::vector<char>& buffer) {
  for (;;) {
    int wait_ms = -1;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      const auto now = std::chrono::steady_clock::now();
      for (const auto& [id, child] : children_) {
        if (child.pid > 0) continue;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(child.asked + kStartTimeout - now);
        if (left.count() <= 0) {
          std::cerr << "kiln: the step server did not start a step within " << kStartTimeout.count()
                    << " s (a hung plugin load or warm-up?): stopping it\n";
          server_->kill_group(SIGKILL);  // its socket closes: every child is reported lost
          wait_ms = -1;
          break;
        }
        wait_ms = wait_ms < 0 ? static_cast<int>(left.count()) : std::min(wait_ms, static_cast<int>(left.count()));
      }
    }
    pollfd readable{socket_, POLLIN, 0};
    const int n = ::poll(&readable, 1, wait_ms);
    if (n < 0 && errno != EINTR) return {};
    if (n <= 0) continue;  // a start's time ran out: checked above
    std::vector<int> fds;
    std::string text = receive_message(socket_, fds, buffer);
    for (const int fd : fds) ::close(fd);
    return text;
  }
}

void StepServer::read_replies() {
  std::vector<char> buffer;
  for (;;) {
    const std::string text = next_reply(buffer);
    if (text.empty()) {  // the server died: its children are gone too
      std::unique_lock<std::mutex> lock(mutex_);
      server_gone_ = true;
      auto orphans = std::move(children_);
      children_.clear();
      by_pid_.clear();
      lock.unlock();
      StepEnd lost;
      lost.status.code = -1;
      for (auto& [id, child] : orphans) {
        if (child.pid == 0) lost.start_error = "the step server exited before starting the step";
        if (child.on_end) child.on_end(lost);
        lost.start_error.clear();
      }
      return;
    }
    const Json reply = Json::parse(text, nullptr, false);
    const std::string op = reply.is_object() ? reply.value("op", "") : "";
    if (op == "started")
      on_started(reply.value("id", ChildId{0}), reply.value("pid", 0), reply.value("worker", false));
    else if (op == "error")
      on_start_error(reply.value("id", ChildId{0}), reply.value("message", std::string("?")));
    else if (op == "exited")
      on_exited(reply.value("pid", 0), reply.value("status", 0));
  }
}

void StepServer::on_started(ChildId id, pid_t pid, bool worker) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = children_.find(id);
  if (it == children_.end() || pid <= 0) return;
  it->second.pid = pid;
  it->second.worker = worker;
  by_pid_[pid] = id;
  if (it->second.pending_signal != 0) send_signal(id, it->second, it->second.pending_signal);  // cancelled while starting
}

void StepServer::on_start_error(ChildId id, const std::string& message) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto it = children_.find(id);
  if (it == children_.end()) return;
  auto on_end = std::move(it->second.on_end);
  children_.erase(it);
  lock.unlock();
  StepEnd end;
  end.status.code = 1;
  end.start_error = "step server: " + message;
  if (on_end) on_end(end);
}

void StepServer::on_exited(pid_t pid, int raw_status) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto found = by_pid_.find(pid);
  std::function<void(const StepEnd&)> on_end;
  bool worker = false;
  if (found != by_pid_.end()) {
    const auto it = children_.find(found->second);
    if (it != children_.end()) {
      on_end = std::move(it->second.on_end);
      worker = it->second.worker;
      children_.erase(it);  // from here on signal() leaves the pid alone
    }
    by_pid_.erase(found);
  }
  lock.unlock();
  const auto reap = [this, pid] {
    try {
      send(Json{{"op", "reap"}, {"pid", pid}}.dump(), {});
    } catch (const std::exception&) {  // the server is gone; nothing to reap
    }
  };
  // A worker is freed before on_end: the step its end lets start (the next
  // trial) finds it idle instead of forking another.
  if (worker) reap();
  StepEnd end;
  end.status = exit_status_from_wait(raw_status);
  if (on_end) on_end(end);
  if (!worker) reap();
}

}  // namespace kiln::host

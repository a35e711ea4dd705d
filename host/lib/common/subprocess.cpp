#include <kiln/host/subprocess.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <map>
#include <system_error>

extern char** environ;

namespace kiln::host {
namespace {

[[noreturn]] void throw_errno(const std::string& what, int error) {
  throw std::system_error(error, std::generic_category(), what);
}

std::vector<std::string> merged_environment(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry = *e;
    const auto eq = entry.find('=');
    if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [k, v] : overrides) vars[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& items) {
  std::vector<char*> out;
  for (auto& s : items) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// RAII holders for the posix_spawn attribute objects.
struct SpawnActions {
  SpawnActions() { posix_spawn_file_actions_init(&actions); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions); }
  posix_spawn_file_actions_t actions;
};
struct SpawnAttributes {
  SpawnAttributes() { posix_spawnattr_init(&attributes); }
  ~SpawnAttributes() { posix_spawnattr_destroy(&attributes); }
  posix_spawnattr_t attributes;
};

// A child starts (by default in its own process group) with default signal
// handling and an empty signal mask, whatever the host blocks for its own signal thread.
void configure_attributes(posix_spawnattr_t& attributes, bool new_group) {
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setpgroup(&attributes, 0);
  const short group = new_group ? POSIX_SPAWN_SETPGROUP : 0;
  posix_spawnattr_setflags(&attributes, static_cast<short>(group | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK));
}

void read_available(int fd, std::string& into, bool& open) {
  std::array<char, 65536> buffer{};
  const ssize_t n = ::read(fd, buffer.data(), buffer.size());
  if (n > 0) {
    into.append(buffer.data(), static_cast<size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    open = false;
  }
}

}  // namespace

std::string signal_name(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  const char* description = strsignal(signal);
  std::string name = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(signal);
  return description ? name + " (" + description + ")" : name;
}

ExitStatus exit_status_from_wait(int wait_status) {
  ExitStatus s;
  if (WIFEXITED(wait_status)) s.code = WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) s.signal = WTERMSIG(wait_status);
  return s;
}

std::string ExitStatus::describe() const {
  if (timed_out) return "timed out and was killed";
  if (signal != 0) return "killed by signal " + signal_name(signal);
  return "exited with status " + std::to_string(code);
}

Pipe::Pipe(int adopted_read_fd) : read_fd(adopted_read_fd) {}

Pipe::Pipe() {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) throw_errno("pipe2", errno);
  read_fd = fds[0];
  write_fd = fds[1];
}

Pipe::~Pipe() {
  close_read();
  close_write();
}

void Pipe::close_read() {
  if (read_fd >= 0) ::close(read_fd);
  read_fd = -1;
}

void Pipe::close_write() {
  if (write_fd >= 0) ::close(write_fd);
  write_fd = -1;
}

ChildProcess ChildProcess::spawn(const Options& options) {
  if (options.argv.empty()) throw std::invalid_argument("spawn: empty argv");
  SpawnActions actions;
  SpawnAttributes attributes;
  configure_attributes(attributes.attributes, options.new_process_group);
  bool stdin_mapped = false;
  std::vector<Pipe> copies;  // closes the parent's temporary copies on return
  for (const auto& [child_fd, parent_fd] : options.fds) {
    int source = parent_fd;
    if (parent_fd == child_fd) {  // dup2 onto the same number keeps close-on-exec
      source = ::fcntl(parent_fd, F_DUPFD_CLOEXEC, 100);
      copies.emplace_back(source);
    }
    posix_spawn_file_actions_adddup2(&actions.actions, source, child_fd);
    stdin_mapped = stdin_mapped || child_fd == 0;
  }
  if (!stdin_mapped) posix_spawn_file_actions_addopen(&actions.actions, 0, "/dev/null", O_RDONLY, 0);
  if (options.cwd) posix_spawn_file_actions_addchdir_np(&actions.actions, options.cwd->c_str());
  auto argv_strings = options.argv;
  auto env_strings = merged_environment(options.env);
  const auto argv = c_strings(argv_strings);
  const auto envp = c_strings(env_strings);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions.actions, &attributes.attributes, argv.data(), envp.data());
  if (rc != 0) throw_errno("cannot start " + options.argv[0], rc);
  return ChildProcess(pid);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    kill_group(SIGKILL);
    wait();
  }
}

std::optional<ExitStatus> ChildProcess::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  int wait_status = 0;
  const pid_t r = ::waitpid(pid_, &wait_status, WNOHANG);
  if (r == pid_) status_ = exit_status_from_wait(wait_status);
  return status_;
}

ExitStatus ChildProcess::wait() {
  while (!status_ && pid_ > 0) {
    int wait_status = 0;
    const pid_t r = ::waitpid(pid_, &wait_status, 0);
    if (r == pid_) status_ = exit_status_from_wait(wait_status);
    if (r < 0 && errno != EINTR) status_ = ExitStatus{};
  }
  return status_.value_or(ExitStatus{});
}

void ChildProcess::kill_group(int signal) const {
  if (pid_ > 0 && !status_) {
    ::kill(-pid_, signal);
    ::kill(pid_, signal);
  }
}

CapturedRun run_with_result_channel(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  return run_captured({argv, {}, {}, {}}, timeout);
}

CapturedRun run_captured(ChildProcess::Options options, std::chrono::milliseconds timeout) {
  Pipe result, output;
  options.fds = {{1, output.write_fd}, {2, output.write_fd}, {3, result.write_fd}};
  auto child = ChildProcess::spawn(options);
  result.close_write();
  output.close_write();
  CapturedRun run;
  bool result_open = true, output_open = true, timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (result_open || output_open) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    std::array<pollfd, 2> fds{pollfd{result_open ? result.read_fd : -1, POLLIN, 0},
                              pollfd{output_open ? output.read_fd : -1, POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    if (fds[0].revents) read_available(result.read_fd, run.result, result_open);
    if (fds[1].revents) read_available(output.read_fd, run.output, output_open);
  }
  if (timed_out) child.kill_group(SIGKILL);
  run.status = child.wait();
  run.status.timed_out = timed_out;
  return run;
}

std::optional<std::filesystem::path> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::filesystem::path candidate = std::filesystem::path(dirs.substr(start, end - start)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace kiln::host

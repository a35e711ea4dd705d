#include "run_launcher.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <kiln/host/unique_fd.hpp>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace kiln::ui {

namespace {

// Only async-signal-safe calls from here on: the server has threads.
[[noreturn]] void exec_grandchild(char* const* argv, int log_fd, int null_fd, int report_fd) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (const int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaction(s, &default_action, nullptr);
  if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0) {
    const int error = errno;
    (void)!write(report_fd, &error, sizeof error);
    _exit(127);
  }
  // Every other descriptor closes at exec (the report pipe too: its EOF says the exec happened).
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    for (int fd = 3; fd < 65536; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  execv(argv[0], argv);
  const int error = errno;
  (void)!write(report_fd, &error, sizeof error);
  _exit(127);
}

}  // namespace

int launch_detached(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  if (argv.empty()) throw std::invalid_argument("launch_detached: no program");
  std::vector<std::string> args = argv;
  std::vector<char*> pointers;
  for (auto& a : args) pointers.push_back(a.data());
  pointers.push_back(nullptr);

  const host::UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (log_fd.get() < 0) throw std::runtime_error("cannot open " + log.string() + ": " + std::strerror(errno));
  const host::UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) throw std::runtime_error(std::string("cannot open /dev/null: ") + std::strerror(errno));
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  host::UniqueFd read_end(ends[0]), write_end(ends[1]);

  const pid_t middle = ::fork();
  if (middle < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (middle == 0) {
    setsid();
    const pid_t grandchild = fork();
    if (grandchild == 0) exec_grandchild(pointers.data(), log_fd.get(), null_fd.get(), write_end.get());
    const int pid = grandchild;
    (void)!write(write_end.get(), &pid, sizeof pid);
    _exit(grandchild < 0 ? 1 : 0);
  }
  write_end.reset();
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  // The grandchild's pid, then (only when the exec failed) its errno; EOF once it has executed.
  char buffer[2 * sizeof(int)];
  size_t got = 0;
  for (;;) {
    const ssize_t n = ::read(read_end.get(), buffer + got, sizeof buffer - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
    if (got == sizeof buffer) break;
  }
  if (got < sizeof(int)) throw std::runtime_error("could not start " + argv[0] + ": fork failed");
  int pid = 0;
  std::memcpy(&pid, buffer, sizeof pid);
  if (pid <= 0) throw std::runtime_error("could not start " + argv[0] + ": the second fork failed");
  if (got == sizeof buffer) {
    int error = 0;
    std::memcpy(&error, buffer + sizeof(int), sizeof error);
    throw std::runtime_error("could not start " + argv[0] + ": " + std::strerror(error));
  }
  return pid;
}

SignalResult signal_recorded_process(const host::HostIdentity& recorded, int signal) {
  const host::HostState state = host::host_state(recorded);
  if (state == host::HostState::unknown) return SignalResult::elsewhere;
  if (state == host::HostState::dead || recorded.pid <= 0) return SignalResult::gone;
  // The pidfd holds on to this very process: once its start time is checked,
  // the signal cannot reach another process that reused the pid.
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, recorded.pid, 0));
  if (pidfd < 0) {
    if (errno == ESRCH) return SignalResult::gone;
    throw std::runtime_error(std::string("pidfd_open: ") + std::strerror(errno));
  }
  const host::UniqueFd owned(pidfd);
  if (host::process_start_time(recorded.pid) != recorded.process_start) return SignalResult::gone;
  if (::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) != 0) {
    if (errno == ESRCH) return SignalResult::gone;
    throw std::runtime_error(std::string("pidfd_send_signal: ") + std::strerror(errno));
  }
  return SignalResult::sent;
}

}  // namespace kiln::ui

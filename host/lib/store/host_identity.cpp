#include <signal.h>
#include <unistd.h>
#include <kiln/host/host_identity.hpp>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>

namespace kiln::host {

namespace {

std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

std::string process_start_time(int pid) {
  if (pid <= 0) return "";
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return "";
  // The command name (field 2) may hold spaces and parentheses: count fields
  // after its closing parenthesis. starttime is field 22.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return field;
  return "";
}

HostIdentity current_host_identity() {
  HostIdentity id;
  id.host = host_name();
  id.pid = ::getpid();
  id.boot_id = first_line("/proc/sys/kernel/random/boot_id");
  id.process_start = process_start_time(id.pid);
  return id;
}

std::string wall_clock_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

HostState host_state(const HostIdentity& recorded) {
  const HostIdentity now = current_host_identity();
  if (recorded.host != now.host) return HostState::unknown;
  if (recorded.boot_id != now.boot_id) return HostState::dead;  // the machine rebooted since
  if (recorded.pid <= 0) return HostState::dead;
  if (::kill(recorded.pid, 0) != 0 && errno != EPERM) return HostState::dead;
  // The pid exists, but it may have been recycled by another process.
  return process_start_time(recorded.pid) == recorded.process_start ? HostState::alive : HostState::dead;
}

std::optional<HostIdentity> recorded_identity(const Json& run) {
  const auto text = [&run](const char* key) -> std::optional<std::string> {
    const auto it = run.find(key);
    if (it == run.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  const auto pid = run.find("pid");
  HostIdentity id;
  if (pid == run.end() || !pid->is_number_integer()) return std::nullopt;
  const auto host = text("host"), boot_id = text("boot_id"), process_start = text("process_start");
  if (!host || !boot_id || !process_start) return std::nullopt;
  const int64_t value = pid->get<int64_t>();
  id.host = *host;
  id.pid = value > 0 && value <= std::numeric_limits<int>::max() ? static_cast<int>(value) : 0;
  id.boot_id = *boot_id;
  id.process_start = *process_start;
  return id;
}

HostState liveness_of(const Json& run) {
  const auto recorded = recorded_identity(run);
  return recorded ? host_state(*recorded) : HostState::unknown;
}

void kill_point(const char* name) {
  static std::once_flag once;
  static std::string target;
  static long wanted = 0;
  static std::atomic<long> seen{0};
  std::call_once(once, [] {
    const char* spec = std::getenv("KILN_TEST_KILL_AT");
    if (spec == nullptr) return;
    const std::string text = spec;
    const auto colon = text.rfind(':');
    target = text.substr(0, colon);
    wanted = colon == std::string::npos ? 1 : std::atol(text.c_str() + colon + 1);
  });
  if (target.empty() || target != name) return;
  if (++seen == wanted) ::raise(SIGKILL);
}

}  // namespace kiln::host

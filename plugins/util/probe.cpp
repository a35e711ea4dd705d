// util.probe: tries what an isolated step must not be able to do (write
// outside its outputs, read host files it was not given, reach the host's
// loopback, create a namespace) and what a resource limit must stop
// (allocate memory), reports what it managed, and who it ran as (its
// /proc/self/status credentials), its command line and the GPUs it sees
// (CUDA_VISIBLE_DEVICES). For testing the executors; under the process
// executor everything succeeds.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <vector>

#include "components.hpp"

namespace kiln::util {
namespace {

// True when a file could be created in `dir` (it is removed again).
bool can_write_in(const std::string& dir) {
  const std::string file = dir + "/kiln-probe-" + std::to_string(::getpid());
  std::ofstream out(file);
  out << "escaped";
  const bool written = static_cast<bool>(out.flush());
  out.close();
  if (written) ::unlink(file.c_str());
  return written;
}

// True when `path` opens for reading and, for a directory, lists.
bool can_read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {  // not a directory: one byte (or none, for an empty file)
    char byte = 0;
    const bool read = ::read(fd, &byte, 1) >= 0;
    ::close(fd);
    return read;
  }
  errno = 0;
  const bool listed = ::readdir(dir) != nullptr || errno == 0;
  ::closedir(dir);
  return listed;
}

// True when a child could make itself a new user namespace (which would give
// it every capability inside, and the kernel surface that comes with them).
bool can_unshare_user_namespace() {
  const pid_t child = ::fork();
  if (child < 0) return false;
  if (child == 0) ::_exit(::unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The credential lines of /proc/self/status (Uid, Gid, Groups, Cap*,
// NoNewPrivs, Seccomp), or "" where there is no /proc.
std::string credentials() {
  std::ifstream in("/proc/self/status");
  std::string lines;
  for (std::string line; std::getline(in, line);)
    for (const char* key : {"Uid:", "Gid:", "Groups:", "Cap", "NoNewPrivs:", "Seccomp:"})
      if (line.rfind(key, 0) == 0) lines += line + "\n";
  return lines;
}

// Its command line (/proc/self/cmdline, arguments joined by spaces): shows
// whether it runs in a fresh `kiln step` or a fork of the step server.
std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\0') text.pop_back();
  for (char& c : text)
    if (c == '\0') c = ' ';
  return text;
}

bool can_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

// The entries of a comma-separated list for which `works` is true, joined again.
template <typename Predicate>
std::string those_that(const std::string& list, Predicate works) {
  std::string found;
  std::istringstream items(list);
  for (std::string item; std::getline(items, item, ',');)
    if (!item.empty() && works(item)) found += (found.empty() ? "" : ",") + item;
  return found;
}

// Allocates and touches `mib` MiB, one MiB at a time, so a memory limit bites.
void allocate(int64_t mib) {
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int64_t i = 0; i < mib; ++i) {
    blocks.push_back(std::make_unique<char[]>(1 << 20));
    std::memset(blocks.back().get(), 1, 1 << 20);
  }
}

}  // namespace

Manifest Probe::manifest() {
  return Manifest("util.probe", "1.0.0", Kind::Generic)
      .description("Try to escape isolation and report what worked (for testing executors)")
      .param(Param::String("write_dirs").default_value("").description("comma-separated directories to write into"))
      .param(Param::Int("connect_port").default_value(0).min(0).max(65535).description("127.0.0.1 port to connect"))
      .input(Port("data", "Any").optional().description("an input artifact of any type, also tried for writing"))
      .param(Param::String("read_files")
                 .default_value("")
                 .description("comma-separated files or directories to try "
                              "to read"))
      .param(Param::Int("allocate_mib").default_value(0).min(0).description("MiB of memory to allocate and touch"))
      .param(Param::Bool("unshare").default_value(false).description("try to create a user namespace"))
      .output_parameter(Port("written", "string").description("comma-separated directories written into"))
      .output_parameter(Port("read", "string").description("comma-separated files or directories that could be read"))
      .output_parameter(Port("connected", "bool").description("whether the port could be reached"))
      .output_parameter(Port("unshared", "bool").description("whether a user namespace could be created"))
      .output_parameter(Port("credentials", "string")
                            .description("the Uid, Gid, Cap*, NoNewPrivs and Seccomp lines "
                                         "of /proc/self/status"))
      .output_parameter(Port("command", "string").description("its process's command line (/proc/self/cmdline)"))
      .output_parameter(Port("cuda_visible_devices", "string")
                            .description("its CUDA_VISIBLE_DEVICES: the GPUs it sees (unset: '(unset)')"));
}

void Probe::run(Context& ctx) {
  std::string written = those_that(ctx.param_string("write_dirs"), can_write_in);
  if (const auto input = ctx.optional_input_path("data"))
    if (can_write_in(input->string())) written += (written.empty() ? "" : ",") + std::string("input");
  ctx.set_output("written", written);
  ctx.set_output("read", those_that(ctx.param_string("read_files"), can_read));
  const auto port = ctx.param_int("connect_port");
  ctx.set_output("connected", port > 0 && can_connect(static_cast<int>(port)));
  ctx.set_output("unshared", ctx.param_bool("unshare") && can_unshare_user_namespace());
  ctx.set_output("credentials", credentials());
  ctx.set_output("command", command_line());
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  ctx.set_output("cuda_visible_devices", visible != nullptr ? std::string(visible) : std::string("(unset)"));
  allocate(ctx.param_int("allocate_mib"));
}

}  // namespace kiln::util

#include "private_file.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace kiln::registry {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const char* what, const fs::path& path) {
  throw std::runtime_error(std::string(what) + " " + path.string() + ": " + std::strerror(errno));
}

std::string random_suffix() {
  unsigned char raw[8];
  if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("no random bytes");
  std::string hex;
  for (const unsigned char c : raw) {
    hex += "0123456789abcdef"[c >> 4];
    hex += "0123456789abcdef"[c & 15];
  }
  return hex;
}

// Closes a descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

void write_private_file(const fs::path& path, const std::string& content) {
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::exists(parent)) {
    if (parent.has_parent_path()) fs::create_directories(parent.parent_path());
    if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) fail("cannot create", parent);
  }
  const fs::path temp = parent / ("." + path.filename().string() + ".tmp-" + random_suffix());
  {
    // O_EXCL|O_NOFOLLOW: never reuse (and so never inherit the mode of) a file already there.
    Fd out{::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
    if (out.fd < 0) fail("cannot create", temp);
    size_t written = 0;
    while (written < content.size()) {
      const ssize_t n = ::write(out.fd, content.data() + written, content.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::unlink(temp.c_str());
        fail("cannot write", temp);
      }
      written += static_cast<size_t>(n);
    }
    if (::fsync(out.fd) != 0) {
      ::unlink(temp.c_str());
      fail("cannot fsync", temp);
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    fail("cannot rename into", path);
  }
  const int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace kiln::registry

#include <kiln/host/files.hpp>

#include <Poco/DigestStream.h>
#include <Poco/SHA2Engine.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace kiln::host {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const std::string& what, const fs::path& path) {
  throw std::runtime_error(what + " " + path.string() + ": " + std::strerror(errno));
}

// Closes a descriptor on scope exit.
struct Fd {
  explicit Fd(int fd) : fd(fd) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int fd;
};

void fsync_directory(const fs::path& dir) {
  const Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.fd >= 0) ::fsync(d.fd);
}

}  // namespace

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read", path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void write_file_atomic(const fs::path& path, const std::string& content, mode_t mode) {
  static std::atomic<unsigned> counter{0};
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  fs::path temp;
  int fd = -1;
  for (int tries = 0; fd < 0; ++tries) {  // O_EXCL: a file already there (a leftover, a link) is never reused
    temp = path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++) + "." +
           std::to_string(std::random_device{}());
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && (errno != EEXIST || tries == 16)) fail("cannot create", temp);
  }
  {
    const Fd out(fd);
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
  fsync_directory(path.has_parent_path() ? path.parent_path() : fs::path("."));
}

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read", path);
  Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
  std::string buffer(1 << 16, '\0');
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    engine.update(buffer.data(), static_cast<unsigned>(in.gcount()));
  }
  return Poco::DigestEngine::digestToHex(engine.digest());
}

void fsync_path(const fs::path& path) {
  const Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (f.fd < 0 || ::fsync(f.fd) != 0) fail("cannot fsync", path);
}

std::string sha256_hex(const std::string& data) {
  Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
  engine.update(data);
  return Poco::DigestEngine::digestToHex(engine.digest());
}

}  // namespace kiln::host

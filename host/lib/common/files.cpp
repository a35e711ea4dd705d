#include <kiln/host/files.hpp>
#include <kiln/host/unique_fd.hpp>

#include <fcntl.h>
#include <openssl/evp.h>
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


void fsync_directory(const fs::path& dir) {
  const UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() >= 0) ::fsync(d.get());
}

}  // namespace

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_file_error("cannot read", path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void write_file_atomic(const fs::path& path, const std::string& content, mode_t mode, FileSync sync) {
  static std::atomic<unsigned> counter{0};
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  fs::path temp;
  int fd = -1;
  for (int tries = 0; fd < 0; ++tries) {  // O_EXCL: a file already there (a leftover, a link) is never reused
    temp = path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++) + "." +
           std::to_string(std::random_device{}());
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && (errno != EEXIST || tries == 16)) throw_file_error("cannot create", temp);
  }
  {
    const UniqueFd out(fd);
    size_t written = 0;
    while (written < content.size()) {
      const ssize_t n = ::write(out.get(), content.data() + written, content.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::unlink(temp.c_str());
        throw_file_error("cannot write", temp);
      }
      written += static_cast<size_t>(n);
    }
    if (sync == FileSync::durable && ::fsync(out.get()) != 0) {
      ::unlink(temp.c_str());
      throw_file_error("cannot fsync", temp);
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    throw_file_error("cannot rename into", path);
  }
  if (sync == FileSync::durable) fsync_directory(path.has_parent_path() ? path.parent_path() : fs::path("."));
}

namespace {

// SHA-256 through OpenSSL's EVP interface, which uses the CPU's SHA
// instructions where there are some (Poco's portable code is ~6x slower:
// hashing the plugin libraries dominated a short run's start-up).
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("sha256: cannot initialise OpenSSL's digest");
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const char* data, size_t size) {
    if (EVP_DigestUpdate(ctx_, data, size) != 1) throw std::runtime_error("sha256: digest update failed");
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_DigestFinal_ex(ctx_, digest, &size) != 1) throw std::runtime_error("sha256: digest final failed");
    static const char* const digits = "0123456789abcdef";
    std::string out(size * 2, '0');
    for (unsigned int i = 0; i < size; ++i) {
      out[2 * i] = digits[digest[i] >> 4];
      out[2 * i + 1] = digits[digest[i] & 0xf];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

std::string sha256_file(const fs::path& path) {
  const UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.get() < 0) throw_file_error("cannot read", path);
  Sha256 engine;
  std::string buffer(1 << 16, '\0');
  for (;;) {
    const ssize_t n = ::read(f.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_file_error("cannot read", path);
    if (n == 0) break;
    engine.update(buffer.data(), static_cast<size_t>(n));
  }
  return engine.hex();
}

void throw_file_error(const std::string& what, const fs::path& path) {
  throw std::runtime_error(what + " " + path.string() + ": " + std::strerror(errno));
}

void fsync_path(const fs::path& path) {
  const UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (f.get() < 0 || ::fsync(f.get()) != 0) throw_file_error("cannot fsync", path);
}

std::string sha256_hex(const std::string& data) {
  Sha256 engine;
  engine.update(data.data(), data.size());
  return engine.hex();
}

}  // namespace kiln::host

#include "confined_file.hpp"

#include "path_inside.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace kiln::ui {

namespace fs = std::filesystem;

fs::path relative_path(const std::string& text, const std::string& what) {
  if (text.empty() || text.size() > 4096) throw ApiError(400, what + " must be a relative path of 1 to 4096 bytes");
  const fs::path path(text);
  if (path.is_absolute()) throw ApiError(400, what + " '" + text.substr(0, 64) + "' must be relative");
  for (const auto& part : path)
    if (part == ".." || part == ".")
      throw ApiError(403, what + " '" + text.substr(0, 64) + "' leaves its directory ('.' or '..')");
  return path;
}

ConfinedFile::ConfinedFile(const fs::path& file, const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) throw ApiError(404, "no file " + file.string());
  if (!path_inside(file, dir)) throw ApiError(403, file.string() + " leads out of " + dir.string());
  fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd_ < 0) throw ApiError(403, "cannot open " + file.string() + " (a link, or unreadable)");
  struct stat info {};
  if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw ApiError(403, file.string() + " is not a regular file");
  }
  size_ = info.st_size;
}

ConfinedFile::~ConfinedFile() {
  ::close(fd_);
}

std::string ConfinedFile::read(int64_t offset, int64_t count) const {
  std::string text(static_cast<size_t>(std::max<int64_t>(0, std::min(count, size_ - offset))), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n =
        ::pread(fd_, text.data() + got, text.size() - got, static_cast<off_t>(offset) + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return text;
}

}  // namespace kiln::ui

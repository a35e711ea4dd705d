// Files a client names, read only when they lie inside a given directory:
// the path relative, no "." or "..", the file and every directory on the
// way resolved (symlinks followed) inside it, the final name not a symlink,
// a regular file. Shared by the log, artifact and preview routes.
#pragma once

#include "api_error.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

namespace kiln::ui {

// `text` as a relative path under a directory: ApiError 400 when it is
// empty, absolute, longer than 4096 bytes or holds a "." or ".." part.
std::filesystem::path relative_path(const std::string& text, const std::string& what);

// A regular file opened for reading (O_NOFOLLOW), closed with the object.
class ConfinedFile {
 public:
  // Opens `file`, which must lie inside `dir`: ApiError 403 when it (or a
  // directory on its way) leads out or is not a regular file, 404 when it
  // does not exist.
  ConfinedFile(const std::filesystem::path& file, const std::filesystem::path& dir);
  ~ConfinedFile();
  ConfinedFile(const ConfinedFile&) = delete;
  ConfinedFile& operator=(const ConfinedFile&) = delete;

  int64_t size() const { return size_; }
  // Up to `count` bytes from `offset` (fewer at the end of the file).
  std::string read(int64_t offset, int64_t count) const;

 private:
  int fd_ = -1;
  int64_t size_ = 0;
};

}  // namespace kiln::ui

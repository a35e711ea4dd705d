// Small file helpers shared by the host: whole-file reads, crash-safe
// writes (temporary name, fsync, rename) and content digests.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace kiln::host {

// Reads a whole file. Throws std::runtime_error naming the path.
std::string read_file(const std::filesystem::path& path);

// How far a write must survive: `durable` fsyncs the file and its directory
// (it survives power loss); `atomic` only renames (it survives the process
// being killed, and a reader still never sees a part), for snapshots that
// are rewritten soon anyway.
enum class FileSync { durable, atomic };

// Writes `content` to `path` atomically: a reader sees the old file or the
// whole new one, never a part. Creates parent directories. The file has
// `mode` (less the umask) from its first byte: the temporary file is created
// with O_CREAT|O_EXCL|O_NOFOLLOW and that mode, under a random name, and no
// chmod follows; so 0600 leaves no moment when another user could open it.
void write_file_atomic(const std::filesystem::path& path, const std::string& content, mode_t mode = 0644,
                       FileSync sync = FileSync::durable);

// Lower-case hex sha256 of a file's content.
std::string sha256_file(const std::filesystem::path& path);
std::string sha256_hex(const std::string& data);

// fsync on a file or directory (opened read-only). Throws naming the path.
void fsync_path(const std::filesystem::path& path);

// Throws std::runtime_error("WHAT PATH: <strerror(errno)>"): a failed system
// call on a file, reported with its path and errno's text.
[[noreturn]] void throw_file_error(const std::string& what, const std::filesystem::path& path);

// Removes `path` and everything under it when it goes out of scope (nothing
// when empty): a scratch directory's cleanup on every exit. Errors are
// ignored: a leftover scratch directory costs disk, not correctness.
struct RemoveOnExit {
  std::filesystem::path path;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

}  // namespace kiln::host

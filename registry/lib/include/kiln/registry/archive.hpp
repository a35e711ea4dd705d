// Package archives: gzip-compressed POSIX tar (libarchive), written
// reproducibly and read back with every entry checked before it touches disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace kiln::registry {

struct ArchiveEntry {
  ArchiveEntry(std::string path_, std::string content_, std::string symlink = {}, std::string hardlink = {},
               bool is_device = false, bool is_directory = false)
      : path(std::move(path_)),
        content(std::move(content_)),
        symlink_target(std::move(symlink)),
        hardlink_target(std::move(hardlink)),
        device(is_device),
        directory(is_directory) {}
  std::string path;             // as stored; the writer does not check it (tests build hostile archives)
  std::string content;          // for regular files
  std::string symlink_target;   // non-empty: a symbolic link
  std::string hardlink_target;  // non-empty: a hard link
  bool device = false;          // a character device (for tests of hostile archives)
  bool directory = false;       // a directory entry
};

// Writes `entries` in order as a .tar.gz at `archive` (atomically).
void write_archive(const std::filesystem::path& archive, const std::vector<ArchiveEntry>& entries);

struct ExtractLimits {
  uint64_t max_total_bytes = 512ull << 20;  // uncompressed
  // Every entry counts (files, directories, and the refused kinds before
  // they are refused): a tar of empty directories is cheap to send and
  // costly to unpack.
  uint64_t max_entries = 256;
};

// A refused archive; the message names the archive and the offending entry.
class ArchiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Extracts `archive` into `target`, which must not exist yet. Only regular
// files and directories with relative paths free of ".." are accepted; links,
// devices, absolute paths and archives over `limits` are refused. On any
// failure `target` is removed and ArchiveError thrown. Returns the relative
// paths of the regular files extracted.
std::vector<std::string> extract_archive(const std::filesystem::path& archive, const std::filesystem::path& target,
                                         const ExtractLimits& limits = {});

}  // namespace kiln::registry

// The content-addressed artifact store: <workspace>/artifacts/sha256/<ab>/<digest>/.
// Every artifact is a directory named by the digest of its content (see
// directory_digest). A commit hashes a finished output directory, fsyncs it,
// and renames it into place, so a reader sees the whole artifact or none.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// The digest of a directory tree: sha256 over one line per entry, sorted by
// relative path (bytes, '/' separated):
//   <relative path> '\0' <kind: file|dir|link> '\0' <size> '\0' <sha256 of content or link target> '\n'
// Directories have size 0 and an empty hash. Modes and times are not part of it.
std::string directory_digest(const std::filesystem::path& dir);
// The total size in bytes of the regular files under `dir`.
uint64_t directory_size(const std::filesystem::path& dir);

class ArtifactStore {
 public:
  explicit ArtifactStore(std::filesystem::path workspace);

  // Where the artifact with this digest lives (whether or not it exists).
  std::filesystem::path path_of(const std::string& digest) const;
  bool contains(const std::string& digest) const;

  struct Committed {
    std::string digest;
    uint64_t size = 0;
    bool was_present = false;  // an identical artifact was already stored
  };
  // Moves the finished directory `staged` into the store (or discards it when
  // the digest is already there) and makes the stored copy read-only. After
  // it returns the artifact is durable: files, directories and the rename are fsynced.
  Committed commit(const std::filesystem::path& staged);

  // Re-hashes a stored artifact. A missing or mismatching one is moved aside
  // (artifacts/corrupt/) so the next commit of that digest repairs it.
  bool verify(const std::string& digest);
  // Whether the stored copy matches its name, without moving anything.
  bool check(const std::string& digest) const;

  // Every stored digest.
  std::vector<std::string> list() const;
  // Deletes a stored artifact (for gc).
  void remove(const std::string& digest);
  // Copies an artifact out to `destination` (a new directory), writable.
  void export_to(const std::string& digest, const std::filesystem::path& destination) const;

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;  // <workspace>/artifacts
};

// Calls fsync on every file and directory under `dir`, and on `dir`.
void fsync_tree(const std::filesystem::path& dir);

}  // namespace kiln::host

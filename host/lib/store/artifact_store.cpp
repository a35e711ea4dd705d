// The artifact store. Content addressing makes a commit idempotent: two runs
// producing the same bytes share one stored directory, and a rename either
// lands the whole directory or leaves the store as it was.
#include <sys/stat.h>
#include <unistd.h>
#include <kiln/host/artifact_store.hpp>
#include <kiln/host/files.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

struct Entry {
  std::string relative;
  fs::path path;
  fs::file_type type;
};

std::vector<Entry> sorted_entries(const fs::path& dir) {
  std::vector<Entry> entries;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    const auto type = it->symlink_status().type();
    entries.push_back({it->path().lexically_relative(dir).generic_string(), it->path(), type});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.relative < b.relative; });
  return entries;
}

// A name no other process or thread uses at the same time.
std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  static const unsigned seed = std::random_device{}();
  return std::to_string(::getpid()) + "." + std::to_string(seed) + "." + std::to_string(counter++);
}

// Read-only for everyone; directories keep the search bit. Not a security
// boundary (the owner can chmod back): it stops accidental writes by a step
// that was handed the store path as an input.
void make_read_only(const fs::path& dir) {
  for (const auto& e : sorted_entries(dir))
    if (e.type == fs::file_type::regular)
      fs::permissions(e.path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  for (const auto& e : sorted_entries(dir))
    if (e.type == fs::file_type::directory)
      fs::permissions(e.path, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                  fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
}

void make_writable(const fs::path& dir) {
  std::error_code ec;
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->symlink_status().type() != fs::file_type::symlink)
      fs::permissions(it->path(), fs::perms::owner_write | fs::perms::owner_read | fs::perms::owner_exec,
                      fs::perm_options::add, ec);
}

void remove_tree(const fs::path& dir) {
  make_writable(dir);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace

std::string directory_digest(const fs::path& dir) {
  std::string listing;
  for (const auto& e : sorted_entries(dir)) {
    std::string kind, size = "0", hash;
    if (e.type == fs::file_type::regular) {
      kind = "file";
      size = std::to_string(fs::file_size(e.path));
      hash = sha256_file(e.path);
    } else if (e.type == fs::file_type::directory) {
      kind = "dir";
    } else if (e.type == fs::file_type::symlink) {
      kind = "link";
      hash = sha256_hex(fs::read_symlink(e.path).string());
    } else {
      throw std::runtime_error("cannot store " + e.path.string() + ": not a file, directory or link");
    }
    listing += e.relative + '\0' + kind + '\0' + size + '\0' + hash + '\n';
  }
  return sha256_hex(listing);
}

uint64_t directory_size(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& e : sorted_entries(dir))
    if (e.type == fs::file_type::regular) total += fs::file_size(e.path);
  return total;
}

void fsync_tree(const fs::path& dir) {
  for (const auto& e : sorted_entries(dir))
    if (e.type == fs::file_type::regular || e.type == fs::file_type::directory) fsync_path(e.path);
  fsync_path(dir);
}

ArtifactStore::ArtifactStore(fs::path workspace) : root_(std::move(workspace) / "artifacts") {}

fs::path ArtifactStore::path_of(const std::string& digest) const {
  return root_ / "sha256" / digest.substr(0, 2) / digest;
}

bool ArtifactStore::contains(const std::string& digest) const {
  std::error_code ec;
  return fs::is_directory(path_of(digest), ec);
}

ArtifactStore::Committed ArtifactStore::commit(const fs::path& staged) {
  Committed result;
  result.digest = directory_digest(staged);
  result.size = directory_size(staged);
  const fs::path target = path_of(result.digest);
  if (contains(result.digest)) {  // an identical artifact is stored: keep that one
    result.was_present = true;
    remove_tree(staged);
    return result;
  }
  fs::create_directories(target.parent_path());
  fs::path copy;
  fsync_tree(staged);
  if (::rename(staged.c_str(), target.c_str()) != 0) {
    if (errno == ENOTEMPTY || errno == EEXIST) {  // another process stored the same bytes first
      result.was_present = true;
      remove_tree(staged);
      return result;
    }
    if (errno != EXDEV)
      throw std::runtime_error("cannot move " + staged.string() + " into the artifact store: " + std::strerror(errno));
    // Another file system: copy into the store's temp area first, then rename there.
    copy = root_ / "tmp" / unique_suffix();
    fs::create_directories(copy.parent_path());
    fs::copy(staged, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fsync_tree(copy);
    if (::rename(copy.c_str(), target.c_str()) != 0) {
      remove_tree(copy);
      if (errno != ENOTEMPTY && errno != EEXIST) throw std::runtime_error("cannot store " + target.string());
      result.was_present = true;
    }
    remove_tree(staged);
  }
  fsync_path(target.parent_path());
  make_read_only(target);
  return result;
}

bool ArtifactStore::check(const std::string& digest) const {
  if (!contains(digest)) return false;
  try {
    return directory_digest(path_of(digest)) == digest;
  } catch (const std::exception&) {
    return false;
  }
}

bool ArtifactStore::verify(const std::string& digest) {
  if (check(digest)) return true;
  const fs::path bad = path_of(digest);
  if (fs::exists(bad)) {
    const fs::path aside = root_ / "corrupt" / (digest + "." + unique_suffix());
    fs::create_directories(aside.parent_path());
    std::error_code ec;
    make_writable(bad);
    fs::rename(bad, aside, ec);
    if (ec) remove_tree(bad);
  }
  return false;
}

std::vector<std::string> ArtifactStore::list() const {
  std::vector<std::string> digests;
  std::error_code ec;
  for (const auto& prefix : fs::directory_iterator(root_ / "sha256", ec))
    for (const auto& entry : fs::directory_iterator(prefix.path(), ec)) digests.push_back(entry.path().filename());
  std::sort(digests.begin(), digests.end());
  return digests;
}

void ArtifactStore::remove(const std::string& digest) {
  remove_tree(path_of(digest));
}

void ArtifactStore::export_to(const std::string& digest, const fs::path& destination) const {
  if (!contains(digest)) throw std::runtime_error("artifact " + digest + " is not in the store");
  fs::copy(path_of(digest), destination, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  make_writable(destination);
}

}  // namespace kiln::host

#include <kiln/registry/archive.hpp>

#include <kiln/host/files.hpp>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <memory>

namespace kiln::registry {
namespace fs = std::filesystem;
namespace {

struct WriteFree {
  void operator()(struct archive* a) const noexcept { archive_write_free(a); }
};
struct ReadFree {
  void operator()(struct archive* a) const noexcept { archive_read_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};

// libarchive's message for its last error, which it leaves null for some
// failures (a truncated gzip stream while opening).
std::string error_text(struct archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "unknown libarchive error " + std::to_string(archive_errno(a));
}

// Whether `path` is a plain relative path: no leading '/', no "..", no empty name.
std::string unsafe_reason(const std::string& path) {
  if (path.empty()) return "has an empty name";
  if (path.front() == '/') return "has an absolute path";
  for (const auto& part : fs::path(path))
    if (part == "..") return "climbs out of the package with '..'";
  return {};
}

// Removes the target directory unless released.
class Cleanup {
 public:
  explicit Cleanup(fs::path dir) : dir_(std::move(dir)) {}
  ~Cleanup() {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  void release() { dir_.clear(); }

 private:
  fs::path dir_;
};

}  // namespace

void write_archive(const fs::path& archive, const std::vector<ArchiveEntry>& entries) {
  std::unique_ptr<struct archive, WriteFree> a(archive_write_new());
  archive_write_add_filter_gzip(a.get());
  archive_write_set_format_pax_restricted(a.get());
  size_t used = 0;
  std::string bytes;
  // Into memory first, so the file lands atomically.
  archive_write_set_bytes_in_last_block(a.get(), 1);
  size_t capacity = 1 << 20;
  for (const auto& e : entries) capacity += e.content.size() + 4096;
  bytes.resize(capacity);
  if (archive_write_open_memory(a.get(), bytes.data(), bytes.size(), &used) != ARCHIVE_OK)
    throw ArchiveError(archive.string() + ": " + error_text(a.get()));
  for (const auto& e : entries) {
    std::unique_ptr<archive_entry, EntryFree> entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), e.path.c_str());
    archive_entry_set_mtime(entry.get(), 0, 0);
    if (e.directory) {
      archive_entry_set_filetype(entry.get(), AE_IFDIR);
      archive_entry_set_perm(entry.get(), 0755);
      archive_entry_set_size(entry.get(), 0);
    } else if (e.device) {
      archive_entry_set_filetype(entry.get(), AE_IFCHR);
      archive_entry_set_perm(entry.get(), 0666);
      archive_entry_set_rdevmajor(entry.get(), 1);
      archive_entry_set_rdevminor(entry.get(), 3);
      archive_entry_set_size(entry.get(), 0);
    } else if (!e.hardlink_target.empty()) {
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_hardlink(entry.get(), e.hardlink_target.c_str());
      archive_entry_set_perm(entry.get(), 0644);
      archive_entry_set_size(entry.get(), 0);
    } else if (!e.symlink_target.empty()) {
      archive_entry_set_filetype(entry.get(), AE_IFLNK);
      archive_entry_set_symlink(entry.get(), e.symlink_target.c_str());
      archive_entry_set_perm(entry.get(), 0777);
      archive_entry_set_size(entry.get(), 0);
    } else {
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_perm(entry.get(), 0644);
      archive_entry_set_size(entry.get(), static_cast<la_int64_t>(e.content.size()));
    }
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK ||
        (!e.content.empty() && archive_write_data(a.get(), e.content.data(), e.content.size()) < 0))
      throw ArchiveError(archive.string() + ": cannot add " + e.path + ": " + error_text(a.get()));
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK)
    throw ArchiveError(archive.string() + ": " + error_text(a.get()));
  bytes.resize(used);
  host::write_file_atomic(archive, bytes);
}

std::vector<std::string> extract_archive(const fs::path& archive, const fs::path& target, const ExtractLimits& limits) {
  const std::string where = archive.filename().string();
  std::unique_ptr<struct archive, ReadFree> a(archive_read_new());
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), archive.c_str(), 1 << 16) != ARCHIVE_OK)
    throw ArchiveError(where + ": not a readable package archive: " + error_text(a.get()));
  if (fs::exists(target)) throw ArchiveError(target.string() + " already exists");
  fs::create_directories(target);
  Cleanup cleanup(target);
  std::vector<std::string> files;
  uint64_t total = 0, entries = 0;
  archive_entry* entry = nullptr;
  for (;;) {
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) throw ArchiveError(where + ": corrupt archive: " + error_text(a.get()));
    if (++entries > limits.max_entries)
      throw ArchiveError(where + ": more than " + std::to_string(limits.max_entries) +
                         " entries (files and directories count alike)");
    const char* raw_name = archive_entry_pathname(entry);
    const std::string name = raw_name ? raw_name : "";
    const std::string bad = unsafe_reason(name);
    if (!bad.empty()) throw ArchiveError(where + ": entry '" + name + "' " + bad + "; refused");
    const auto type = archive_entry_filetype(entry);
    if (archive_entry_hardlink(entry) != nullptr || type == AE_IFLNK)
      throw ArchiveError(where + ": entry '" + name + "' is a link; packages may hold only files and directories");
    if (type != AE_IFREG && type != AE_IFDIR)
      throw ArchiveError(where + ": entry '" + name + "' is a device or special file; refused");
    const fs::path out = target / fs::path(name).lexically_normal();
    if (type == AE_IFDIR) {
      fs::create_directories(out);
      continue;
    }
    fs::create_directories(out.parent_path());
    // O_EXCL|O_NOFOLLOW: never write through something already there.
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) throw ArchiveError(where + ": entry '" + name + "' is duplicated or cannot be created");
    uint64_t size = 0;
    const void* block = nullptr;
    size_t length = 0;
    la_int64_t offset = 0;
    int status = ARCHIVE_OK;
    bool write_failed = false;
    bool sparse = false;
    while ((status = archive_read_data_block(a.get(), &block, &length, &offset)) == ARCHIVE_OK) {
      // A sparse entry's blocks skip ahead: a few bytes would make a file of any apparent size
      // (which the digest check then reads whole). Only contiguous data is accepted.
      if (offset != static_cast<la_int64_t>(size)) {
        sparse = true;
        break;
      }
      size += length;
      if (size > limits.max_total_bytes || total + size > limits.max_total_bytes) break;
      if (::pwrite(fd, block, length, offset) != static_cast<ssize_t>(length)) {
        write_failed = true;
        break;
      }
    }
    ::close(fd);
    if (sparse) throw ArchiveError(where + ": entry '" + name + "' is a sparse file; refused");
    if (size > limits.max_total_bytes || total + size > limits.max_total_bytes)
      throw ArchiveError(where + ": unpacks to more than " + std::to_string(limits.max_total_bytes) + " bytes");
    if (write_failed) throw ArchiveError(where + ": cannot write " + out.string());
    if (status != ARCHIVE_EOF && status != ARCHIVE_OK)
      throw ArchiveError(where + ": corrupt entry '" + name + "': " + error_text(a.get()));
    total += size;
    files.push_back(fs::path(name).lexically_normal().generic_string());
  }
  cleanup.release();
  return files;
}

}  // namespace kiln::registry

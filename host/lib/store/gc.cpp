// What `kiln gc` removes: the store minus everything the lineage table names.
#include <kiln/host/gc.hpp>

#include <set>
#include <system_error>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

// Bytes of regular files at `path` (a file or a tree); 0 for what cannot be read.
uint64_t size_of(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  if (ec) return 0;
  if (fs::is_regular_file(status)) {
    const auto size = fs::file_size(path, ec);
    return ec ? 0 : size;
  }
  if (!fs::is_directory(status)) return 0;
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code size_ec;
    if (it->symlink_status(size_ec).type() != fs::file_type::regular) continue;
    const auto size = it->file_size(size_ec);
    if (!size_ec) total += size;
  }
  return total;
}

}  // namespace

uint64_t GcReport::bytes() const {
  uint64_t total = 0;
  for (const auto& item : items) total += item.size;
  return total;
}

GcReport collect_garbage(Store& store, const GcOptions& options) {
  GcReport report;
  report.removed = options.remove;
  std::set<std::string> referenced;
  for (const auto& r : store.db.query("SELECT DISTINCT digest FROM lineage")) referenced.insert(r["digest"]);
  const auto cutoff = fs::file_time_type::clock::now() - options.min_age;
  for (const auto& digest : store.artifacts.list()) {
    if (referenced.count(digest)) continue;
    const fs::path path = store.artifacts.path_of(digest);
    std::error_code ec;
    if (!options.include_recent && fs::last_write_time(path, ec) > cutoff) {
      ++report.kept_recent;
      continue;
    }
    report.items.push_back({GcItem::Kind::artifact, digest, size_of(path)});
    if (options.remove) {
      store.artifacts.remove(digest);
      store.db.execute("DELETE FROM artifacts WHERE digest=?", {digest});
    }
  }
  for (const char* leftover : {"tmp", "corrupt"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(store.artifacts.root() / leftover, ec)) {
      report.items.push_back({GcItem::Kind::leftover, e.path().string(), size_of(e.path())});
      std::error_code remove_ec;
      if (options.remove) fs::remove_all(e.path(), remove_ec);
    }
  }
  return report;
}

}  // namespace kiln::host

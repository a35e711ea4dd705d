#include <sys/stat.h>
#include <kiln/host/files.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/scanner.hpp>
#include <kiln/host/subprocess.hpp>

#include <algorithm>

namespace kiln::host {
namespace fs = std::filesystem;
namespace {

std::string abi_text() {
  return std::to_string(KILN_ABI_VERSION_MAJOR) + "." + std::to_string(KILN_ABI_VERSION_MINOR);
}

// The last non-empty line a child printed, to quote in a reason.
std::string last_line(const std::string& output) {
  auto end = output.find_last_not_of("\n\r ");
  if (end == std::string::npos) return {};
  const auto start = output.rfind('\n', end);
  return output.substr(start == std::string::npos ? 0 : start + 1,
                       end - (start == std::string::npos ? 0 : start + 1) + 1);
}

// Fills scan.components from the child's (or cache's) description.
void read_description(const Json& description, LibraryScan& scan) {
  scan.abi_major = description.at("abi_major").get<uint32_t>();
  scan.abi_minor = description.at("abi_minor").get<uint32_t>();
  for (const auto& manifest : description.at("components")) scan.components.push_back(parse_manifest(manifest));
}

std::string child_failure_reason(const CapturedRun& run, std::chrono::milliseconds timeout) {
  const std::string said = last_line(run.output);
  const std::string detail = said.empty() ? "" : " (last output: " + said + ")";
  if (run.status.timed_out)
    return "hung while being scanned: no answer within " + std::to_string(timeout.count()) + " ms, killed" + detail;
  if (run.status.signal != 0) return "crashed while being scanned: " + run.status.describe() + detail;
  return "scanner " + run.status.describe() + " without describing the library" + detail;
}

// What identifies one version of a file without reading it: any write
// changes its ctime (which no user call can set back), a replacement changes
// its inode. Git trusts the same fields in its index.
Json file_identity(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return nullptr;
  return Json{{"dev", static_cast<uint64_t>(st.st_dev)}, {"ino", static_cast<uint64_t>(st.st_ino)},
              {"size", static_cast<int64_t>(st.st_size)},
              {"mtime_ns", static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec},
              {"ctime_ns", static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec}};
}

// Whether the file last changed longer than `settle` ago.
bool settled(const Json& identity, std::chrono::milliseconds settle) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t changed = std::max(identity["mtime_ns"].get<int64_t>(), identity["ctime_ns"].get<int64_t>());
  return now - changed >= std::chrono::duration_cast<std::chrono::nanoseconds>(settle).count();
}

}  // namespace

std::string describe_library_in_process(const fs::path& library) {
  Json out;
  try {
    const auto loaded = PluginLibrary::load(library);
    Json components = Json::array();
    for (const auto& c : loaded->components()) components.push_back(c.manifest.to_json());
    out = Json{{"ok", true},
               {"abi_major", loaded->abi_major()},
               {"abi_minor", loaded->abi_minor()},
               {"components", components}};
  } catch (const std::exception& e) {
    out = Json{{"ok", false}, {"reason", e.what()}};
  } catch (...) {
    out = Json{{"ok", false}, {"reason", "threw an exception of unknown type while loading"}};
  }
  return out.dump();
}

fs::path LibraryScanner::cache_file(const std::string& digest) const {
  return options_.cache_dir / "manifests" / (digest + ".json");
}

// Hashing every library on the search path (tens of MB) was most of a short
// run's start-up; a library's digest is remembered by its identity instead
// and computed again when the file changed.
std::string LibraryScanner::library_digest(const fs::path& library) const {
  if (options_.cache_dir.empty()) return sha256_file(library);
  const Json identity = file_identity(library);
  const fs::path entry = options_.cache_dir / "digests" / (sha256_hex(fs::absolute(library).string()) + ".json");
  if (!identity.is_null()) {
    try {
      const Json cached = Json::parse(read_file(entry));
      if (cached.at("identity") == identity) return cached.at("digest").get<std::string>();
    } catch (const std::exception&) {  // missing, unreadable or stale: hash the file
    }
  }
  const std::string digest = sha256_file(library);
  if (!identity.is_null() && identity == file_identity(library) && settled(identity, options_.digest_settle)) {
    try {
      write_file_atomic(entry, Json{{"library", library.string()}, {"identity", identity}, {"digest", digest}}.dump());
    } catch (const std::exception&) {  // a read-only cache only costs speed
    }
  }
  return digest;
}

LibraryScan LibraryScanner::scan(const fs::path& library) const {
  LibraryScan scan;
  scan.path = library;
  try {
    scan.digest = library_digest(library);
  } catch (const std::exception& e) {
    scan.reason = e.what();
    return scan;
  }
  const bool use_cache = !options_.cache_dir.empty();
  if (use_cache) {
    try {
      const Json cached = Json::parse(read_file(cache_file(scan.digest)));
      if (cached.at("host_abi").get<std::string>() == abi_text()) {
        read_description(cached, scan);
        scan.ok = scan.from_cache = true;
        return scan;
      }
    } catch (const std::exception&) {  // missing or stale entry: scan afresh
      scan.components.clear();
    }
  }
  LibraryScan fresh = scan_in_child(library);
  fresh.digest = scan.digest;
  if (fresh.ok && use_cache) {
    Json entry{{"host_abi", abi_text()},
               {"abi_major", fresh.abi_major},
               {"abi_minor", fresh.abi_minor},
               {"library", library.string()},
               {"components", Json::array()}};
    for (const auto& c : fresh.components) entry["components"].push_back(c.to_json());
    try {
      write_file_atomic(cache_file(scan.digest), entry.dump(2));
    } catch (const std::exception&) {  // a read-only cache only costs speed
    }
  }
  return fresh;
}

LibraryScan LibraryScanner::scan_in_child(const fs::path& library) const {
  LibraryScan scan;
  scan.path = library;
  CapturedRun run;
  try {
    run = run_with_result_channel({options_.scanner_executable.string(), "__scan-library", library.string()},
                                  options_.timeout);
  } catch (const std::exception& e) {
    scan.reason = std::string("cannot start the scanner: ") + e.what();
    return scan;
  }
  if (!run.status.success() || run.result.empty()) {
    scan.reason = child_failure_reason(run, options_.timeout);
    return scan;
  }
  try {
    const Json description = Json::parse(run.result);
    if (!description.at("ok").get<bool>()) {
      scan.reason = description.at("reason").get<std::string>();
      return scan;
    }
    read_description(description, scan);
    scan.ok = true;
  } catch (const std::exception& e) {
    scan.components.clear();
    scan.reason = std::string("invalid scan result: ") + e.what();
  }
  return scan;
}

}  // namespace kiln::host

// Scanning plugin libraries safely: each unknown library is loaded in a child
// process (`kiln __scan-library`), so one that crashes, hangs or throws while
// loading cannot take the host down. Results are cached by content digest,
// and a library's digest by the file's identity (device, inode, size, times).
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/manifest.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace kiln::host {

struct LibraryScan {
  std::filesystem::path path;
  std::string digest;  // sha256 of the library file
  // A component file's: the file and those it names, one by one (see
  // ComponentFile::file_digests); empty for a library.
  std::map<std::string, std::string> file_digests;
  bool ok = false;
  std::string reason;  // why the library is unusable, when !ok
  uint32_t abi_major = 0, abi_minor = 0;
  std::vector<ComponentManifest> components;
  bool from_cache = false;
};

// Loads `library` into this process and describes it as the JSON text the
// scan child reports. Used by `kiln __scan-library`; never throws.
std::string describe_library_in_process(const std::filesystem::path& library);

class LibraryScanner {
 public:
  struct Options {
    std::filesystem::path scanner_executable;  // a `kiln` binary
    std::filesystem::path cache_dir;           // empty: no manifest cache
    std::chrono::milliseconds timeout{10000};
    // A library changed more recently than this is hashed each time, its
    // digest not remembered: within the file system's timestamp granularity a
    // second write could leave the times as they were ("racy git").
    std::chrono::milliseconds digest_settle{2000};
  };
  explicit LibraryScanner(Options options) : options_(std::move(options)) {}

  // Never throws: problems end up in LibraryScan::reason.
  LibraryScan scan(const std::filesystem::path& library) const;

 private:
  LibraryScan scan_in_child(const std::filesystem::path& library) const;
  std::filesystem::path cache_file(const std::string& digest) const;
  std::string library_digest(const std::filesystem::path& library) const;
  Options options_;
};

}  // namespace kiln::host

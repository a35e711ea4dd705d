// The plugin catalog: every library on the search path, and the components
// they provide. The first library on the path that provides a name wins.
#pragma once

#include <kiln/host/scanner.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace kiln::host {

struct CatalogComponent {
  ComponentManifest manifest;
  std::filesystem::path library;
  std::string status = "ok";   // or "shadowed by <path> (earlier on the search path)"
  std::string library_digest;  // sha256 of the library file: part of every cache key
  // A component file's digests file by file (ComponentFile::file_digests):
  // kept beside the cache key so that a miss names the file that changed.
  std::map<std::string, std::string> file_digests;
};

class PluginCatalog {
 public:
  // Scans every library in `dirs` (see find_plugin_libraries).
  static PluginCatalog discover(const LibraryScanner& scanner, const std::vector<std::filesystem::path>& dirs);
  // The catalog of libraries already scanned, in search-path order (what
  // discover builds; fuzz/ plans against manifests without loading libraries).
  static PluginCatalog from_scans(std::vector<LibraryScan> scans);

  const std::vector<LibraryScan>& libraries() const { return libraries_; }
  const std::vector<CatalogComponent>& components() const { return components_; }
  // The active (not shadowed) component called `name`, or nullptr.
  const CatalogComponent* find(const std::string& name) const;
  // The first library on the search path whose `name` has a version that
  // `range` accepts ("" accepts any: the active one), or nullptr. Path order
  // decides, not the version: a shadowed library is used only for a range
  // that no library before it satisfies.
  const CatalogComponent* find(const std::string& name, const std::string& range) const;
  // Every version of `name` found, for error messages ("1.0.0, 2.1.0").
  std::string versions_of(const std::string& name) const;
  std::vector<std::string> component_names() const;

 private:
  std::vector<LibraryScan> libraries_;
  std::vector<CatalogComponent> components_;
};

// The scanner the `kiln` binary uses: itself as the scan child, the user's
// manifest cache, and $KILN_SCAN_TIMEOUT_MS (default 10 s) as the time limit.
LibraryScanner::Options default_scanner_options();

// Discovers the catalog on the default search path (see plugin_search_path).
PluginCatalog discover_default_catalog();

}  // namespace kiln::host

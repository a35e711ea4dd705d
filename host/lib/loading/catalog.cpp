#include <kiln/host/catalog.hpp>
#include <kiln/host/component_file.hpp>
#include <kiln/host/paths.hpp>

#include <cstdlib>
#include <string>

namespace kiln::host {

PluginCatalog PluginCatalog::discover(const LibraryScanner& scanner, const std::vector<std::filesystem::path>& dirs) {
  // Each directory in turn: its libraries, then its component files (read
  // here, never loaded: see component_file.hpp).
  std::vector<LibraryScan> scans;
  for (const auto& dir : dirs) {
    for (const auto& library : find_plugin_libraries({dir})) scans.push_back(scanner.scan(library));
    for (const auto& file : find_component_files({dir})) scans.push_back(scan_component_file(file));
  }
  return from_scans(std::move(scans));
}

PluginCatalog PluginCatalog::from_scans(std::vector<LibraryScan> scans) {
  PluginCatalog catalog;
  for (auto& scan : scans) {
    for (const auto& manifest : scan.components) {
      CatalogComponent entry{manifest, scan.path, "ok", scan.digest, scan.file_digests};
      if (const auto* first = catalog.find(manifest.name))
        entry.status = "shadowed by " + first->library.string() + " (earlier on the search path)";
      catalog.components_.push_back(std::move(entry));
    }
    catalog.libraries_.push_back(std::move(scan));
  }
  return catalog;
}

const CatalogComponent* PluginCatalog::find(const std::string& name) const {
  for (const auto& c : components_)
    if (c.manifest.name == name && c.status == "ok") return &c;
  return nullptr;
}

const CatalogComponent* PluginCatalog::find(const std::string& name, const std::string& range) const {
  if (range.empty()) return find(name);
  const auto parsed = VersionRange::parse(range);
  if (!parsed) return nullptr;
  // Search-path order, not the highest version: a library later on the path
  // (one a registry installed, say) never wins over an earlier one by
  // claiming a higher version; it is used only for a range that no earlier
  // library's version accepts.
  for (const auto& c : components_)
    if (c.manifest.name == name && parsed->matches(c.manifest.version)) return &c;
  return nullptr;
}

std::string PluginCatalog::versions_of(const std::string& name) const {
  std::string versions;
  for (const auto& c : components_)
    if (c.manifest.name == name) versions += (versions.empty() ? "" : ", ") + c.manifest.version.str();
  return versions;
}

std::vector<std::string> PluginCatalog::component_names() const {
  std::vector<std::string> names;
  for (const auto& c : components_)
    if (c.status == "ok") names.push_back(c.manifest.name);
  return names;
}

LibraryScanner::Options default_scanner_options() {
  LibraryScanner::Options options;
  options.scanner_executable = executable_path();
  options.cache_dir = user_cache_dir();
  if (const char* timeout = std::getenv("KILN_SCAN_TIMEOUT_MS")) {
    try {
      options.timeout = std::chrono::milliseconds(std::stoll(timeout));
    } catch (const std::exception&) {  // keep the default on a malformed value
    }
  }
  return options;
}

PluginCatalog discover_default_catalog() {
  return PluginCatalog::discover(LibraryScanner(default_scanner_options()), plugin_search_path());
}

}  // namespace kiln::host

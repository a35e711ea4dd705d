#include "plugins_api.hpp"

#include <kiln/host/paths.hpp>

namespace kiln::ui {

using host::Json;

PluginsApi::PluginsApi(std::filesystem::path kiln, std::vector<std::filesystem::path> dirs)
    : kiln_(std::move(kiln)), dirs_(std::move(dirs)) {}

const host::PluginCatalog& PluginsApi::catalog() {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (!catalog_) {
    auto options = host::default_scanner_options();
    if (!kiln_.empty()) options.scanner_executable = kiln_;
    catalog_ = std::make_unique<host::PluginCatalog>(
        host::PluginCatalog::discover(host::LibraryScanner(options), dirs_.empty() ? host::plugin_search_path() : dirs_));
  }
  return *catalog_;
}

Json PluginsApi::list(const QueryParams& query) {
  query.allow_only({"name"});
  const auto name = query.text("name", 256);
  const host::PluginCatalog& all = catalog();
  Json components = Json::array(), libraries = Json::array();
  for (const auto& c : all.components()) {
    if (name && c.manifest.name != *name) continue;
    Json entry = c.manifest.to_json();
    entry["library"] = c.library.string();
    entry["status"] = c.status;
    components.push_back(std::move(entry));
  }
  if (name && components.empty()) throw ApiError(404, "no component '" + name->substr(0, 64) + "' in the catalog");
  for (const auto& scan : all.libraries()) {
    Json library{{"path", scan.path.string()}, {"status", scan.ok ? "ok" : "error"}};
    if (scan.ok)
      library["abi"] = std::to_string(scan.abi_major) + "." + std::to_string(scan.abi_minor);
    else
      library["reason"] = scan.reason;
    libraries.push_back(std::move(library));
  }
  return Json{{"components", std::move(components)}, {"libraries", std::move(libraries)}};
}

}  // namespace kiln::ui

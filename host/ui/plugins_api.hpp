// The plugin catalog as kiln ui shows it (GET /api/v1/plugins): every
// component with its version, kind, library, parameters and ports, as
// `kiln plugins list/describe` read them (host::PluginCatalog). The catalog
// is scanned once, on first need, and kept: the same catalog validates the
// runs the server starts.
#pragma once

#include "query_string.hpp"

#include <kiln/host/catalog.hpp>
#include <kiln/host/json.hpp>

#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

namespace kiln::ui {

class PluginsApi {
 public:
  // `kiln`: the executable that scans libraries; `dirs` empty: the default search path.
  PluginsApi(std::filesystem::path kiln, std::vector<std::filesystem::path> dirs);

  const host::PluginCatalog& catalog();
  // GET /api/v1/plugins: {"components": [...], "libraries": [...]}; ?name= one component's versions.
  host::Json list(const QueryParams& query);

 private:
  const std::filesystem::path kiln_;
  const std::vector<std::filesystem::path> dirs_;
  std::mutex mutex_;
  std::unique_ptr<host::PluginCatalog> catalog_;
};

}  // namespace kiln::ui

// A small catalog of manifests for the harnesses that plan or bind
// components (catalog.json: components of the util, tune and sample plugins,
// no library loaded). The harness is built with KILN_FUZZ_CATALOG, its path.
#pragma once

#include <kiln/host/catalog.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/json.hpp>

#include <string>

namespace kiln::fuzz {

inline const kiln::host::PluginCatalog& catalog() {
  static const kiln::host::PluginCatalog c = [] {
    kiln::host::LibraryScan scan;
    scan.path = "/fuzz/kiln_fuzz_catalog.so";
    scan.digest = std::string(64, '0');
    scan.ok = true;
    for (const auto& manifest : kiln::host::Json::parse(kiln::host::read_file(KILN_FUZZ_CATALOG)))
      scan.components.push_back(kiln::host::parse_manifest(manifest));
    return kiln::host::PluginCatalog::from_scans({scan});
  }();
  return c;
}

}  // namespace kiln::fuzz

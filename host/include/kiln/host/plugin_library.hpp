// Loading a plugin library into this process: the ABI version check, init,
// and the parsed manifests of its components. Libraries are never unloaded.
#pragma once

#include <kiln/plugin_api.h>
#include <kiln/host/manifest.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::host {

// Why a library cannot be used as a kiln plugin.
class PluginLoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// nullopt when a plugin built against `major.minor` can run on this host,
// else the reason naming both versions.
std::optional<std::string> check_abi_version(uint32_t major, uint32_t minor);
// The same rule for any host version (the host's own is KILN_ABI_VERSION_*).
std::optional<std::string> check_abi_version(uint32_t major, uint32_t minor, uint32_t host_major, uint32_t host_minor);

struct LoadedComponent {
  ComponentManifest manifest;
  const KilnComponent* component = nullptr;  // plugin-owned, lives forever
  // Extension tables, NULL when the plugin's struct does not reach them.
  const KilnTunerApi* tuner = nullptr;
  const KilnServingApi* serving = nullptr;
  KilnWarmUpFn warm_up = nullptr;  // ABI 1.1
};

class PluginLibrary {
 public:
  // Loads `path` (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE), checks the ABI,
  // calls init once and parses every manifest. Loading one path twice
  // returns the same library. Thread-safe. Throws PluginLoadError.
  static std::shared_ptr<const PluginLibrary> load(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  uint32_t abi_major() const { return abi_major_; }
  uint32_t abi_minor() const { return abi_minor_; }
  const std::vector<LoadedComponent>& components() const { return components_; }
  const LoadedComponent* find(const std::string& name) const;

  struct Private;  // construction details, see plugin_library.cpp
  explicit PluginLibrary(Private&& p);

 private:
  std::filesystem::path path_;
  uint32_t abi_major_ = 0, abi_minor_ = 0;
  std::vector<LoadedComponent> components_;
};

}  // namespace kiln::host

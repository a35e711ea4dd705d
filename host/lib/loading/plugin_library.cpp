#include <kiln/host/error.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/step_context.hpp>

#include <dlfcn.h>

#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <map>
#include <mutex>

namespace kiln::host {

struct PluginLibrary::Private {
  std::filesystem::path path;
  uint32_t abi_major, abi_minor;
  std::vector<LoadedComponent> components;
};

PluginLibrary::PluginLibrary(Private&& p)
    : path_(std::move(p.path)),
      abi_major_(p.abi_major),
      abi_minor_(p.abi_minor),
      components_(std::move(p.components)) {}

namespace {

// True when a struct of `struct_size` bytes contains the member ending at `end`.
constexpr bool reaches(uint32_t struct_size, size_t end) {
  return struct_size >= end;
}

#define KILN_FIELD_END(type, field) (offsetof(type, field) + sizeof(type::field))

std::string version_text(uint32_t major, uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

boost::dll::shared_library open_library(const std::filesystem::path& path) {
  // RTLD_NODELETE: even when the handle is closed the library stays mapped,
  // so static registrations (LibTorch's) never run their destructors early.
  const auto mode = static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  try {
    return boost::dll::shared_library(path, mode);
  } catch (const std::system_error& e) {  // dlopen failed; other exceptions came from the library's constructors
    std::string reason = e.what();
    const std::string marker = "dlerror system message: ";
    if (const auto at = reason.find(marker); at != std::string::npos) {
      reason = reason.substr(at + marker.size());
      if (!reason.empty() && reason.back() == ')') reason.pop_back();
    }
    throw PluginLoadError("not a loadable library: " + reason);
  }
}

const KilnPluginEntry* entry_of(const boost::dll::shared_library& library) {
  if (!library.has(KILN_PLUGIN_ENTRY_SYMBOL))
    throw PluginLoadError(std::string("not a kiln plugin: it exports no '") + KILN_PLUGIN_ENTRY_SYMBOL + "' symbol");
  const auto entry_fn = library.get<const KilnPluginEntry*()>(KILN_PLUGIN_ENTRY_SYMBOL);
  const KilnPluginEntry* entry = entry_fn();
  if (entry == nullptr) throw PluginLoadError("kiln_plugin_entry returned NULL");
  if (!reaches(entry->struct_size, KILN_FIELD_END(KilnPluginEntry, abi_minor)))
    throw PluginLoadError("kiln_plugin_entry returned a struct of " + std::to_string(entry->struct_size) +
                          " bytes, too small to hold an ABI version");
  return entry;
}

const KilnPlugin* init_plugin(const KilnPluginEntry* entry) {
  if (!reaches(entry->struct_size, KILN_FIELD_END(KilnPluginEntry, init)) || entry->init == nullptr)
    throw PluginLoadError("the plugin's entry struct has no init function");
  const KilnPlugin* plugin = nullptr;
  const ErrorPtr error(entry->init(host_api(), &plugin));
  if (error) throw PluginLoadError("plugin init failed: " + error->message);
  if (plugin == nullptr || !reaches(plugin->struct_size, KILN_FIELD_END(KilnPlugin, components)))
    throw PluginLoadError("plugin init returned no valid plugin description");
  if (plugin->component_count > 0 && plugin->components == nullptr)
    throw PluginLoadError("plugin lists components but gives no component array");
  return plugin;
}

LoadedComponent read_component(const KilnComponent* c, uint32_t index) {
  const std::string where = "component #" + std::to_string(index);
  if (c == nullptr || !reaches(c->struct_size, KILN_FIELD_END(KilnComponent, user_data)) || c->manifest_json == nullptr)
    throw PluginLoadError(where + ": invalid component description");
  LoadedComponent loaded;
  try {
    loaded.manifest = parse_manifest(std::string(c->manifest_json));
  } catch (const ManifestError& e) {
    throw PluginLoadError(where + ": invalid manifest: " + e.what());
  }
  loaded.component = c;
  if (reaches(c->struct_size, KILN_FIELD_END(KilnComponent, tuner))) loaded.tuner = c->tuner;
  if (reaches(c->struct_size, KILN_FIELD_END(KilnComponent, serving))) loaded.serving = c->serving;
  if (reaches(c->struct_size, KILN_FIELD_END(KilnComponent, warm_up))) loaded.warm_up = c->warm_up;
  if (c->run == nullptr && loaded.tuner == nullptr && loaded.serving == nullptr)
    throw PluginLoadError(where + " ('" + loaded.manifest.name +
                          "'): has neither a run function nor an extension table");
  return loaded;
}

std::shared_ptr<const PluginLibrary> load_uncached(const std::filesystem::path& path) {
  const auto library = open_library(path);
  const KilnPluginEntry* entry = entry_of(library);
  if (const auto problem = check_abi_version(entry->abi_major, entry->abi_minor)) throw PluginLoadError(*problem);
  const KilnPlugin* plugin = init_plugin(entry);
  PluginLibrary::Private p{path, entry->abi_major, entry->abi_minor, {}};
  for (uint32_t i = 0; i < plugin->component_count; ++i) {
    auto component = read_component(plugin->components[i], i);
    for (const auto& seen : p.components)
      if (seen.manifest.name == component.manifest.name)
        throw PluginLoadError("two components are named '" + seen.manifest.name + "'");
    p.components.push_back(std::move(component));
  }
  // `library` closes its handle here; RTLD_NODELETE keeps the code mapped.
  return std::make_shared<const PluginLibrary>(std::move(p));
}

}  // namespace

std::optional<std::string> check_abi_version(uint32_t major, uint32_t minor) {
  return check_abi_version(major, minor, KILN_ABI_VERSION_MAJOR, KILN_ABI_VERSION_MINOR);
}

std::optional<std::string> check_abi_version(uint32_t major, uint32_t minor, uint32_t host_major, uint32_t host_minor) {
  const std::string plugin = version_text(major, minor);
  const std::string host = version_text(host_major, host_minor);
  if (major != host_major)
    return "built against kiln plugin ABI " + plugin + ", but this host speaks ABI " + host +
           " (the major versions must match)";
  if (minor > host_minor)
    return "built against kiln plugin ABI " + plugin + ", newer than this host's ABI " + host +
           " (upgrade kiln, or rebuild the plugin against ABI " + host + ")";
  return std::nullopt;
}

std::shared_ptr<const PluginLibrary> PluginLibrary::load(const std::filesystem::path& path) {
  static std::mutex mutex;
  static std::map<std::filesystem::path, std::shared_ptr<const PluginLibrary>> loaded;
  // The same path again (every step of a component asks): no canonical path,
  // which costs a readlink per directory of it, twice per forked step.
  static std::map<std::filesystem::path, std::shared_ptr<const PluginLibrary>> by_given;
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = by_given.find(path); it != by_given.end()) return it->second;
  }
  std::error_code ec;
  const auto key = std::filesystem::weakly_canonical(path, ec);
  const std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = loaded.find(key); it != loaded.end()) return by_given.emplace(path, it->second).first->second;
  std::shared_ptr<const PluginLibrary> library;
  try {
    library = load_uncached(key);
  } catch (const PluginLoadError&) {
    throw;
  } catch (const std::exception& e) {
    throw PluginLoadError(std::string("threw an exception while loading: ") + e.what());
  } catch (...) {
    throw PluginLoadError("threw an exception of unknown type while loading");
  }
  loaded.emplace(key, library);
  by_given.emplace(path, library);
  return library;
}

const LoadedComponent* PluginLibrary::find(const std::string& name) const {
  for (const auto& c : components_)
    if (c.manifest.name == name) return &c;
  return nullptr;
}

}  // namespace kiln::host

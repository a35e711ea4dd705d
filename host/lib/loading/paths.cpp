#include <kiln/host/files.hpp>
#include <kiln/host/paths.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace kiln::host {
namespace fs = std::filesystem;
namespace {

fs::path home_dir() {
  const char* home = std::getenv("HOME");
  return home && *home ? fs::path(home) : fs::temp_directory_path();
}

fs::path xdg_dir(const char* variable, const char* fallback_under_home) {
  const char* value = std::getenv(variable);
  return (value && *value ? fs::path(value) : home_dir() / fallback_under_home) / "kiln";
}

std::vector<fs::path> split_path_list(const std::string& list) {
  std::vector<fs::path> out;
  size_t start = 0;
  while (start <= list.size()) {
    const auto colon = std::min(list.find(':', start), list.size());
    if (colon > start) out.emplace_back(list.substr(start, colon - start));
    start = colon + 1;
  }
  return out;
}

}  // namespace

fs::path executable_path() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec);
}

fs::path user_data_dir() {
  return xdg_dir("XDG_DATA_HOME", ".local/share");
}

fs::path user_cache_dir() {
  const char* explicit_dir = std::getenv("KILN_CACHE_DIR");
  if (explicit_dir && *explicit_dir) return explicit_dir;
  return xdg_dir("XDG_CACHE_HOME", ".cache");
}

fs::path python_helper_dir() {
  return executable_path().parent_path().parent_path() / "lib" / "kiln" / "python";
}

std::vector<fs::path> plugin_search_path() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("KILN_PLUGIN_PATH")) candidates = split_path_list(env);
  const auto bin_dir = executable_path().parent_path();
  // The build tree has the install tree's layout: bin/kiln and lib/kiln/plugins.
  candidates.push_back(bin_dir.parent_path() / "lib" / "kiln" / "plugins");
  candidates.push_back(user_data_dir() / "plugins");
  std::vector<fs::path> dirs;
  for (const auto& c : candidates) {
    std::error_code ec;
    if (!fs::is_directory(c, ec)) continue;
    const auto canonical = fs::canonical(c, ec);
    if (!ec && std::find(dirs.begin(), dirs.end(), canonical) == dirs.end()) dirs.push_back(canonical);
  }
  return dirs;
}

namespace {

// The regular files in `dirs` whose name `wanted` accepts, in search order, sorted by name in each.
template <class Wanted>
std::vector<fs::path> find_files(const std::vector<fs::path>& dirs, Wanted wanted) {
  std::vector<fs::path> found;
  for (const auto& dir : dirs) {
    std::vector<fs::path> here;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (wanted(entry.path()) && entry.is_regular_file(ec)) here.push_back(entry.path());
    std::sort(here.begin(), here.end());
    found.insert(found.end(), here.begin(), here.end());
  }
  return found;
}

}  // namespace

std::vector<fs::path> find_plugin_libraries(const std::vector<fs::path>& dirs) {
  return find_files(dirs, [](const fs::path& p) { return p.extension() == ".so"; });
}

std::vector<fs::path> find_component_files(const std::vector<fs::path>& dirs) {
  std::vector<fs::path> found;
  for (const auto& dir : dirs) {
    const auto own = find_files({dir}, is_component_file);
    found.insert(found.end(), own.begin(), own.end());
    std::vector<fs::path> packages;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      const std::string suffix = kInstalledComponentsSuffix;
      if (name.size() > suffix.size() && name.front() != '.' &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 && entry.is_directory(ec))
        packages.push_back(entry.path());
    }
    std::sort(packages.begin(), packages.end());
    const auto installed = find_files(packages, is_component_file);
    found.insert(found.end(), installed.begin(), installed.end());
  }
  return found;
}

bool is_component_file(const fs::path& path) {
  return path.extension() == ".yaml" || path.extension() == ".yml";
}

fs::path component_place_in(const fs::path& plugin_dir, const fs::path& host_component) {
  if (!is_component_file(host_component)) return plugin_dir / host_component.filename();
  const std::string folder = fs::absolute(host_component).parent_path().lexically_normal().string();
  return plugin_dir / (host_component.stem().string() + "-" + sha256_hex(folder).substr(0, 12) + kInstalledComponentsSuffix) /
         host_component.filename();
}

}  // namespace kiln::host

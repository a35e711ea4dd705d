// Where kiln looks for things on this machine: the running executable, the
// user's data and cache directories, and the plugin search path.
#pragma once

#include <filesystem>
#include <vector>

namespace kiln::host {

// The running executable (/proc/self/exe).
std::filesystem::path executable_path();

// $XDG_DATA_HOME/kiln or ~/.local/share/kiln.
std::filesystem::path user_data_dir();

// $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln or ~/.cache/kiln.
std::filesystem::path user_cache_dir();

// Plugin directories in search order: each entry of $KILN_PLUGIN_PATH, the
// plugin dir of the build or install tree the executable lives in
// (<exe>/../lib/kiln/plugins), then the user's plugin dir. Only existing
// dirs, no repeats.
std::vector<std::filesystem::path> plugin_search_path();

// The plugin libraries (*.so) in `dirs`, in search order, sorted by name in each.
std::vector<std::filesystem::path> find_plugin_libraries(const std::vector<std::filesystem::path>& dirs);

// Where kiln_report.py (python/, the report protocol's Python helper) lies:
// <exe>/../lib/kiln/python, in the build tree as in the install tree.
std::filesystem::path python_helper_dir();

// A directory in a plugin directory whose name ends so holds the component
// files of one installed registry package (NAME-VERSION.components) and the
// files they name.
inline constexpr const char* kInstalledComponentsSuffix = ".components";

// The component files (*.yaml, *.yml; docs/command-components.md) in `dirs`,
// in the same order; in each, its own first, then those directly in each of
// its `*.components` directories (sorted by name).
std::vector<std::filesystem::path> find_component_files(const std::vector<std::filesystem::path>& dirs);
// Whether `path` is a component file by its name (.yaml or .yml): such a
// catalog entry is run as a command, never loaded.
bool is_component_file(const std::filesystem::path& path);

// Where a host component (a plugin library, or a component file) is placed
// in another plugin directory (`kiln image build`'s, read back by the
// container executor): a library by its file name; a component file in a
// `*.components` directory of its own, named after the file and its host
// folder, with the files it names beside it, so that two folders' files of
// one name (component.yaml, run.py) do not meet.
std::filesystem::path component_place_in(const std::filesystem::path& plugin_dir,
                                         const std::filesystem::path& host_component);

}  // namespace kiln::host

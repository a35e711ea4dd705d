// Confinement of a path to a directory, for the files the server reads on a
// client's behalf (logs, --ui-dir's assets).
#pragma once

#include <filesystem>

namespace kiln::ui {

// Whether `path` (which must exist) lies inside `dir`, both with symlinks
// resolved: a link that leads out of `dir` is outside.
bool path_inside(const std::filesystem::path& path, const std::filesystem::path& dir);

}  // namespace kiln::ui

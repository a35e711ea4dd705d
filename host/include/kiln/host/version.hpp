// kiln's own version (set by CMake from the project version).
#pragma once

namespace kiln::host {
const char* kiln_version() noexcept;
}  // namespace kiln::host

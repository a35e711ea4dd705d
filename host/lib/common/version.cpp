#include <kiln/host/version.hpp>

#ifndef KILN_VERSION_STRING
#error "KILN_VERSION_STRING must be defined by the build"
#endif

namespace kiln::host {
const char* kiln_version() noexcept {
  return KILN_VERSION_STRING;
}
}  // namespace kiln::host

#include "components.hpp"

namespace kiln::util {

Manifest Noop::manifest() {
  return Manifest("util.noop", "1.0.0", Kind::Generic).description("Do nothing, successfully");
}

void Noop::run(Context&) {}

}  // namespace kiln::util

// How the torch components reject a parameter, a model file or a request:
// the SDK's Error with KILN_ERROR_INVALID_ARGUMENT (the host reports it as the
// step's configuration error, not a crash).
#pragma once

#include <kiln/sdk.hpp>

#include <string>

namespace kiln::ml {

[[noreturn]] inline void bad(const std::string& message) {
  throw Error(message, KILN_ERROR_INVALID_ARGUMENT);
}

}  // namespace kiln::ml

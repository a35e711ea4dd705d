// Host-side implementation of the ABI's KilnError and the C++ view of errors.
#pragma once

#include <kiln/plugin_api.h>

#include <memory>
#include <stdexcept>
#include <string>

// The opaque error type of the ABI. Defined here: only the host creates errors.
struct KilnError {
  KilnErrorCode code;
  std::string message;
};

namespace kiln::host {

// Owns an error handed over by a plugin (or created by the host).
struct ErrorDeleter {
  void operator()(KilnError* error) const noexcept;
};
using ErrorPtr = std::unique_ptr<KilnError, ErrorDeleter>;

// The C functions placed in the host table.
KilnError* error_new(KilnErrorCode code, const char* message) noexcept;
KilnErrorCode error_code(const KilnError* error) noexcept;
const char* error_message(const KilnError* error) noexcept;
void error_release(KilnError* error) noexcept;

// A host-side error as a C++ exception; becomes a KilnError at the ABI.
class HostError : public std::runtime_error {
 public:
  HostError(KilnErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  KilnErrorCode code() const noexcept { return code_; }

 private:
  KilnErrorCode code_;
};

// Name of an error code, e.g. "invalid-argument".
const char* error_code_name(KilnErrorCode code) noexcept;

}  // namespace kiln::host

#include <kiln/host/error.hpp>

#include <new>

namespace kiln::host {
namespace {
// Returned when even an error cannot be allocated; never freed.
KilnError out_of_memory_error{KILN_ERROR_INTERNAL, "out of memory"};
}  // namespace

void ErrorDeleter::operator()(KilnError* error) const noexcept {
  error_release(error);
}

KilnError* error_new(KilnErrorCode code, const char* message) noexcept {
  try {
    return std::make_unique<KilnError>(KilnError{code, message ? message : ""}).release();
  } catch (...) {
    return &out_of_memory_error;
  }
}

KilnErrorCode error_code(const KilnError* error) noexcept {
  return error ? error->code : 0;
}

const char* error_message(const KilnError* error) noexcept {
  return error ? error->message.c_str() : "";
}

void error_release(KilnError* error) noexcept {
  if (error != nullptr && error != &out_of_memory_error) std::unique_ptr<KilnError> owned(error);
}

const char* error_code_name(KilnErrorCode code) noexcept {
  switch (code) {
    case KILN_ERROR_INVALID_ARGUMENT:
      return "invalid-argument";
    case KILN_ERROR_NOT_FOUND:
      return "not-found";
    case KILN_ERROR_INTERNAL:
      return "internal";
    case KILN_ERROR_CANCELLED:
      return "cancelled";
    case KILN_ERROR_IO:
      return "io";
    case KILN_ERROR_UNSUPPORTED:
      return "unsupported";
    case KILN_ERROR_TYPE_MISMATCH:
      return "type-mismatch";
    default:
      return "unknown";
  }
}

}  // namespace kiln::host

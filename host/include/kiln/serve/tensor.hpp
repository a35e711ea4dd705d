// Tensors of the serving path on the host side: dense row-major buffers
// handed to a runtime (their JSON form: infer_json.hpp).
#pragma once

#include <kiln/plugin_api.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::serve {

// A failure with its HTTP status; the message becomes {"error": message}.
class ServeError : public std::runtime_error {
 public:
  ServeError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct HostTensor {
  std::string name;
  KilnDataType datatype = KILN_DT_FP32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // product(shape) elements of the datatype's size

  int64_t elements() const;
  // A view for the ABI; valid while this tensor lives and is not changed.
  KilnTensor view() const;
};

// A copy of a runtime-owned tensor; throws ServeError(500) when it is inconsistent.
HostTensor copy_tensor(const KilnTensor& tensor);

}  // namespace kiln::serve

// Only LibTorch's version macros here (torch/version.h), no LibTorch code:
// KILN_TORCH_CUDA_VERSION comes from CMake when the LibTorch found was built
// with CUDA (plugins/ml/torch/CMakeLists.txt).
#include "torch_build.hpp"

#include <torch/version.h>

namespace kiln::ml {

std::string torch_build_summary() {
#ifdef KILN_TORCH_CUDA_VERSION
  return std::string("LibTorch ") + TORCH_VERSION + ", CPU + CUDA " + KILN_TORCH_CUDA_VERSION;
#else
  return std::string("LibTorch ") + TORCH_VERSION + ", CPU only";
#endif
}

std::string with_torch_build(const std::string& description) {
  return description + " [built for " + torch_build_summary() + "]";
}

}  // namespace kiln::ml

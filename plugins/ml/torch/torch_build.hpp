// What `kiln plugins describe` shows of the LibTorch this library was built
// against (appended to each component's description): its version and
// devices, compile-time facts only, never a CUDA query (describing a plugin
// must not initialise CUDA), e.g. "LibTorch 1.13.0, CPU only" or
// "LibTorch 2.11.0, CPU + CUDA 13.0".
#pragma once

#include <string>

namespace kiln::ml {

std::string torch_build_summary();
// "<description> [built for LibTorch 1.13.0, CPU only]"
std::string with_torch_build(const std::string& description);

}  // namespace kiln::ml

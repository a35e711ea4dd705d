// The safetensors reader (plugins/ml/format/safetensors.cpp): the input as a
// file's bytes. Only std::runtime_error may come out; every tensor read has
// exactly the bytes its dtype and shape need.
#include "safetensors.hpp"

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = kiln::ml::parse_safetensors(kiln::fuzz::text_of(data, size), "fuzz.safetensors");
    for (const auto& [name, tensor] : file.tensors)
      if (tensor.bytes.size() != static_cast<size_t>(tensor.numel()) * kiln::ml::dtype_size(tensor.dtype))
        kiln::fuzz::fail("tensor " + name + " has the wrong number of bytes");
  } catch (const std::runtime_error&) {
  }
  return 0;
}

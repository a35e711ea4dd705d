// The IDX format of MNIST-family files: 0x00 0x00, a type code (0x08 =
// unsigned byte), the number of dimensions, each dimension as a big-endian
// u32, then the elements. Bytes in, checked header out (fuzz/idx_fuzz.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::data {

struct IdxFile {
  std::vector<int64_t> dims;
  std::string bytes;
  std::size_t data_offset = 0;  // where the elements start in `bytes`
};

// Checks `bytes` (an IDX file's whole content, already gunzipped): u8
// elements, `expected_rank` dimensions, exactly as many element bytes as the
// dimensions promise. Throws bad_input naming `where` and `what` ("images").
IdxFile parse_idx(std::string bytes, const std::string& where, std::size_t expected_rank, const char* what);

}  // namespace kiln::data

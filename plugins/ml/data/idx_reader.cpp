#include "idx_reader.hpp"

#include "common.hpp"

namespace kiln::data {
namespace {

uint32_t big_endian_u32(const std::string& bytes, std::size_t at) {
  uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

}  // namespace

IdxFile parse_idx(std::string bytes, const std::string& where, std::size_t expected_rank, const char* what) {
  IdxFile f;
  f.bytes = std::move(bytes);
  const std::string& path = where;
  if (f.bytes.size() < 4) bad_input(path + ": too short for an IDX header");
  if (f.bytes[0] != 0 || f.bytes[1] != 0) bad_input(path + ": not an IDX file (bad magic number)");
  if (static_cast<unsigned char>(f.bytes[2]) != 0x08)
    bad_input(path + ": IDX element type 0x" + std::to_string(static_cast<unsigned char>(f.bytes[2])) +
              " is not supported; " + what + " must be unsigned bytes (0x08)");
  const auto rank = static_cast<std::size_t>(static_cast<unsigned char>(f.bytes[3]));
  if (rank != expected_rank)
    bad_input(path + ": " + what + " must have " + std::to_string(expected_rank) + " dimensions, the file has " +
              std::to_string(rank));
  f.data_offset = 4 + 4 * rank;
  if (f.bytes.size() < f.data_offset) bad_input(path + ": truncated IDX header");
  const uint64_t have = f.bytes.size() - f.data_offset;
  uint64_t total = 1;
  bool wraps = false;  // three u32 dimensions can multiply past 2^64 (and wrap to what the file has)
  for (std::size_t i = 0; i < rank; ++i) {
    const auto dim = big_endian_u32(f.bytes, 4 + 4 * i);
    if (dim == 0 && i > 0) bad_input(path + ": dimension " + std::to_string(i) + " is zero");
    f.dims.push_back(dim);
    if (dim != 0 && total > UINT64_MAX / dim) wraps = true;
    total *= dim;
  }
  if (wraps)
    bad_input(path + ": truncated: the header's dimensions promise more than 2^64 bytes of data, the file has " +
              std::to_string(have));
  if (have < total)
    bad_input(path + ": truncated: the header promises " + std::to_string(total) + " bytes of data, the file has " +
              std::to_string(have));
  if (have > total) bad_input(path + ": " + std::to_string(have - total) + " unexpected bytes after the data");
  return f;
}

}  // namespace kiln::data

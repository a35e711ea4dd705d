// data.idx's reader (plugins/ml/data/idx_reader.cpp): the input as an IDX
// file of images (rank 3) or labels (rank 1), as the first byte picks, then
// the tensor data.idx makes of it. Inputs that start with gzip's magic bytes
// go through a file and read_file_maybe_gzip, as data.idx reads them.
#include "dataset.hpp"
#include "file_source.hpp"
#include "idx_reader.hpp"

#include <kiln/host/files.hpp>
#include <kiln/sdk.hpp>

#include <cstring>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t rank = (data[0] & 1) != 0 ? 3 : 1;
  std::string bytes = kiln::fuzz::text_of(data + 1, size - 1);
  try {
    if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b) {
      const auto file = kiln::fuzz::scratch_dir() / "input.idx.gz";
      kiln::host::write_file_atomic(file, bytes);
      bytes = kiln::data::read_file_maybe_gzip(file);
    }
    const auto idx = kiln::data::parse_idx(std::move(bytes), "fuzz.idx", rank, rank == 3 ? "images" : "labels");
    std::vector<int64_t> shape = idx.dims;
    if (rank == 3) shape.insert(shape.begin() + 1, 1);  // [N, 1, H, W] as data.idx makes it
    kiln::ml::Tensor t(kiln::ml::DType::U8, shape);
    if (t.bytes.size() != idx.bytes.size() - idx.data_offset) kiln::fuzz::fail("the dimensions do not match the data");
    if (!t.bytes.empty()) std::memcpy(t.bytes.data(), idx.bytes.data() + idx.data_offset, t.bytes.size());
  } catch (const kiln::Error&) {
  }
  return 0;
}

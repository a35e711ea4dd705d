// data.idx: MNIST-family IDX files (optionally gzipped) -> Dataset with U8
// features [N, 1, H, W]. Pixels stay 0..255 (compact); consumers scale.
#include <cstring>

#include "common.hpp"
#include "components.hpp"
#include "file_source.hpp"

namespace kiln::data {
namespace {

// The IDX header: 0x00 0x00, a type code (0x08 = unsigned byte), the number
// of dimensions, then each dimension as a big-endian u32.
struct IdxFile {
  std::vector<int64_t> dims;
  std::string bytes;
  std::size_t data_offset = 0;
};

uint32_t big_endian_u32(const std::string& bytes, std::size_t at) {
  uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

IdxFile read_idx(const std::string& path, std::size_t expected_rank, const char* what) {
  IdxFile f;
  f.bytes = read_file_maybe_gzip(path);
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
  uint64_t total = 1;
  for (std::size_t i = 0; i < rank; ++i) {
    const auto dim = big_endian_u32(f.bytes, 4 + 4 * i);
    if (dim == 0 && i > 0) bad_input(path + ": dimension " + std::to_string(i) + " is zero");
    f.dims.push_back(dim);
    total *= dim;
  }
  const uint64_t have = f.bytes.size() - f.data_offset;
  if (have < total)
    bad_input(path + ": truncated: the header promises " + std::to_string(total) + " bytes of data, the file has " +
              std::to_string(have));
  if (have > total) bad_input(path + ": " + std::to_string(have - total) + " unexpected bytes after the data");
  return f;
}

}  // namespace

Manifest Idx::manifest() {
  return Manifest("data.idx", "1.0.0", Kind::Data)
      .description("Read MNIST-family IDX image (and label) files, optionally gzipped, into a Dataset")
      .param(Param::String("images").description("IDX file of u8 images [N, H, W]"))
      .param(Param::String("labels").default_value("").description("IDX file of u8 labels [N]; empty = unlabeled"))
      .param(Param::List("class_names")
                 .default_json("[]")
                 .description("names of classes 0..k-1; default \"0\"..\"9\" (or up to the largest label)"))
      .output(Port("data", "Dataset").description("features U8 [N, 1, H, W] (0..255); labels I64 [N]"));
}

void Idx::run(Context& ctx) {
  const auto images_path = ctx.param_string("images");
  const auto labels_path = ctx.param_string("labels");
  const auto images = read_idx(images_path, 3, "images");
  const auto n = images.dims[0], h = images.dims[1], w = images.dims[2];
  if (n == 0) bad_input(images_path + ": the file holds no images");
  ml::Dataset d;
  d.schema.feature_shape = {1, h, w};
  d.features = ml::Tensor(ml::DType::U8, {n, 1, h, w});
  std::memcpy(d.features.bytes.data(), images.bytes.data() + images.data_offset, d.features.bytes.size());
  d.schema.description = "data.idx from " + images_path;
  if (!labels_path.empty()) {
    const auto labels = read_idx(labels_path, 1, "labels");
    if (labels.dims[0] != n)
      bad_input(labels_path + ": " + std::to_string(labels.dims[0]) + " labels for " + std::to_string(n) +
                " images in " + images_path);
    auto names = param_strings(ctx, "class_names");
    int64_t largest = 0;
    ml::Tensor t(ml::DType::I64, {n});
    for (int64_t i = 0; i < n; ++i) {
      t.data<int64_t>()[i] = static_cast<unsigned char>(labels.bytes[labels.data_offset + static_cast<std::size_t>(i)]);
      largest = std::max(largest, t.data<int64_t>()[i]);
    }
    if (names.empty())
      for (int64_t c = 0; c < std::max<int64_t>(10, largest + 1); ++c) names.push_back(std::to_string(c));
    if (largest >= static_cast<int64_t>(names.size()))
      bad_input(labels_path + ": label " + std::to_string(largest) + " has no name in class_names (" +
                std::to_string(names.size()) + " names)");
    d.labels = std::move(t);
    d.schema.label = ml::LabelInfo{"label", ml::Task::Classification, names};
    d.schema.description += " and " + labels_path;
  }
  ctx.metric("rows", static_cast<double>(n));
  write_dataset(ctx, "data", d, {{"source", images_path}});
  ctx.progress(1.0, "read " + std::to_string(n) + " images");
}

}  // namespace kiln::data

// data.idx: MNIST-family IDX files (optionally gzipped) -> Dataset with U8
// features [N, 1, H, W]. Pixels stay 0..255 (compact); consumers scale.
#include <cstring>

#include "common.hpp"
#include "components.hpp"
#include "file_source.hpp"
#include "idx_reader.hpp"

namespace kiln::data {
namespace {

IdxFile read_idx(const std::string& path, std::size_t expected_rank, const char* what) {
  return parse_idx(read_file_maybe_gzip(path), path, expected_rank, what);
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

// data.augment: seeded augmentation. Images get random shifts, horizontal
// flips, rotations (bilinear) and noise; tables get Gaussian noise on numeric
// columns. Oversampling duplicates (augmented) minority-class rows until
// every class has as many rows as the largest.
#include <algorithm>
#include <cmath>

#include "common.hpp"
#include "components.hpp"

namespace kiln::data {
namespace {

struct Options {
  int64_t copies = 1;
  int64_t shift = 0;
  bool flip = false;
  double rotation = 0;  // max degrees
  double noise = 0;     // stddev in feature units
};

// Geometry of one example: channels of height x width planes.
struct ImageShape {
  int64_t channels = 1, height = 1, width = 1;
};

ImageShape image_shape(const std::vector<int64_t>& shape) {
  if (shape.size() == 2) return {1, shape[0], shape[1]};
  int64_t channels = shape[0];
  for (std::size_t i = 1; i + 2 < shape.size(); ++i) channels *= shape[i];
  return {channels, shape[shape.size() - 2], shape.back()};
}

double sample(const float* plane, const ImageShape& s, double x, double y) {
  // Bilinear, zero outside the image.
  const auto x0 = static_cast<int64_t>(std::floor(x)), y0 = static_cast<int64_t>(std::floor(y));
  const double fx = x - static_cast<double>(x0), fy = y - static_cast<double>(y0);
  double value = 0;
  for (int64_t dy = 0; dy <= 1; ++dy)
    for (int64_t dx = 0; dx <= 1; ++dx) {
      const double w = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
      const int64_t xi = x0 + dx, yi = y0 + dy;
      if (w == 0 || xi < 0 || yi < 0 || xi >= s.width || yi >= s.height) continue;
      value += w * plane[yi * s.width + xi];
    }
  return value;
}

// One random geometric change, applied as an inverse map: for every output
// pixel, where in the source it comes from (flip, then rotate about the
// centre, then shift).
void augment_image(const float* in, float* out, const ImageShape& s, const Options& o, Rng& rng) {
  const auto dx = rng.symmetric(o.shift), dy = rng.symmetric(o.shift);
  const bool flip = o.flip && (rng.next() >> 63) != 0;
  const double degrees = o.rotation > 0 ? (rng.uniform() * 2 - 1) * o.rotation : 0.0;
  const double angle = degrees * 3.14159265358979323846 / 180.0, c = std::cos(angle), sn = std::sin(angle);
  const double cx = static_cast<double>(s.width - 1) / 2, cy = static_cast<double>(s.height - 1) / 2;
  const auto plane = s.height * s.width;
  for (int64_t ch = 0; ch < s.channels; ++ch)
    for (int64_t y = 0; y < s.height; ++y)
      for (int64_t x = 0; x < s.width; ++x) {
        const double px = static_cast<double>(x - dx) - cx, py = static_cast<double>(y - dy) - cy;
        double sx = c * px + sn * py + cx;
        const double sy = -sn * px + c * py + cy;
        if (flip) sx = static_cast<double>(s.width - 1) - sx;
        out[ch * plane + y * s.width + x] = static_cast<float>(sample(in + ch * plane, s, sx, sy));
      }
}

// The output being built: feature values and, per row, its source row.
struct Rows {
  std::vector<float> values;
  std::vector<int64_t> sources;
};

class Augmenter {
 public:
  Augmenter(const ml::Dataset& d, Options o, uint64_t seed) : d_(d), o_(o), rng_(seed), values_(d.features.to_float()) {
    width_ = d.features.row_numel();
    image_ = d.schema.feature_shape.size() >= 2;
    for (const auto& c : d.schema.columns) numeric_.push_back(c.kind == ml::ColumnKind::Numeric);
    if (numeric_.empty()) numeric_.assign(static_cast<std::size_t>(width_), true);
  }

  // Appends an augmented copy of source row `r`.
  void add_copy(int64_t r, Rows& out) {
    const float* in = values_.data() + r * width_;
    std::vector<float> row(in, in + width_);
    if (image_) augment_image(in, row.data(), image_shape(d_.schema.feature_shape), o_, rng_);
    if (o_.noise > 0)
      for (int64_t j = 0; j < width_; ++j)
        if (image_ || numeric_[static_cast<std::size_t>(j)])
          row[static_cast<std::size_t>(j)] += static_cast<float>(o_.noise * rng_.normal());
    if (d_.features.dtype == ml::DType::U8)
      for (auto& v : row) v = std::clamp(std::round(v), 0.0f, 255.0f);
    out.values.insert(out.values.end(), row.begin(), row.end());
    out.sources.push_back(r);
  }

  Rng& rng() { return rng_; }
  const std::vector<float>& values() const { return values_; }

 private:
  const ml::Dataset& d_;
  Options o_;
  Rng rng_;
  std::vector<float> values_;
  int64_t width_ = 0;
  bool image_ = false;
  std::vector<bool> numeric_;
};

// Adds augmented copies of randomly drawn rows of every smaller class until
// it has as many rows as the largest; returns how many were added.
int64_t oversample_minorities(const ml::Dataset& data, int64_t copies, Augmenter& augmenter, Rows& rows) {
  std::vector<std::vector<int64_t>> members(data.schema.label->classes.size());
  const auto labels = data.class_labels();
  for (std::size_t i = 0; i < labels.size(); ++i)
    members[static_cast<std::size_t>(labels[i])].push_back(static_cast<int64_t>(i));
  std::size_t largest = 0;
  for (const auto& m : members) largest = std::max(largest, m.size());
  // Every class already holds (1 + copies) rows per original.
  const auto per_row = static_cast<std::size_t>(1 + copies);
  int64_t added = 0;
  for (const auto& m : members)
    for (std::size_t n = m.size() * per_row; !m.empty() && n < largest * per_row; ++n, ++added)
      augmenter.add_copy(m[augmenter.rng().below(m.size())], rows);
  return added;
}

ml::Tensor to_dtype(const std::vector<float>& values, ml::DType dtype, std::vector<int64_t> dims) {
  if (dtype == ml::DType::F32) return ml::Tensor::from_float(values, std::move(dims));
  ml::Tensor t(ml::DType::U8, std::move(dims));
  for (std::size_t i = 0; i < values.size(); ++i) t.data<uint8_t>()[i] = static_cast<uint8_t>(values[i]);
  return t;
}

}  // namespace

Manifest Augment::manifest() {
  return Manifest("data.augment", "1.0.0", Kind::Data)
      .description("Seeded augmentation: image shifts/flips/rotations/noise; tabular noise; minority oversampling")
      .param(Param::Int("seed").default_value(0).description("same seed, same output"))
      .param(Param::Int("copies").default_value(1).min(0).max(1000).description(
          "augmented copies per example; the output holds the originals and the copies"))
      .param(Param::Int("shift").default_value(0).min(0).description("images: max shift in pixels, each axis"))
      .param(Param::Bool("flip_horizontal").default_value(false).description("images: mirror half of the copies"))
      .param(Param::Float("rotation")
                 .default_value(0.0)
                 .min(0)
                 .max(180)
                 .description("images: max rotation in degrees (bilinear, zero fill)"))
      .param(Param::Float("noise").default_value(0.0).min(0).description(
          "Gaussian noise stddev in feature units (tables: numeric columns only)"))
      .param(Param::Bool("oversample")
                 .default_value(false)
                 .description("add augmented copies of minority-class rows until classes are balanced"))
      .input(Port("data", "Dataset"))
      .output(Port("data", "Dataset"));
}

void Augment::run(Context& ctx) {
  const auto data = read_dataset(ctx, "data");
  const Options o{ctx.param_int("copies"), ctx.param_int("shift"), ctx.param_bool("flip_horizontal"),
                  ctx.param_float("rotation"), ctx.param_float("noise")};
  const bool oversample = ctx.param_bool("oversample");
  if (oversample && (!data.schema.label || data.schema.label->task != ml::Task::Classification))
    bad_input("oversample needs class labels; this dataset has " +
              std::string(data.schema.label ? "a regression target" : "no labels"));
  Augmenter augmenter(data, o, static_cast<uint64_t>(ctx.param_int("seed")));
  Rows rows;
  // Reserved up front: growing a vector of a whole image set copies it repeatedly.
  rows.values.reserve(augmenter.values().size() * static_cast<std::size_t>(1 + o.copies));
  rows.values.assign(augmenter.values().begin(), augmenter.values().end());
  for (int64_t r = 0; r < data.rows(); ++r) rows.sources.push_back(r);
  const auto total = data.rows() * o.copies;
  for (int64_t k = 0; k < o.copies; ++k)
    for (int64_t r = 0; r < data.rows(); ++r) {
      step_progress(ctx, k * data.rows() + r, total, "augmenting");
      augmenter.add_copy(r, rows);
    }
  const int64_t oversampled = oversample ? oversample_minorities(data, o.copies, augmenter, rows) : 0;
  ml::Dataset out;
  out.schema = data.schema;
  out.schema.description += (out.schema.description.empty() ? "" : "; ") + std::string("data.augment");
  auto dims = data.features.shape;
  dims[0] = static_cast<int64_t>(rows.sources.size());
  out.features = to_dtype(rows.values, data.features.dtype, dims);
  if (data.labels) out.labels = data.labels->gather_rows(rows.sources);
  ctx.metric("rows_in", static_cast<double>(data.rows()));
  ctx.metric("rows_out", static_cast<double>(out.rows()));
  ctx.metric("oversampled", static_cast<double>(oversampled));
  write_dataset(ctx, "data", out, {{"rows_in", data.rows()}, {"oversampled", oversampled}});
  ctx.progress(1.0, "augmented");
}

}  // namespace kiln::data

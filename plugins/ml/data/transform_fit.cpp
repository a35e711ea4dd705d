// data.transform: fits scaling and one-hot encoding on the training split
// only, applies them to every split, and saves them as a Transform artifact
// (kiln::ml::Transform, plugins/ml/format/transform.hpp) for serving.
#include <algorithm>
#include <cmath>
#include <set>

#include "common.hpp"
#include "components.hpp"
#include "transform.hpp"

namespace kiln::data {
namespace {

struct Moments {
  double shift = 0;
  double scale = 1;
  int64_t non_finite = 0;  // NaN/inf values seen (and ignored)
};

// Fits over the values `for_each` visits, in two passes so that no copy of
// them is needed (an image channel can hold tens of millions). Ignores NaN/inf
// (clean first to impute them); a constant or empty column keeps scale 1 so
// it maps to 0 instead of NaN/inf.
template <class ForEach>
Moments fit(ForEach for_each, const std::string& method) {
  double sum = 0, lo = INFINITY, hi = -INFINITY;
  int64_t n = 0, skipped = 0;
  for_each([&](double v) {
    if (!std::isfinite(v)) {
      ++skipped;
      return;
    }
    sum += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    ++n;
  });
  if (n == 0) return {0, 1, skipped};
  if (method == "minmax") return {lo, hi > lo ? 1.0 / (hi - lo) : 1.0, skipped};
  const double mean = sum / static_cast<double>(n);
  double squares = 0;
  for_each([&](double v) {
    if (std::isfinite(v)) squares += (v - mean) * (v - mean);
  });
  const double std_dev = std::sqrt(squares / static_cast<double>(n));  // population std, as sklearn's StandardScaler
  return {mean, std_dev > 0 ? 1.0 / std_dev : 1.0, skipped};
}

std::vector<ml::Column> table_columns(const ml::Dataset& d) {
  if (!d.schema.columns.empty()) return d.schema.columns;
  std::vector<ml::Column> out;
  for (int64_t j = 0; j < d.schema.feature_shape.at(0); ++j)
    out.push_back({"f" + std::to_string(j), ml::ColumnKind::Numeric, "float32", {}});
  return out;
}

std::set<std::string> selected_columns(const Context& ctx, const std::vector<ml::Column>& columns) {
  const auto names = param_strings(ctx, "columns");
  std::set<std::string> out(names.begin(), names.end());
  for (const auto& name : names) {
    const auto it = std::find_if(columns.begin(), columns.end(), [&](const auto& c) { return c.name == name; });
    if (it == columns.end()) bad_input("columns: '" + name + "' is not a column of the train dataset");
    if (it->kind != ml::ColumnKind::Numeric)
      bad_input("columns: '" + name + "' is categorical; only numeric columns are scaled");
  }
  return out;
}

ml::Transform fit_table(const Context& ctx, const ml::Dataset& train, const std::string& scale, bool one_hot) {
  ml::Transform t;
  t.input_shape = train.schema.feature_shape;
  t.input_columns = table_columns(train);
  const auto chosen = selected_columns(ctx, t.input_columns);
  const auto values = train.features.to_float();
  const auto width = t.input_shape[0];
  ml::TransformOp affine{ml::TransformOpKind::Affine, scale, {}, {}, {}, {}};
  ml::TransformOp encode{ml::TransformOpKind::OneHot, "one_hot", {}, {}, {}, {}};
  for (int64_t j = 0; j < width; ++j) {
    const auto& column = t.input_columns[static_cast<std::size_t>(j)];
    if (column.kind == ml::ColumnKind::Categorical) {
      if (one_hot && !column.categories.empty()) {
        encode.columns.push_back(j);
        encode.sizes.push_back(static_cast<int64_t>(column.categories.size()));
        for (const auto& category : column.categories)
          t.output_columns.push_back({column.name + "=" + category, ml::ColumnKind::Numeric, "bool", {}});
      } else {
        t.output_columns.push_back(column);
      }
      continue;
    }
    t.output_columns.push_back(column);
    if (scale == "none" || (!chosen.empty() && !chosen.count(column.name))) continue;
    const auto m = fit(
        [&](auto&& visit) {
          for (int64_t r = 0; r < train.rows(); ++r) visit(values[static_cast<std::size_t>(r * width + j)]);
        },
        scale);
    if (m.non_finite > 0)
      ctx.warning("column '" + column.name + "' has " + std::to_string(m.non_finite) +
                  " missing or infinite values in train; they stay NaN/inf (run data.clean first)");
    affine.columns.push_back(j);
    affine.shift.push_back(m.shift);
    affine.scale.push_back(m.scale);
  }
  if (!affine.columns.empty()) t.ops.push_back(affine);
  if (!encode.columns.empty()) t.ops.push_back(encode);
  return t;
}

ml::Transform fit_image(const ml::Dataset& train, const std::string& scale) {
  ml::Transform t;
  t.input_shape = train.schema.feature_shape;
  if (scale == "none") return t;
  const auto shape = train.schema.feature_shape;
  const int64_t channels = shape.size() == 2 ? 1 : shape[0];
  const int64_t per_channel = train.features.row_numel() / channels;
  ml::TransformOp op{ml::TransformOpKind::ChannelAffine, scale, {}, {}, {}, {}};
  const auto row = train.features.row_numel();
  // Reads the pixels in place (U8 or F32) rather than as a float copy.
  const auto channel = [&](const auto* pixels, int64_t c) {
    return [=, &train](auto&& visit) {
      for (int64_t r = 0; r < train.rows(); ++r) {
        const auto* p = pixels + r * row + c * per_channel;
        for (int64_t k = 0; k < per_channel; ++k) visit(static_cast<double>(p[k]));
      }
    };
  };
  for (int64_t c = 0; c < channels; ++c) {
    const auto m = train.features.dtype == ml::DType::U8 ? fit(channel(train.features.data<uint8_t>(), c), scale)
                                                         : fit(channel(train.features.data<float>(), c), scale);
    op.shift.push_back(m.shift);
    op.scale.push_back(m.scale);
  }
  t.ops.push_back(op);
  return t;
}

// A 0-row dataset with train's schema: what an unwired split becomes.
ml::Dataset empty_like(const ml::Dataset& train) {
  ml::Dataset e;
  e.schema = train.schema;
  auto dims = train.schema.feature_shape;
  dims.insert(dims.begin(), 0);
  e.features = ml::Tensor(train.features.dtype, dims);
  if (train.labels) e.labels = ml::Tensor(train.labels->dtype, {0});
  return e;
}

void transform_split(const Context& ctx, const ml::Transform& t, const std::string& port, const ml::Dataset& in) {
  ml::Dataset out;
  try {
    out = ml::apply_transform(t, in);
  } catch (const std::runtime_error& e) {
    bad_input("input '" + port + "' does not match train: " + e.what());
  }
  out.schema.description = in.schema.description + (in.schema.description.empty() ? "" : "; ") + "data.transform";
  write_dataset(ctx, port, out);
}

}  // namespace

Manifest TransformFit::manifest() {
  return Manifest("data.transform", "1.0.0", Kind::Data)
      .description("Fit standardize/min-max/one-hot on train only, apply to every split, save the Transform")
      .param(Param::String("scale")
                 .default_value("standardize")
                 .choices({"standardize", "minmax", "none"})
                 .description("numeric columns (or image channels): zero mean/unit std, or [0, 1] on train"))
      .param(Param::List("columns").default_json("[]").description("numeric columns to scale; default all"))
      .param(Param::Bool("one_hot").default_value(true).description(
          "categorical columns -> one 0/1 feature per category; unknown -> all zeros"))
      .input(Port("train", "Dataset").description("the statistics come from this split only"))
      .input(Port("validation", "Dataset").optional().description("transformed with train's statistics"))
      .input(Port("test", "Dataset").optional().description("transformed with train's statistics"))
      .output(Port("train", "Dataset").description("F32 features"))
      .output(Port("validation", "Dataset").description("F32 features; 0 rows when the input is not wired"))
      .output(Port("test", "Dataset").description("F32 features; 0 rows when the input is not wired"))
      .output(Port("transform", "Transform").description("transform.json (kiln.transform/v1) for serving"));
}

void TransformFit::run(Context& ctx) {
  const auto train = read_dataset(ctx, "train");
  const auto scale = ctx.param_string("scale");
  const bool table = train.schema.feature_shape.size() == 1;
  if (!table && !param_strings(ctx, "columns").empty())
    bad_input("columns: image datasets are scaled per channel; 'columns' applies to tables only");
  const auto t = table ? fit_table(ctx, train, scale, ctx.param_bool("one_hot")) : fit_image(train, scale);
  transform_split(ctx, t, "train", train);
  for (const std::string port : {"validation", "test"}) {
    ctx.throw_if_cancelled();
    const auto path = ctx.optional_input_path(port);
    transform_split(ctx, t, port, path ? read_dataset(ctx, port) : empty_like(train));
  }
  ml::save_transform(ctx.output_path("transform"), t);
  ctx.metric("features_in", static_cast<double>(t.input_size()));
  ctx.metric("features_out", static_cast<double>(t.output_size()));
  ctx.output_metadata("transform", nlohmann::json{{"format", ml::kTransformFormat},
                                                  {"ops", t.ops.size()},
                                                  {"input_shape", t.input_shape},
                                                  {"output_shape", t.output_shape()}}
                                       .dump());
  ctx.progress(1.0, "transformed");
}

}  // namespace kiln::data

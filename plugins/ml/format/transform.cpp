#include "transform.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace kiln::ml {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* op_name(TransformOpKind kind) {
  switch (kind) {
    case TransformOpKind::Affine:
      return "affine";
    case TransformOpKind::ChannelAffine:
      return "channel_affine";
    case TransformOpKind::OneHot:
      return "one_hot";
  }
  return "affine";
}

TransformOpKind parse_op(const std::string& name, const std::string& where) {
  if (name == "affine") return TransformOpKind::Affine;
  if (name == "channel_affine") return TransformOpKind::ChannelAffine;
  if (name == "one_hot") return TransformOpKind::OneHot;
  invalid(where, "unknown op '" + name + "' (affine, channel_affine, one_hot)");
}

json columns_json(const std::vector<Column>& columns) {
  json out = json::array();
  for (const auto& c : columns) {
    json column = {{"name", c.name}, {"kind", column_kind_name(c.kind)}, {"source_dtype", c.source_dtype}};
    if (c.kind == ColumnKind::Categorical) column["categories"] = c.categories;
    out.push_back(column);
  }
  return out;
}

std::vector<Column> columns_from(const json& j) {
  std::vector<Column> out;
  for (const auto& c : j) {
    Column column;
    column.name = c.at("name").get<std::string>();
    const auto kind = c.at("kind").get<std::string>();
    if (kind != "numeric" && kind != "categorical") throw std::runtime_error("column kind '" + kind + "'");
    column.kind = kind == "numeric" ? ColumnKind::Numeric : ColumnKind::Categorical;
    column.source_dtype = c.value("source_dtype", "float64");
    if (column.kind == ColumnKind::Categorical) column.categories = c.at("categories").get<std::vector<std::string>>();
    out.push_back(std::move(column));
  }
  return out;
}

int64_t channels_of(const std::vector<int64_t>& shape) {
  return shape.size() == 2 ? 1 : shape.at(0);
}

void check_op(const Transform& t, const TransformOp& op, bool last, const std::string& where) {
  const auto width = t.input_size();
  if (op.kind == TransformOpKind::ChannelAffine) {
    if (t.is_table()) invalid(where, "channel_affine needs an image input_shape");
    const auto channels = static_cast<std::size_t>(channels_of(t.input_shape));
    if (op.shift.size() != channels || op.scale.size() != channels)
      invalid(where, "channel_affine needs one shift and scale per channel");
    return;
  }
  if (!t.is_table()) invalid(where, std::string(op_name(op.kind)) + " needs a table input_shape [D]");
  for (std::size_t i = 0; i < op.columns.size(); ++i)
    if (op.columns[i] < 0 || op.columns[i] >= width || (i > 0 && op.columns[i] <= op.columns[i - 1]))
      invalid(where, std::string(op_name(op.kind)) + " columns must be ascending input indices below " +
                         std::to_string(width));
  if (op.kind == TransformOpKind::Affine &&
      (op.shift.size() != op.columns.size() || op.scale.size() != op.columns.size()))
    invalid(where, "affine needs one shift and scale per column");
  if (op.kind == TransformOpKind::OneHot) {
    if (!last) invalid(where, "one_hot must be the last op");
    if (op.sizes.size() != op.columns.size()) invalid(where, "one_hot needs one size per column");
    for (const auto s : op.sizes)
      if (s <= 0) invalid(where, "one_hot sizes must be positive");
  }
}

void validate(const Transform& t, const std::string& where) {
  if (t.input_shape.empty()) invalid(where, "input feature_shape is empty");
  for (const auto d : t.input_shape)
    if (d <= 0) invalid(where, "input feature_shape has a non-positive dimension");
  if (t.is_table() && static_cast<int64_t>(t.input_columns.size()) != t.input_shape[0])
    invalid(where, "input columns do not match input feature_shape");
  for (std::size_t i = 0; i < t.ops.size(); ++i) check_op(t, t.ops[i], i + 1 == t.ops.size(), where);
  if (t.is_table() && static_cast<int64_t>(t.output_columns.size()) != t.output_size())
    invalid(where, "output columns (" + std::to_string(t.output_columns.size()) + ") do not match the ops' " +
                       std::to_string(t.output_size()) + " outputs");
}

const TransformOp* one_hot_of(const Transform& t) {
  return !t.ops.empty() && t.ops.back().kind == TransformOpKind::OneHot ? &t.ops.back() : nullptr;
}

void apply_affine(const TransformOp& op, float* row) {
  for (std::size_t i = 0; i < op.columns.size(); ++i) {
    auto& x = row[op.columns[i]];
    x = static_cast<float>((static_cast<double>(x) - op.shift[i]) * op.scale[i]);
  }
}

void apply_channel_affine(const TransformOp& op, int64_t per_channel, float* row) {
  for (std::size_t c = 0; c < op.shift.size(); ++c) {
    float* p = row + static_cast<int64_t>(c) * per_channel;
    for (int64_t k = 0; k < per_channel; ++k)
      p[k] = static_cast<float>((static_cast<double>(p[k]) - op.shift[c]) * op.scale[c]);
  }
}

// Writes the row, expanding the one-hot columns in place.
void emit_row(const TransformOp* one_hot, const float* row, int64_t width, float* out) {
  std::size_t next = 0;
  for (int64_t j = 0; j < width; ++j) {
    if (one_hot == nullptr || next >= one_hot->columns.size() || one_hot->columns[next] != j) {
      *out++ = row[j];
      continue;
    }
    const auto size = one_hot->sizes[next++];
    const float v = row[j];
    const bool known = std::isfinite(v) && std::floor(v) == v && v >= 0 && v < static_cast<float>(size);
    for (int64_t k = 0; k < size; ++k) *out++ = (known && static_cast<int64_t>(v) == k) ? 1.0f : 0.0f;
  }
}

// Rows [begin, end) of F32 or U8 features as floats.
void rows_as_float(const Tensor& features, int64_t begin, int64_t end, std::vector<float>& out) {
  const auto width = features.row_numel();
  out.resize(static_cast<std::size_t>((end - begin) * width));
  if (features.dtype == DType::F32) {
    const float* p = features.data<float>() + begin * width;
    std::copy(p, p + (end - begin) * width, out.begin());
  } else if (features.dtype == DType::U8) {
    const uint8_t* p = features.data<uint8_t>() + begin * width;
    std::copy(p, p + (end - begin) * width, out.begin());
  } else {
    throw std::runtime_error("features must be F32 or U8, not " + dtype_name(features.dtype));
  }
}

}  // namespace

int64_t Transform::input_size() const {
  int64_t n = 1;
  for (const auto d : input_shape) n *= d;
  return n;
}

std::vector<int64_t> Transform::output_shape() const {
  if (!is_table()) return input_shape;
  int64_t width = input_size();
  if (const auto* op = one_hot_of(*this))
    for (const auto s : op->sizes) width += s - 1;
  return {width};
}

int64_t Transform::output_size() const {
  int64_t n = 1;
  for (const auto d : output_shape()) n *= d;
  return n;
}

std::string transform_to_json(const Transform& t) {
  json ops = json::array();
  for (const auto& op : t.ops) {
    json o = {{"op", op_name(op.kind)}, {"method", op.method}};
    if (op.kind != TransformOpKind::ChannelAffine) o["columns"] = op.columns;
    if (op.kind == TransformOpKind::OneHot) {
      o["sizes"] = op.sizes;
    } else {
      o["shift"] = op.shift;
      o["scale"] = op.scale;
    }
    ops.push_back(o);
  }
  const json out = {{"format", kTransformFormat},
                    {"input", {{"feature_shape", t.input_shape}, {"columns", columns_json(t.input_columns)}}},
                    {"ops", ops},
                    {"output", {{"feature_shape", t.output_shape()}, {"columns", columns_json(t.output_columns)}}}};
  return out.dump(2) + "\n";
}

Transform transform_from_json(const std::string& text, const fs::path& source) {
  const auto where = source.string();
  Transform t;
  try {
    const json j = json::parse(text);
    if (j.value("format", "") != kTransformFormat)
      invalid(where, "format must be \"" + std::string(kTransformFormat) + "\"");
    t.input_shape = j.at("input").at("feature_shape").get<std::vector<int64_t>>();
    t.input_columns = columns_from(j.at("input").at("columns"));
    t.output_columns = columns_from(j.at("output").at("columns"));
    for (const auto& o : j.at("ops")) {
      TransformOp op;
      op.kind = parse_op(o.at("op").get<std::string>(), where);
      op.method = o.value("method", "");
      op.columns = o.value("columns", std::vector<int64_t>{});
      op.shift = o.value("shift", std::vector<double>{});
      op.scale = o.value("scale", std::vector<double>{});
      op.sizes = o.value("sizes", std::vector<int64_t>{});
      t.ops.push_back(std::move(op));
    }
  } catch (const json::exception& e) {
    invalid(where, std::string("bad transform: ") + e.what());
  }
  validate(t, where);
  return t;
}

Transform load_transform(const fs::path& dir) {
  if (!fs::is_directory(dir)) invalid(dir.string(), "not a transform directory");
  return transform_from_json(read_text(dir / "transform.json"), dir / "transform.json");
}

void save_transform(const fs::path& dir, const Transform& t) {
  validate(t, dir.string());
  write_text_atomic(dir / "transform.json", transform_to_json(t));
}

void apply_transform(const Transform& t, const float* in, int64_t rows, std::vector<float>& out) {
  out.resize(static_cast<std::size_t>(rows * t.output_size()));
  apply_transform(t, in, rows, out.data());
}

void apply_transform(const Transform& t, const float* in, int64_t rows, float* out) {
  const auto width = t.input_size();
  const auto out_width = t.output_size();
  const auto per_channel = t.is_table() ? 1 : width / channels_of(t.input_shape);
  const auto* one_hot = one_hot_of(t);
  std::vector<float> row(static_cast<std::size_t>(width));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy(in + r * width, in + (r + 1) * width, row.begin());
    for (const auto& op : t.ops) {
      if (op.kind == TransformOpKind::Affine) apply_affine(op, row.data());
      if (op.kind == TransformOpKind::ChannelAffine) apply_channel_affine(op, per_channel, row.data());
    }
    emit_row(one_hot, row.data(), width, out + r * out_width);
  }
}

Dataset apply_transform(const Transform& t, const Dataset& in) {
  if (in.schema.feature_shape != t.input_shape)
    throw std::runtime_error("the dataset's feature_shape is not the transform's input");
  for (std::size_t j = 0; j < t.input_columns.size() && j < in.schema.columns.size(); ++j) {
    const auto& want = t.input_columns[j];
    const auto& have = in.schema.columns[j];
    if (want.name != have.name || want.kind != have.kind || want.categories != have.categories)
      throw std::runtime_error("column " + std::to_string(j) + " is '" + have.name + "' (" +
                               column_kind_name(have.kind) + "), the transform expects '" + want.name + "' (" +
                               column_kind_name(want.kind) + ") with the same categories");
  }
  Dataset d;
  d.schema = in.schema;
  d.schema.feature_shape = t.output_shape();
  d.schema.columns = t.is_table() ? t.output_columns : std::vector<Column>{};
  auto dims = d.schema.feature_shape;
  dims.insert(dims.begin(), in.rows());
  d.features = Tensor(DType::F32, dims);
  // In chunks, so a U8 image set is never held as floats twice.
  constexpr int64_t kChunk = 1024;
  std::vector<float> chunk;
  for (int64_t begin = 0; begin < in.rows(); begin += kChunk) {
    const auto end = std::min(in.rows(), begin + kChunk);
    rows_as_float(in.features, begin, end, chunk);
    apply_transform(t, chunk.data(), end - begin, d.features.data<float>() + begin * t.output_size());
  }
  d.labels = in.labels;
  return d;
}

float encode_field(const Column& column, const std::string& text) {
  if (column.kind == ColumnKind::Categorical) {
    for (std::size_t i = 0; i < column.categories.size(); ++i)
      if (column.categories[i] == text) return static_cast<float>(i);
    return text.empty() ? std::numeric_limits<float>::quiet_NaN() : -1.0f;
  }
  double value = 0;
  const char* begin = text.data();
  if (!text.empty() && text.front() == '+') ++begin;
  const auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return std::numeric_limits<float>::quiet_NaN();
  return static_cast<float>(value);
}

}  // namespace kiln::ml

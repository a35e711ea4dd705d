// The kiln transform artifact (type "Transform"): a directory holding
// transform.json, the fitted preprocessing data.transform learned on a
// training split. Applying it needs no fitting, so serving can run it on raw
// request rows exactly as training saw them. Layout: docs/data-components.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dataset.hpp"

namespace kiln::ml {

inline constexpr const char* kTransformFormat = "kiln.transform/v1";

enum class TransformOpKind {
  // Tables: x[c] = (x[c] - shift[i]) * scale[i] for each listed input column c = columns[i].
  Affine,
  // Images [C, ...] (or [H, W] as one channel): every value of channel c
  // becomes (x - shift[c]) * scale[c].
  ChannelAffine,
  // Tables, always last: each listed column (a category index) becomes
  // sizes[i] indicator features in place; an index that is not an integer in
  // [0, sizes[i]) (unknown category, NaN) gives all zeros.
  OneHot,
};

struct TransformOp {
  TransformOpKind kind = TransformOpKind::Affine;
  std::string method;            // how it was fitted: "standardize" | "minmax" | "one_hot"
  std::vector<int64_t> columns;  // Affine, OneHot: input column indices, ascending
  std::vector<double> shift;     // Affine: per listed column; ChannelAffine: per channel
  std::vector<double> scale;
  std::vector<int64_t> sizes;  // OneHot: categories per listed column
};

struct Transform {
  std::vector<int64_t> input_shape;    // one example, e.g. [D] or [1, 28, 28]
  std::vector<Column> input_columns;   // tables: the raw columns, kinds and categories
  std::vector<TransformOp> ops;        // applied in order
  std::vector<Column> output_columns;  // tables: the features the ops produce

  bool is_table() const { return input_shape.size() == 1; }
  std::vector<int64_t> output_shape() const;
  int64_t input_size() const;   // values per example in
  int64_t output_size() const;  // values per example out
};

std::string transform_to_json(const Transform& transform);
// Throws std::runtime_error naming `source` and what is inconsistent.
Transform transform_from_json(const std::string& text, const std::filesystem::path& source);
Transform load_transform(const std::filesystem::path& dir);
void save_transform(const std::filesystem::path& dir, const Transform& transform);

// `rows` examples of input_size() floats each (categorical values as
// category indices, missing as NaN) -> rows * output_size() floats in `out`.
void apply_transform(const Transform& transform, const float* in, int64_t rows, std::vector<float>& out);
// The same into a caller's buffer of rows * output_size() floats.
void apply_transform(const Transform& transform, const float* in, int64_t rows, float* out);
// The same on a whole dataset: F32 features with the output schema, labels kept.
// Throws std::runtime_error when the dataset's shape/columns are not the transform's input.
Dataset apply_transform(const Transform& transform, const Dataset& in);

// A raw request field as the transform's input value for `column`: the
// category's index (-1 for an unknown category), a number, or NaN when missing.
float encode_field(const Column& column, const std::string& text);

}  // namespace kiln::ml

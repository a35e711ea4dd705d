// The kiln dataset artifact (type "Dataset"), documented in docs/formats.md:
// a directory holding `data.safetensors` (tensor `features` [N, ...] and, when
// labelled, `labels` [N]) and `schema.json` (columns, label, class names).
// Every data.* component reads and writes it through this one place.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "safetensors.hpp"

namespace kiln::ml {

inline constexpr const char* kDatasetFormat = "kiln.dataset/v1";

enum class ColumnKind { Numeric, Categorical };

struct Column {
  std::string name;
  ColumnKind kind = ColumnKind::Numeric;
  // The type the source had ("int64", "float64", "bool", "string"); features
  // are stored as F32 either way (categorical values as category indices).
  std::string source_dtype = "float64";
  std::vector<std::string> categories;  // Categorical only
};

enum class Task { Classification, Regression };

struct LabelInfo {
  std::string name;
  Task task = Task::Classification;
  std::vector<std::string> classes;  // Classification: labels are indices into this
};

struct Schema {
  // Shape of one example: [D] for tables, e.g. [1, 28, 28] for images.
  std::vector<int64_t> feature_shape;
  // One per feature for tables (feature_shape == [columns.size()]); empty for images.
  std::vector<Column> columns;
  std::optional<LabelInfo> label;
  // Free-form provenance: source file, component, etc.
  std::string description;
};

struct Dataset {
  Schema schema;
  Tensor features;               // F32 or U8, shape [N, feature_shape...]
  std::optional<Tensor> labels;  // I64 (classification) or F32 (regression), shape [N]

  int64_t rows() const { return features.shape.empty() ? 0 : features.shape.front(); }
  bool is_table() const { return schema.feature_shape.size() == 1 && !schema.columns.empty(); }
  // Rows `indices` of features and labels, same schema.
  Dataset subset(const std::vector<int64_t>& indices) const;
  // Labels as integers (classification) — throws when unlabeled or regression.
  std::vector<int64_t> class_labels() const;
};

std::string task_name(Task task);
std::string column_kind_name(ColumnKind kind);
std::string schema_to_json(const Schema& schema, int64_t rows);
Schema schema_from_json(const std::string& text, const std::filesystem::path& source);

// Throws std::runtime_error naming the directory and what is wrong (missing
// files, shapes that disagree with the schema, labels out of range).
Dataset load_dataset(const std::filesystem::path& dir);
// Validates like load_dataset, then writes both files atomically.
void save_dataset(const std::filesystem::path& dir, const Dataset& dataset);
void validate_dataset(const Dataset& dataset, const std::string& where);

// Throws std::runtime_error("WHERE: WHY"): how the dataset and transform
// readers report a bad file.
[[noreturn]] void invalid(const std::string& where, const std::string& why);

}  // namespace kiln::ml

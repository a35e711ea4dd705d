#include "dataset.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace kiln::ml {
namespace fs = std::filesystem;
using nlohmann::json;

void invalid(const std::string& where, const std::string& why) {
  throw std::runtime_error(where + ": " + why);
}

namespace {

ColumnKind parse_kind(const std::string& text, const std::string& where) {
  if (text == "numeric") return ColumnKind::Numeric;
  if (text == "categorical") return ColumnKind::Categorical;
  invalid(where, "column kind must be numeric or categorical, not '" + text + "'");
}

Task parse_task(const std::string& text, const std::string& where) {
  if (text == "classification") return Task::Classification;
  if (text == "regression") return Task::Regression;
  invalid(where, "label task must be classification or regression, not '" + text + "'");
}

}  // namespace

std::string task_name(Task task) {
  return task == Task::Classification ? "classification" : "regression";
}
std::string column_kind_name(ColumnKind kind) {
  return kind == ColumnKind::Numeric ? "numeric" : "categorical";
}

Dataset Dataset::subset(const std::vector<int64_t>& indices) const {
  Dataset out;
  out.schema = schema;
  out.features = features.gather_rows(indices);
  if (labels) out.labels = labels->gather_rows(indices);
  return out;
}

std::vector<int64_t> Dataset::class_labels() const {
  if (!labels || !schema.label || schema.label->task != Task::Classification)
    throw std::runtime_error("the dataset has no class labels");
  const auto* p = labels->data<int64_t>();
  return {p, p + labels->numel()};
}

std::string schema_to_json(const Schema& schema, int64_t rows) {
  json columns = json::array();
  for (const auto& c : schema.columns) {
    json column = {{"name", c.name}, {"kind", column_kind_name(c.kind)}, {"source_dtype", c.source_dtype}};
    if (c.kind == ColumnKind::Categorical) column["categories"] = c.categories;
    columns.push_back(column);
  }
  json out = {
      {"format", kDatasetFormat}, {"rows", rows}, {"feature_shape", schema.feature_shape}, {"columns", columns}};
  if (schema.label) {
    out["label"] = {{"name", schema.label->name}, {"task", task_name(schema.label->task)}};
    if (schema.label->task == Task::Classification) out["label"]["classes"] = schema.label->classes;
  } else {
    out["label"] = nullptr;
  }
  if (!schema.description.empty()) out["description"] = schema.description;
  return out.dump(2) + "\n";
}

Schema schema_from_json(const std::string& text, const fs::path& source) {
  const std::string where = source.string();
  try {
    const json j = json::parse(text);
    if (j.value("format", "") != kDatasetFormat)
      invalid(where, "format must be \"" + std::string(kDatasetFormat) + "\"");
    Schema schema;
    schema.feature_shape = j.at("feature_shape").get<std::vector<int64_t>>();
    for (const auto& c : j.at("columns")) {
      Column column;
      column.name = c.at("name").get<std::string>();
      column.kind = parse_kind(c.at("kind").get<std::string>(), where);
      column.source_dtype = c.value("source_dtype", "float64");
      if (column.kind == ColumnKind::Categorical)
        column.categories = c.at("categories").get<std::vector<std::string>>();
      schema.columns.push_back(std::move(column));
    }
    if (j.contains("label") && !j.at("label").is_null()) {
      LabelInfo label;
      label.name = j.at("label").at("name").get<std::string>();
      label.task = parse_task(j.at("label").at("task").get<std::string>(), where);
      if (label.task == Task::Classification)
        label.classes = j.at("label").at("classes").get<std::vector<std::string>>();
      schema.label = std::move(label);
    }
    schema.description = j.value("description", "");
    return schema;
  } catch (const json::exception& e) {
    invalid(where, std::string("bad schema: ") + e.what());
  }
}

void validate_dataset(const Dataset& d, const std::string& where) {
  const auto& shape = d.features.shape;
  if (shape.empty()) invalid(where, "features must have a row dimension");
  const std::vector<int64_t> example(shape.begin() + 1, shape.end());
  if (example != d.schema.feature_shape) invalid(where, "features' shape does not match the schema's feature_shape");
  if (d.features.dtype != DType::F32 && d.features.dtype != DType::U8) invalid(where, "features must be F32 or U8");
  if (!d.schema.columns.empty() && (example.size() != 1 || example[0] != static_cast<int64_t>(d.schema.columns.size())))
    invalid(where, "the schema lists " + std::to_string(d.schema.columns.size()) + " columns for feature_shape of " +
                       std::to_string(example.empty() ? 0 : example[0]));
  if (d.schema.label.has_value() != d.labels.has_value()) invalid(where, "labels and the schema's label disagree");
  if (!d.labels) return;
  if (d.labels->shape != std::vector<int64_t>{d.rows()}) invalid(where, "labels must have shape [rows]");
  if (d.schema.label->task == Task::Regression) {
    if (d.labels->dtype != DType::F32) invalid(where, "regression labels must be F32");
    return;
  }
  if (d.labels->dtype != DType::I64) invalid(where, "class labels must be I64");
  const auto classes = static_cast<int64_t>(d.schema.label->classes.size());
  for (const auto label : d.class_labels())
    if (label < 0 || label >= classes)
      invalid(where, "label " + std::to_string(label) + " is outside the " + std::to_string(classes) + " classes");
}

Dataset load_dataset(const fs::path& dir) {
  const auto where = dir.string();
  if (!fs::is_directory(dir)) invalid(where, "not a dataset directory");
  Dataset d;
  d.schema = schema_from_json(read_text(dir / "schema.json"), dir / "schema.json");
  auto file = read_safetensors(dir / "data.safetensors");
  const auto features = file.tensors.find("features");
  if (features == file.tensors.end()) invalid(where, "data.safetensors has no 'features' tensor");
  d.features = std::move(features->second);
  if (const auto labels = file.tensors.find("labels"); labels != file.tensors.end())
    d.labels = std::move(labels->second);
  validate_dataset(d, where);
  return d;
}

void save_dataset(const fs::path& dir, const Dataset& d) {
  validate_dataset(d, dir.string());
  TensorRefs tensors{{"features", &d.features}};
  if (d.labels) tensors.emplace("labels", &*d.labels);
  write_safetensors(dir / "data.safetensors", tensors, {{"format", kDatasetFormat}});
  write_text_atomic(dir / "schema.json", schema_to_json(d.schema, d.rows()));
}

}  // namespace kiln::ml

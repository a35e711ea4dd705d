// Column typing for data.csv: declared dtypes, inference, token conversion,
// and the label's task and classes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "csv_reader.hpp"
#include "dataset.hpp"

namespace kiln::data {

enum class DeclaredType { Inferred, Float, Int, Bool, Category };

// "float" | "int" | "category" | "bool"; throws bad_input naming the column.
DeclaredType parse_declared_type(const std::string& text, const std::string& column);

// The tokens of one column over the rows that are kept.
using Tokens = std::vector<std::string_view>;

struct ColumnType {
  ml::ColumnKind kind = ml::ColumnKind::Numeric;
  DeclaredType type = DeclaredType::Float;  // resolved: never Inferred
  std::string source_dtype = "float64";
  std::vector<std::string> categories;  // Categorical
  std::map<std::string, float> index;   // category token -> index
};

// Numeric if every present token is a number (int64 if all integral), bool
// if every token is true/false, else categorical.
ColumnType infer_column(const Tokens& tokens, DeclaredType declared);

// The feature value of `token`: NaN for a missing token; nullopt when the
// token does not fit the column's type (a bad row).
std::optional<float> convert_token(std::string_view token, const ColumnType& column);

// Distinct present tokens, sorted numerically when all are numbers.
std::vector<std::string> sorted_distinct(const Tokens& tokens);

struct LabelPlan {
  ml::Task task = ml::Task::Classification;
  std::vector<std::string> classes;
  // Classification: token (trimmed; numbers normalised) -> class index.
  std::map<std::string, int64_t> class_of;
};

// Decides the task ("auto" | "classification" | "regression") and classes.
LabelPlan plan_label(const Tokens& tokens, const std::string& task, const std::vector<std::string>& class_names,
                     const std::string& where);

// The text a label token is looked up by: numbers in their shortest form,
// so "1", "1.0" and "01" are one class.
std::string label_key(std::string_view token);

}  // namespace kiln::data

#include "csv_typing.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <set>

#include "common.hpp"

namespace kiln::data {
namespace {

std::string lower(std::string_view text) {
  std::string out(trim(text));
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::optional<float> bool_value(std::string_view token) {
  const auto t = lower(token);
  if (t == "true" || t == "yes" || t == "1") return 1.0f;
  if (t == "false" || t == "no" || t == "0") return 0.0f;
  return std::nullopt;
}

bool integral(double v) {
  return std::isfinite(v) && std::floor(v) == v && std::fabs(v) < 9007199254740992.0;
}

// A classification label with at most this many distinct integers is taken
// as classes under task "auto"; more are taken as a regression target.
constexpr std::size_t kMaxAutoClasses = 20;

ColumnType categorical(const Tokens& tokens) {
  ColumnType c;
  c.kind = ml::ColumnKind::Categorical;
  c.type = DeclaredType::Category;
  c.categories = sorted_distinct(tokens);
  bool all_numeric = !c.categories.empty(), all_integral = all_numeric;
  for (const auto& cat : c.categories) {
    const auto v = parse_number(cat);
    all_numeric = all_numeric && v.has_value();
    all_integral = all_integral && v && integral(*v);
  }
  c.source_dtype = all_integral ? "int64" : all_numeric ? "float64" : "string";
  for (std::size_t i = 0; i < c.categories.size(); ++i) c.index[c.categories[i]] = static_cast<float>(i);
  return c;
}

}  // namespace

DeclaredType parse_declared_type(const std::string& text, const std::string& column) {
  if (text == "float") return DeclaredType::Float;
  if (text == "int") return DeclaredType::Int;
  if (text == "bool") return DeclaredType::Bool;
  if (text == "category") return DeclaredType::Category;
  bad_input("dtypes: column '" + column + "' has dtype '" + text + "'; use float, int, category or bool");
}

std::vector<std::string> sorted_distinct(const Tokens& tokens) {
  std::set<std::string> distinct;
  for (const auto t : tokens)
    if (!is_missing_token(t)) distinct.emplace(trim(t));
  std::vector<std::string> out(distinct.begin(), distinct.end());
  const bool numeric = std::all_of(out.begin(), out.end(), [](const auto& s) { return parse_number(s).has_value(); });
  if (numeric)
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return *parse_number(a) < *parse_number(b); });
  return out;
}

ColumnType infer_column(const Tokens& tokens, DeclaredType declared) {
  ColumnType c;
  if (declared == DeclaredType::Category) return categorical(tokens);
  if (declared == DeclaredType::Float || declared == DeclaredType::Int || declared == DeclaredType::Bool) {
    c.type = declared;
    c.source_dtype = declared == DeclaredType::Int ? "int64" : declared == DeclaredType::Bool ? "bool" : "float64";
    return c;
  }
  bool numeric = true, all_integral = true, boolean = true;
  for (const auto t : tokens) {
    if (is_missing_token(t)) continue;
    const auto v = parse_number(t);
    numeric = numeric && v.has_value();
    all_integral = all_integral && v && integral(*v);
    const auto l = lower(t);
    boolean = boolean && (l == "true" || l == "false");
  }
  if (boolean && !tokens.empty()) {
    c.type = DeclaredType::Bool;
    c.source_dtype = "bool";
  } else if (numeric) {
    c.type = all_integral ? DeclaredType::Int : DeclaredType::Float;
    c.source_dtype = all_integral ? "int64" : "float64";
  } else {
    return categorical(tokens);
  }
  return c;
}

std::optional<float> convert_token(std::string_view token, const ColumnType& column) {
  if (is_missing_token(token)) return std::numeric_limits<float>::quiet_NaN();
  switch (column.type) {
    case DeclaredType::Bool:
      return bool_value(token);
    case DeclaredType::Category: {
      const auto it = column.index.find(std::string(trim(token)));
      if (it == column.index.end()) return std::nullopt;
      return it->second;
    }
    case DeclaredType::Int: {
      const auto v = parse_number(token);
      if (!v || !integral(*v)) return std::nullopt;
      return static_cast<float>(*v);
    }
    default: {
      const auto v = parse_number(token);
      if (!v) return std::nullopt;
      return static_cast<float>(*v);
    }
  }
}

std::string label_key(std::string_view token) {
  const auto v = parse_number(token);
  return v ? format_number(*v) : std::string(trim(token));
}

LabelPlan plan_label(const Tokens& tokens, const std::string& task, const std::vector<std::string>& class_names,
                     const std::string& where) {
  std::set<std::string> keys;
  bool numeric = true, all_integral = true;
  for (const auto t : tokens) {
    if (is_missing_token(t)) continue;
    const auto v = parse_number(t);
    numeric = numeric && v.has_value();
    all_integral = all_integral && v && integral(*v);
    keys.insert(label_key(t));
  }
  LabelPlan plan;
  if (task == "regression") {
    plan.task = ml::Task::Regression;
  } else if (task == "classification" || !class_names.empty()) {
    plan.task = ml::Task::Classification;
  } else {
    plan.task =
        (numeric && (!all_integral || keys.size() > kMaxAutoClasses)) ? ml::Task::Regression : ml::Task::Classification;
  }
  if (plan.task == ml::Task::Regression) {
    if (!numeric) bad_input(where + ": regression needs a numeric label, but it holds text");
    return plan;
  }
  if (!class_names.empty() && numeric && all_integral) {
    // Integer labels 0..k-1 named by class_names.
    plan.classes = class_names;
    for (std::size_t i = 0; i < class_names.size(); ++i) plan.class_of[std::to_string(i)] = static_cast<int64_t>(i);
    for (const auto& key : keys)
      if (!plan.class_of.count(key))
        bad_input(where + ": label value " + key + " has no name in class_names (" +
                  std::to_string(class_names.size()) + " names for labels 0.." +
                  std::to_string(class_names.size() - 1) + ")");
    return plan;
  }
  if (!class_names.empty()) {
    plan.classes = class_names;
  } else {
    Tokens key_views(keys.begin(), keys.end());
    plan.classes = sorted_distinct(key_views);
  }
  for (std::size_t i = 0; i < plan.classes.size(); ++i) plan.class_of[plan.classes[i]] = static_cast<int64_t>(i);
  for (const auto& key : keys)
    if (!plan.class_of.count(key)) bad_input(where + ": label value '" + key + "' is not one of class_names");
  return plan;
}

}  // namespace kiln::data

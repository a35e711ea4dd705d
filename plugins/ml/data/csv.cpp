// data.csv: delimited text (optionally gzipped) -> Dataset.
#include <algorithm>
#include <cmath>
#include <set>

#include "common.hpp"
#include "components.hpp"
#include "csv_reader.hpp"
#include "csv_typing.hpp"
#include "file_source.hpp"

namespace kiln::data {
namespace {

struct CsvOptions {
  std::string path;
  std::string delimiter;
  bool header = true;
  int64_t skip_rows = 0;
  std::vector<std::string> columns;
  std::string label;
  std::string task;
  std::vector<std::string> class_names;
  std::map<std::string, std::string> dtypes;
  bool skip_bad_rows = false;
};

CsvOptions read_options(const Context& ctx) {
  CsvOptions o;
  o.path = ctx.param_string("path");
  o.delimiter = ctx.param_string("delimiter");
  o.header = ctx.param_bool("header");
  o.skip_rows = ctx.param_int("skip_rows");
  o.columns = param_strings(ctx, "columns");
  o.label = ctx.param_string("label");
  o.task = ctx.param_string("task");
  o.class_names = param_strings(ctx, "class_names");
  const auto dtypes = param_value(ctx, "dtypes");
  if (!dtypes.is_object()) bad_input("parameter 'dtypes' must be an object of column -> dtype");
  for (const auto& [name, value] : dtypes.items()) {
    if (!value.is_string()) bad_input("dtypes: the dtype of column '" + name + "' must be a string");
    o.dtypes[name] = value.get<std::string>();
  }
  o.skip_bad_rows = ctx.param_string("bad_rows") == "skip";
  return o;
}

// Drops the first `count` lines; returns the rest and the line it starts at.
std::string_view skip_lines(std::string_view text, int64_t count, int64_t& first_line) {
  first_line = 1;
  for (int64_t i = 0; i < count && !text.empty(); ++i, ++first_line) {
    const auto end = text.find('\n');
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return text;
}

// The first non-blank line: what delimiter "auto" looks at.
std::string_view first_line_of(std::string_view text) {
  while (!text.empty()) {
    const auto end = text.find('\n');
    const auto line = text.substr(0, end);
    if (!trim(line).empty() || end == std::string_view::npos) return line;
    text.remove_prefix(end + 1);
  }
  return text;
}

std::vector<std::string> column_names(std::vector<CsvRecord>& records, const CsvOptions& o, const std::string& where) {
  std::vector<std::string> names;
  if (o.header) {
    names = records.front().fields;
    records.erase(records.begin());
  } else if (!o.columns.empty()) {
    names = o.columns;
    if (names.size() != records.front().fields.size())
      bad_input(where + ":" + std::to_string(records.front().line) + ": 'columns' names " +
                std::to_string(names.size()) + " columns but the row has " +
                std::to_string(records.front().fields.size()) + " fields");
  } else {
    for (std::size_t i = 0; i < records.front().fields.size(); ++i) names.push_back("col_" + std::to_string(i));
  }
  std::set<std::string> seen;
  for (auto& name : names) {
    if (name.empty()) bad_input(where + ": the header has an empty column name");
    if (!seen.insert(name).second) bad_input(where + ": column '" + name + "' appears twice in the header");
  }
  return names;
}

// The label column's index, from a name or an integer (negative from the end).
std::optional<std::size_t> label_column(const std::string& label, const std::vector<std::string>& names,
                                        const std::string& where) {
  if (label.empty()) return std::nullopt;
  if (const auto it = std::find(names.begin(), names.end(), label); it != names.end())
    return static_cast<std::size_t>(it - names.begin());
  const auto number = parse_number(label);
  const auto count = static_cast<int64_t>(names.size());
  // Bounded first: casting a huge double to int64 is undefined.
  if (number && std::floor(*number) == *number && std::fabs(*number) < 1e15) {
    const auto index = static_cast<int64_t>(*number);
    const auto resolved = index < 0 ? count + index : index;
    if (resolved >= 0 && resolved < count) return static_cast<std::size_t>(resolved);
    bad_input(where + ": label index " + label + " is outside the " + std::to_string(count) + " columns");
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  bad_input(where + ": label column '" + label + "' is not among the columns (" + list + ")");
}

class CsvLoader {
 public:
  CsvLoader(const Context& ctx, CsvOptions options) : ctx_(ctx), o_(std::move(options)), where_(o_.path) {}

  ml::Dataset load() {
    const std::string text = read_file_maybe_gzip(o_.path);
    int64_t first_line = 1;
    const auto body = skip_lines(text, o_.skip_rows, first_line);
    const auto delimiter = parse_delimiter(o_.delimiter, first_line_of(body));
    if (!delimiter) bad_input("delimiter '" + o_.delimiter + "' is not one of auto, ',', '\\t', ';', whitespace");
    records_ = split_records(body, *delimiter, first_line, where_);
    if (records_.empty())
      bad_input(where_ + ": empty file (no rows after skip_rows " + std::to_string(o_.skip_rows) + ")");
    names_ = column_names(records_, o_, where_);
    if (records_.empty()) bad_input(where_ + ": the file has a header but no data rows");
    label_ = label_column(o_.label, names_, where_);
    drop_ragged_rows();
    type_columns();
    return build();
  }

  int64_t bad_rows() const { return bad_rows_; }

 private:
  // Fails on, or counts and drops, a row that cannot be used.
  void reject(const CsvRecord& record, const std::string& why) {
    if (!o_.skip_bad_rows) bad_input(where_ + ":" + std::to_string(record.line) + ": " + why);
    ++bad_rows_;
  }

  void drop_ragged_rows() {
    std::vector<CsvRecord> kept;
    for (auto& r : records_) {
      if (r.fields.size() == names_.size())
        kept.push_back(std::move(r));
      else
        reject(r, "expected " + std::to_string(names_.size()) + " fields, found " + std::to_string(r.fields.size()));
    }
    records_ = std::move(kept);
  }

  Tokens tokens_of(std::size_t j) const {
    Tokens out;
    out.reserve(records_.size());
    for (const auto& r : records_) out.push_back(r.fields[j]);
    return out;
  }

  void type_columns() {
    for (const auto& [name, dtype] : o_.dtypes)
      if (std::find(names_.begin(), names_.end(), name) == names_.end())
        bad_input("dtypes: column '" + name + "' is not in " + where_);
    types_.resize(names_.size());
    for (std::size_t j = 0; j < names_.size(); ++j) {
      if (label_ && j == *label_) continue;
      const auto it = o_.dtypes.find(names_[j]);
      const auto declared = it == o_.dtypes.end() ? DeclaredType::Inferred : parse_declared_type(it->second, names_[j]);
      types_[j] = infer_column(tokens_of(j), declared);
      if (declared == DeclaredType::Inferred) warn_if_mostly_numeric(j);
    }
    if (label_)
      plan_ = plan_label(tokens_of(*label_), o_.task, o_.class_names, where_ + ": label '" + names_[*label_] + "'");
  }

  // A numeric column with a stray word silently becomes categorical; say so,
  // naming the first offending line, so the user can declare its dtype.
  void warn_if_mostly_numeric(std::size_t j) const {
    if (types_[j].kind != ml::ColumnKind::Categorical) return;
    std::size_t numbers = 0, present = 0;
    const CsvRecord* first_text = nullptr;
    for (const auto& r : records_) {
      if (is_missing_token(r.fields[j])) continue;
      ++present;
      if (parse_number(r.fields[j]))
        ++numbers;
      else if (first_text == nullptr)
        first_text = &r;
    }
    if (first_text != nullptr && numbers * 10 >= present * 9)
      ctx_.warning(where_ + ":" + std::to_string(first_text->line) + ": column '" + names_[j] + "' is " +
                   std::to_string(numbers * 100 / present) + "% numbers but '" + first_text->fields[j] +
                   "' made it categorical; declare its dtype (float/int) to fail or skip such rows instead");
  }

  // One row's features and label; false when the row is bad.
  bool convert_row(const CsvRecord& r, float* features, int64_t& class_index, float& target) {
    std::size_t out = 0;
    for (std::size_t j = 0; j < names_.size(); ++j) {
      if (label_ && j == *label_) continue;
      const auto value = convert_token(r.fields[j], types_[j]);
      if (!value) {
        reject(r, "column '" + names_[j] + "': '" + r.fields[j] + "' is not a valid " + types_[j].source_dtype);
        return false;
      }
      features[out++] = *value;
    }
    if (!label_) return true;
    const auto& token = r.fields[*label_];
    if (is_missing_token(token)) {
      reject(r, "label column '" + names_[*label_] + "' is missing");
      return false;
    }
    if (plan_.task == ml::Task::Classification) {
      class_index = plan_.class_of.at(label_key(token));
    } else {
      const auto v = parse_number(token);
      if (!v) {
        reject(r, "label column '" + names_[*label_] + "': '" + token + "' is not a number");
        return false;
      }
      target = static_cast<float>(*v);
    }
    return true;
  }

  ml::Dataset build() {
    const auto width = static_cast<int64_t>(names_.size() - (label_ ? 1 : 0));
    std::vector<float> features;
    std::vector<int64_t> classes;
    std::vector<float> targets;
    std::vector<float> row(static_cast<std::size_t>(width));
    const auto total = static_cast<int64_t>(records_.size());
    for (int64_t i = 0; i < total; ++i) {
      step_progress(ctx_, i, total, "parsing rows");
      int64_t class_index = 0;
      float target = 0;
      if (!convert_row(records_[static_cast<std::size_t>(i)], row.data(), class_index, target)) continue;
      features.insert(features.end(), row.begin(), row.end());
      classes.push_back(class_index);
      targets.push_back(target);
    }
    const auto rows = static_cast<int64_t>(classes.size());
    if (rows == 0) bad_input(where_ + ": no usable rows (" + std::to_string(bad_rows_) + " bad rows skipped)");
    ml::Dataset d;
    d.schema.feature_shape = {width};
    for (std::size_t j = 0; j < names_.size(); ++j) {
      if (label_ && j == *label_) continue;
      d.schema.columns.push_back({names_[j], types_[j].kind, types_[j].source_dtype, types_[j].categories});
    }
    d.features = ml::Tensor::from_float(features, {rows, width});
    if (label_) attach_label(d, classes, targets);
    d.schema.description = "data.csv from " + o_.path;
    return d;
  }

  void attach_label(ml::Dataset& d, const std::vector<int64_t>& classes, const std::vector<float>& targets) const {
    d.schema.label = ml::LabelInfo{names_[*label_], plan_.task, plan_.classes};
    const auto rows = static_cast<int64_t>(classes.size());
    if (plan_.task == ml::Task::Regression) {
      d.labels = ml::Tensor::from_float(targets, {rows});
      return;
    }
    ml::Tensor labels(ml::DType::I64, {rows});
    std::copy(classes.begin(), classes.end(), labels.data<int64_t>());
    d.labels = std::move(labels);
  }

  const Context& ctx_;
  CsvOptions o_;
  std::string where_;
  std::vector<CsvRecord> records_;
  std::vector<std::string> names_;
  std::optional<std::size_t> label_;
  std::vector<ColumnType> types_;
  LabelPlan plan_;
  int64_t bad_rows_ = 0;
};

}  // namespace

Manifest Csv::manifest() {
  return Manifest("data.csv", "1.0.0", Kind::Data)
      .description("Read a CSV/TSV file (optionally gzipped) into a Dataset")
      .param(Param::String("path").description("the file; gzip is detected by its magic bytes"))
      .param(Param::String("delimiter")
                 .default_value("auto")
                 .choices({"auto", ",", "\t", "tab", ";", "whitespace"})
                 .description("field separator; whitespace = runs of spaces/tabs"))
      .param(Param::Bool("header").default_value(true).description("the first row (after skip_rows) names the columns"))
      .param(Param::Int("skip_rows").default_value(0).min(0).description("lines to skip before the header/data"))
      .param(Param::List("columns").default_json("[]").description("column names when there is no header"))
      .param(Param::String("label").default_value("").description(
          "label column: a name, or an index as text (negative from the end); empty = unlabeled"))
      .param(Param::String("task")
                 .default_value("auto")
                 .choices({"auto", "classification", "regression"})
                 .description("auto: integer labels with <= 20 values or text labels -> classification"))
      .param(Param::List("class_names").default_json("[]").description("names for integer class labels 0..k-1"))
      .param(Param::Object("dtypes").default_json("{}").description(
          "column -> float | int | category | bool; other columns are inferred"))
      .param(Param::String("bad_rows")
                 .default_value("fail")
                 .choices({"fail", "skip"})
                 .description("fail on a bad row naming its line, or skip and count it"))
      .output(Port("data", "Dataset").description("features F32 [N, D]; labels I64 or F32 [N]"));
}

void Csv::run(Context& ctx) {
  CsvLoader loader(ctx, read_options(ctx));
  const auto dataset = loader.load();
  if (loader.bad_rows() > 0) ctx.warning("skipped " + std::to_string(loader.bad_rows()) + " bad rows");
  ctx.metric("rows", static_cast<double>(dataset.rows()));
  ctx.metric("columns", static_cast<double>(dataset.schema.feature_shape[0]));
  ctx.metric("bad_rows", static_cast<double>(loader.bad_rows()));
  write_dataset(ctx, "data", dataset, {{"bad_rows", loader.bad_rows()}, {"source", ctx.param_string("path")}});
  ctx.progress(1.0, "read " + std::to_string(dataset.rows()) + " rows");
}

}  // namespace kiln::data

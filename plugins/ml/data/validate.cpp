// data.validate: statistics of a dataset and anomalies, alone and against a
// reference dataset (missing/unexpected columns, type changes, unknown
// categories, out-of-range values, drift by PSI), written as a Report.
#include <algorithm>
#include <cmath>
#include <map>

#include "common.hpp"
#include "components.hpp"
#include "statistics.hpp"

namespace kiln::data {
namespace {

using nlohmann::json;

struct Limits {
  double drift_threshold = 0.2;
  double range_tolerance = 0.05;
};

class Anomalies {
 public:
  void add(const std::string& column, const std::string& kind, const std::string& detail) {
    list_.push_back({{"column", column}, {"kind", kind}, {"detail", detail}});
  }
  const json& list() const { return list_; }
  std::size_t size() const { return list_.size(); }

 private:
  json list_ = json::array();
};

void check_alone(const Series& s, int64_t rows, Anomalies& a) {
  int64_t missing = 0, infinite = 0;
  for (const auto v : s.values) {
    missing += std::isnan(v) ? 1 : 0;
    infinite += std::isinf(v) ? 1 : 0;
  }
  if (rows > 0 && missing == rows && s.values.size() == static_cast<std::size_t>(rows))
    a.add(s.name, "all_missing", "every value is missing");
  if (infinite > 0) a.add(s.name, "non_finite", std::to_string(infinite) + " infinite values");
}

// Compares one series with its reference namesake; returns its PSI.
double compare(const Series& s, const Series& ref, const Limits& limits, Anomalies& a) {
  if (s.kind != ref.kind || s.source_dtype != ref.source_dtype) {
    a.add(s.name, "type_change",
          "was " + ml::column_kind_name(ref.kind) + " (" + ref.source_dtype + "), is " + ml::column_kind_name(s.kind) +
              " (" + s.source_dtype + ")");
    return 0;
  }
  if (s.kind == ml::ColumnKind::Categorical) {
    std::vector<std::string> unknown;
    std::vector<bool> used(s.categories.size(), false);
    for (const auto v : s.values)
      if (std::isfinite(v) && v >= 0 && v < static_cast<double>(used.size())) used[static_cast<std::size_t>(v)] = true;
    for (std::size_t i = 0; i < used.size(); ++i)
      if (used[i] && std::find(ref.categories.begin(), ref.categories.end(), s.categories[i]) == ref.categories.end())
        unknown.push_back(s.categories[i]);
    if (!unknown.empty()) {
      std::string list;
      for (const auto& u : unknown) list += (list.empty() ? "" : ", ") + u;
      a.add(s.name, "unknown_category", "values not in the reference: " + list);
    }
  } else if (const auto n = out_of_range(s, ref, limits.range_tolerance); n > 0) {
    a.add(s.name, "out_of_range",
          std::to_string(n) + " values (" +
              format_number(100.0 * static_cast<double>(n) / static_cast<double>(s.values.size())) +
              "%) outside the reference range widened by " + format_number(limits.range_tolerance * 100) + "%");
  }
  const double value = psi(s, ref);
  if (value > limits.drift_threshold)
    a.add(s.name, "drift", "PSI " + format_number(value) + " > " + format_number(limits.drift_threshold));
  return value;
}

void compare_features(const ml::Dataset& d, const ml::Dataset& ref, const Limits& limits, json& columns, Anomalies& a) {
  if (d.schema.feature_shape.size() != 1 || ref.schema.feature_shape.size() != 1) {
    if (d.schema.feature_shape != ref.schema.feature_shape) {
      a.add("features", "shape_change",
            "feature_shape " + json(d.schema.feature_shape).dump() + ", reference " +
                json(ref.schema.feature_shape).dump());
      return;
    }
  }
  const auto mine = feature_series(d), theirs = feature_series(ref);
  std::map<std::string, const Series*> by_name;
  for (const auto& s : theirs) by_name[s.name] = &s;
  for (std::size_t i = 0; i < mine.size(); ++i) {
    const auto it = by_name.find(mine[i].name);
    if (it == by_name.end()) {
      a.add(mine[i].name, "unexpected_column", "not in the reference");
      continue;
    }
    columns[i]["psi"] = compare(mine[i], *it->second, limits, a);
    by_name.erase(it);
  }
  for (const auto& s : theirs)
    if (by_name.count(s.name)) a.add(s.name, "missing_column", "in the reference, not in the data");
}

void compare_labels(const ml::Dataset& d, const ml::Dataset& ref, const Limits& limits, json& label, Anomalies& a) {
  if (!ref.schema.label) {
    if (d.schema.label) a.add(d.schema.label->name, "unexpected_label", "the reference is unlabeled");
    return;
  }
  if (!d.schema.label) {
    a.add(ref.schema.label->name, "missing_label", "the reference is labelled, the data is not");
    return;
  }
  if (d.schema.label->task != ref.schema.label->task) {
    a.add(d.schema.label->name, "type_change",
          "task was " + ml::task_name(ref.schema.label->task) + ", is " + ml::task_name(d.schema.label->task));
    return;
  }
  if (d.schema.label->classes != ref.schema.label->classes)
    a.add(d.schema.label->name, "class_change", "the class list differs from the reference's");
  label["psi"] = compare(label_series(d), label_series(ref), limits, a);
}

// One line per anomaly: "column: kind (detail)".
std::string describe_all(const Anomalies& anomalies) {
  std::string out;
  for (const auto& a : anomalies.list())
    out += "\n  " + a["column"].get<std::string>() + ": " + a["kind"].get<std::string>() + " (" +
           a["detail"].get<std::string>() + ")";
  return out;
}

// Output parameters, metric, warnings; fails last, so the report is on disk.
void publish(const Context& ctx, const Anomalies& anomalies, int64_t rows) {
  const auto count = static_cast<int64_t>(anomalies.size());
  ctx.output_metadata("report", json{{"anomalies", count}, {"rows", rows}}.dump());
  ctx.set_output("valid", count == 0);
  ctx.set_output("anomalies", count);
  ctx.metric("anomalies", static_cast<double>(count));
  for (const auto& a : anomalies.list())
    ctx.warning("anomaly in '" + a["column"].get<std::string>() + "': " + a["kind"].get<std::string>() + ": " +
                a["detail"].get<std::string>());
  if (count > 0 && ctx.param_bool("fail_on_anomalies"))
    bad_input(std::to_string(count) + " anomalies (fail_on_anomalies):" + describe_all(anomalies));
  ctx.progress(1.0, "validated");
}

}  // namespace

Manifest Validate::manifest() {
  return Manifest("data.validate", "1.0.0", Kind::Data)
      .description("Statistics of a dataset and anomalies against an optional reference (schema, range, drift)")
      .param(Param::Float("drift_threshold")
                 .default_value(0.2)
                 .min(0)
                 .description("population stability index above which a column has drifted"))
      .param(Param::Float("range_tolerance")
                 .default_value(0.05)
                 .min(0)
                 .description(
                     "values beyond the reference [min, max] widened by this fraction of its range are out of range"))
      .param(Param::Bool("fail_on_anomalies").default_value(false).description("fail the step when anomalies exist"))
      .input(Port("data", "Dataset"))
      .input(Port("reference", "Dataset").optional().description("e.g. the training split"))
      .output(Port("report", "Report").description("report.json: statistics and anomalies"))
      .output_parameter(Port("valid", "bool").description("true when no anomalies were found"))
      .output_parameter(Port("anomalies", "int").description("how many anomalies were found"));
}

void Validate::run(Context& ctx) {
  const auto data = read_dataset(ctx, "data");
  const Limits limits{ctx.param_float("drift_threshold"), ctx.param_float("range_tolerance")};
  Anomalies anomalies;
  if (data.rows() == 0) anomalies.add("", "empty", "the dataset has no rows");
  json columns = json::array();
  for (const auto& s : feature_series(data)) {
    ctx.throw_if_cancelled();
    columns.push_back(describe(s));
    check_alone(s, data.rows(), anomalies);
  }
  json label = data.labels ? describe(label_series(data)) : json(nullptr);
  json report = {
      {"format", "kiln.report/v1"},
      {"rows", data.rows()},
      {"feature_shape", data.schema.feature_shape},
      {"drift",
       {{"metric", "psi"}, {"bins", "reference deciles / categories"}, {"threshold", limits.drift_threshold}}}};
  if (ctx.optional_input_path("reference")) {
    const auto reference = read_dataset(ctx, "reference");
    compare_features(data, reference, limits, columns, anomalies);
    compare_labels(data, reference, limits, label, anomalies);
    report["reference_rows"] = reference.rows();
  }
  report["columns"] = columns;
  report["label"] = label;
  report["anomalies"] = anomalies.list();
  report["valid"] = anomalies.size() == 0;
  ml::write_text_atomic(ctx.output_path("report") / "report.json", report.dump(2) + "\n");
  publish(ctx, anomalies, data.rows());
}

}  // namespace kiln::data

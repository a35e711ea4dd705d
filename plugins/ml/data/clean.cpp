// data.clean: missing/non-finite values (drop, impute or fail), duplicate
// rows, and outlier clipping by z-score or quantiles. Tables only.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string_view>

#include "common.hpp"
#include "components.hpp"

namespace kiln::data {
namespace {

struct Counts {
  int64_t rows_in = 0, rows_out = 0, missing_dropped = 0, missing_imputed = 0, duplicates_dropped = 0,
          values_clipped = 0;
};

// A working copy of the table: features as floats, labels untouched.
struct Table {
  ml::Dataset source;
  std::vector<float> values;
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> kept;  // source row of each row in `values`

  float& at(int64_t r, int64_t c) { return values[static_cast<std::size_t>(r * cols + c)]; }
  bool label_missing(int64_t source_row) const {
    return source.labels && source.labels->dtype == ml::DType::F32 &&
           !std::isfinite(source.labels->data<float>()[source_row]);
  }
  // Keeps the rows for which keep(r) is true.
  template <class Keep>
  int64_t filter(Keep keep) {
    int64_t out = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (!keep(r)) continue;
      std::copy_n(values.begin() + r * cols, cols, values.begin() + out * cols);
      kept[static_cast<std::size_t>(out++)] = kept[static_cast<std::size_t>(r)];
    }
    const auto dropped = rows - out;
    rows = out;
    values.resize(static_cast<std::size_t>(rows * cols));
    kept.resize(static_cast<std::size_t>(rows));
    return dropped;
  }
};

bool row_has_missing(Table& t, int64_t r) {
  for (int64_t c = 0; c < t.cols; ++c)
    if (!std::isfinite(t.at(r, c))) return true;
  return t.label_missing(t.kept[static_cast<std::size_t>(r)]);
}

// The most frequent finite value; ties go to the smallest.
double mode_of(const std::vector<double>& finite) {
  std::map<double, int64_t> counts;
  for (const auto v : finite) ++counts[v];
  double best = 0;
  int64_t best_count = 0;
  for (const auto& [v, n] : counts)
    if (n > best_count) best = v, best_count = n;
  return best;
}

double fill_value(const std::vector<double>& finite, const std::string& method, bool categorical) {
  if (categorical || method == "impute_mode") return mode_of(finite);
  if (method == "impute_median") {
    auto sorted = finite;
    std::sort(sorted.begin(), sorted.end());
    return quantile_sorted(sorted, 0.5);
  }
  double sum = 0;
  for (const auto v : finite) sum += v;
  return sum / static_cast<double>(finite.size());
}

std::vector<double> finite_values(Table& t, int64_t c) {
  std::vector<double> out;
  for (int64_t r = 0; r < t.rows; ++r)
    if (std::isfinite(t.at(r, c))) out.push_back(t.at(r, c));
  return out;
}

void handle_missing(const Context& ctx, Table& t, const std::string& method, Counts& counts) {
  const auto& columns = t.source.schema.columns;
  if (method == "fail") {
    for (int64_t r = 0; r < t.rows; ++r)
      for (int64_t c = 0; c < t.cols; ++c)
        if (!std::isfinite(t.at(r, c)))
          bad_input("row " + std::to_string(r) + ", column '" + columns[static_cast<std::size_t>(c)].name +
                    "': " + (std::isnan(t.at(r, c)) ? "missing value" : "infinite value") + " (missing: fail)");
  }
  // A row without its regression target cannot be imputed: always dropped.
  counts.missing_dropped += t.filter([&](int64_t r) {
    if (method == "drop") return !row_has_missing(t, r);
    if (t.label_missing(t.kept[static_cast<std::size_t>(r)])) {
      if (method == "fail") bad_input("row " + std::to_string(r) + ": the label is missing (missing: fail)");
      return false;
    }
    return true;
  });
  if (method == "drop" || method == "fail") return;
  for (int64_t c = 0; c < t.cols; ++c) {
    const auto finite = finite_values(t, c);
    const bool categorical = columns[static_cast<std::size_t>(c)].kind == ml::ColumnKind::Categorical;
    if (finite.empty() && t.rows > 0)
      ctx.warning("column '" + columns[static_cast<std::size_t>(c)].name + "' has no values; imputing 0");
    const double fill = finite.empty() ? 0.0 : fill_value(finite, method, categorical);
    for (int64_t r = 0; r < t.rows; ++r)
      if (!std::isfinite(t.at(r, c))) {
        t.at(r, c) = static_cast<float>(fill);
        ++counts.missing_imputed;
      }
  }
}

void drop_duplicates(Table& t, Counts& counts) {
  std::set<std::string> seen;
  const auto row_bytes = static_cast<std::size_t>(t.cols) * sizeof(float);
  counts.duplicates_dropped += t.filter([&](int64_t r) {
    std::string key(reinterpret_cast<const char*>(&t.at(r, 0)), row_bytes);
    if (t.source.labels) {
      const auto size = t.source.labels->row_bytes();
      key.append(
          reinterpret_cast<const char*>(t.source.labels->bytes.data()) + t.kept[static_cast<std::size_t>(r)] * size,
          size);
    }
    return seen.insert(std::move(key)).second;
  });
}

// Clipping bounds for a column's finite values.
std::pair<double, double> bounds(std::vector<double> finite, const Context& ctx, const std::string& method) {
  if (method == "zscore") {
    double sum = 0;
    for (const auto v : finite) sum += v;
    const double mean = sum / static_cast<double>(finite.size());
    double squares = 0;
    for (const auto v : finite) squares += (v - mean) * (v - mean);
    const double z = ctx.param_float("zscore") * std::sqrt(squares / static_cast<double>(finite.size()));
    return {mean - z, mean + z};
  }
  std::sort(finite.begin(), finite.end());
  return {quantile_sorted(finite, ctx.param_float("quantile_low")),
          quantile_sorted(finite, ctx.param_float("quantile_high"))};
}

void clip_outliers(const Context& ctx, Table& t, const std::string& method, Counts& counts) {
  if (method == "none") return;
  if (method == "quantile" && ctx.param_float("quantile_low") > ctx.param_float("quantile_high"))
    bad_input("quantile_low must not exceed quantile_high");
  for (int64_t c = 0; c < t.cols; ++c) {
    if (t.source.schema.columns[static_cast<std::size_t>(c)].kind == ml::ColumnKind::Categorical) continue;
    const auto finite = finite_values(t, c);
    if (finite.empty()) continue;
    const auto [lo, hi] = bounds(finite, ctx, method);
    for (int64_t r = 0; r < t.rows; ++r) {
      auto& v = t.at(r, c);
      if (!std::isfinite(v) || (v >= lo && v <= hi)) continue;
      v = static_cast<float>(std::clamp(static_cast<double>(v), lo, hi));
      ++counts.values_clipped;
    }
  }
}

}  // namespace

Manifest Clean::manifest() {
  return Manifest("data.clean", "1.0.0", Kind::Data)
      .description("Drop or impute missing/NaN/inf values, drop duplicate rows, clip outliers (tables)")
      .param(Param::String("missing")
                 .default_value("drop")
                 .choices({"drop", "impute_mean", "impute_median", "impute_mode", "fail"})
                 .description("rows with NaN/inf: drop them, impute per column (categorical: mode), or fail"))
      .param(Param::Bool("drop_duplicates").default_value(false).description("drop repeated rows (features and label)"))
      .param(Param::String("outliers")
                 .default_value("none")
                 .choices({"none", "zscore", "quantile"})
                 .description("clip numeric values (never drops rows)"))
      .param(Param::Float("zscore").default_value(3.0).min(0).description("clip to mean ± zscore·std"))
      .param(Param::Float("quantile_low").default_value(0.01).min(0).max(1).description("lower clip quantile"))
      .param(Param::Float("quantile_high").default_value(0.99).min(0).max(1).description("upper clip quantile"))
      .input(Port("data", "Dataset"))
      .output(Port("data", "Dataset"));
}

void Clean::run(Context& ctx) {
  auto source = read_dataset(ctx, "data");
  if (!source.is_table())
    bad_input("data.clean works on tables; this dataset has feature_shape of rank " +
              std::to_string(source.schema.feature_shape.size()) + " (images have no per-column values to impute)");
  Table t{std::move(source), {}, 0, 0, {}};
  t.values = t.source.features.to_float();
  t.rows = t.source.rows();
  t.cols = t.source.schema.feature_shape[0];
  t.kept.resize(static_cast<std::size_t>(t.rows));
  for (int64_t r = 0; r < t.rows; ++r) t.kept[static_cast<std::size_t>(r)] = r;
  Counts counts;
  counts.rows_in = t.rows;
  handle_missing(ctx, t, ctx.param_string("missing"), counts);
  ctx.throw_if_cancelled();
  if (ctx.param_bool("drop_duplicates")) drop_duplicates(t, counts);
  clip_outliers(ctx, t, ctx.param_string("outliers"), counts);
  counts.rows_out = t.rows;
  auto out = t.source.subset(t.kept);
  out.features = ml::Tensor::from_float(t.values, {t.rows, t.cols});
  out.schema.description += (out.schema.description.empty() ? "" : "; ") + std::string("data.clean");
  const std::pair<const char*, int64_t> metrics[] = {{"rows_in", counts.rows_in},
                                                     {"rows_out", counts.rows_out},
                                                     {"missing_dropped", counts.missing_dropped},
                                                     {"missing_imputed", counts.missing_imputed},
                                                     {"duplicates_dropped", counts.duplicates_dropped},
                                                     {"values_clipped", counts.values_clipped}};
  nlohmann::json meta;
  for (const auto& [name, value] : metrics) {
    ctx.metric(name, static_cast<double>(value));
    meta[name] = value;
  }
  write_dataset(ctx, "data", out, meta);
  ctx.progress(1.0, "cleaned");
}

}  // namespace kiln::data

#include "statistics.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include "common.hpp"

namespace kiln::data {
namespace {

using nlohmann::json;

constexpr double kPsiFloor = 1e-4;
constexpr int kHistogramBins = 10;
constexpr std::size_t kTopCategories = 10;

json number(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

json histogram(const std::vector<float>& sorted) {
  if (sorted.empty()) return nullptr;
  const double lo = sorted.front(), hi = sorted.back();  // widened to double before the bin arithmetic
  std::vector<int64_t> counts(kHistogramBins, 0);
  for (const auto v : sorted) {
    const auto bin = hi > lo ? static_cast<int>((v - lo) / (hi - lo) * kHistogramBins) : 0;
    ++counts[static_cast<std::size_t>(std::min(bin, kHistogramBins - 1))];
  }
  std::vector<double> edges;
  for (int i = 0; i <= kHistogramBins; ++i) edges.push_back(lo + (hi - lo) * i / kHistogramBins);
  return {{"edges", edges}, {"counts", counts}};
}

json describe_numeric(const Series& s) {
  const auto& sorted = s.sorted;
  int64_t missing = 0, infinite = 0;
  for (const auto v : s.values) {
    missing += std::isnan(v) ? 1 : 0;
    infinite += std::isinf(v) ? 1 : 0;
  }
  double sum = 0, squares = 0;
  for (const auto v : sorted) sum += v;
  const double n = static_cast<double>(sorted.size());
  const double mean = sorted.empty() ? NAN : sum / n;
  for (const auto v : sorted) squares += (v - mean) * (v - mean);
  json quantiles = json::object();
  for (const auto q : {0.01, 0.25, 0.5, 0.75, 0.99}) quantiles[format_number(q)] = number(quantile_sorted(sorted, q));
  return {{"count", sorted.size()},
          {"missing", missing},
          {"infinite", infinite},
          {"mean", number(mean)},
          {"std", number(sorted.empty() ? NAN : std::sqrt(squares / n))},
          {"min", number(sorted.empty() ? NAN : sorted.front())},
          {"max", number(sorted.empty() ? NAN : sorted.back())},
          {"quantiles", quantiles},
          {"histogram", histogram(sorted)}};
}

// Counts per category name; indices outside the categories count as "<unknown>".
std::map<std::string, int64_t> category_counts(const Series& s, int64_t& missing) {
  std::map<std::string, int64_t> counts;
  missing = 0;
  for (const auto v : s.values) {
    if (std::isnan(v)) {
      ++missing;
      continue;
    }
    // Range-check before the cast: casting inf or a huge value is undefined.
    const bool known = v == std::floor(v) && v >= 0 && v < static_cast<double>(s.categories.size());
    ++counts[known ? s.categories[static_cast<std::size_t>(v)] : std::string("<unknown>")];
  }
  return counts;
}

json describe_categorical(const Series& s) {
  int64_t missing = 0;
  const auto counts = category_counts(s, missing);
  std::vector<std::pair<std::string, int64_t>> top(counts.begin(), counts.end());
  std::stable_sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (top.size() > kTopCategories) top.resize(kTopCategories);
  json top_json = json::array();
  for (const auto& [value, count] : top) top_json.push_back({{"value", value}, {"count", count}});
  return {{"count", static_cast<int64_t>(s.values.size()) - missing},
          {"missing", missing},
          {"distinct", counts.size()},
          {"top", top_json}};
}

double psi_term(double data, double reference) {
  data = std::max(data, kPsiFloor);
  reference = std::max(reference, kPsiFloor);
  return (data - reference) * std::log(data / reference);
}

}  // namespace

void finish(Series& s) {
  s.sorted.clear();
  if (s.kind != ml::ColumnKind::Numeric) return;
  if (s.source_dtype == "uint8") {
    // Pixels: a counting sort over 0..255 is linear, where std::sort of a
    // channel of tens of millions of values dominates the step.
    std::array<std::size_t, 256> counts{};
    for (const auto v : s.values) ++counts[static_cast<uint8_t>(v)];
    s.sorted.reserve(s.values.size());
    for (std::size_t v = 0; v < counts.size(); ++v) s.sorted.insert(s.sorted.end(), counts[v], static_cast<float>(v));
    return;
  }
  s.sorted.reserve(s.values.size());
  for (const auto v : s.values)
    if (std::isfinite(v)) s.sorted.push_back(v);
  std::sort(s.sorted.begin(), s.sorted.end());
}

std::vector<Series> feature_series(const ml::Dataset& d) {
  const auto values = d.features.to_float();
  const auto rows = d.rows();
  const auto width = d.features.row_numel();
  std::vector<Series> out;
  if (d.schema.feature_shape.size() == 1) {
    for (int64_t j = 0; j < width; ++j) {
      Series s;
      if (!d.schema.columns.empty()) {
        const auto& c = d.schema.columns[static_cast<std::size_t>(j)];
        s = {c.name, c.kind, c.source_dtype, c.categories, {}, {}};
      } else {
        s.name = "f" + std::to_string(j);
      }
      s.values.resize(static_cast<std::size_t>(rows));
      for (int64_t r = 0; r < rows; ++r)
        s.values[static_cast<std::size_t>(r)] = values[static_cast<std::size_t>(r * width + j)];
      finish(s);
      out.push_back(std::move(s));
    }
    return out;
  }
  const auto& shape = d.schema.feature_shape;
  const int64_t channels = shape.size() == 2 ? 1 : shape[0];
  const int64_t per_channel = width / channels;
  for (int64_t c = 0; c < channels; ++c) {
    Series s;
    s.name = "channel_" + std::to_string(c);
    s.source_dtype = d.features.dtype == ml::DType::U8 ? "uint8" : "float32";
    s.values.reserve(static_cast<std::size_t>(rows * per_channel));
    for (int64_t r = 0; r < rows; ++r) {
      const auto* p = values.data() + r * width + c * per_channel;
      s.values.insert(s.values.end(), p, p + per_channel);
    }
    finish(s);
    out.push_back(std::move(s));
  }
  return out;
}

Series label_series(const ml::Dataset& d) {
  Series s;
  s.name = d.schema.label->name;
  s.values = d.labels->to_float();
  if (d.schema.label->task == ml::Task::Classification) {
    s.kind = ml::ColumnKind::Categorical;
    s.categories = d.schema.label->classes;
    s.source_dtype = "int64";
  } else {
    s.source_dtype = "float32";
  }
  finish(s);
  return s;
}

json describe(const Series& s) {
  json out = s.kind == ml::ColumnKind::Numeric ? describe_numeric(s) : describe_categorical(s);
  out["name"] = s.name;
  out["kind"] = ml::column_kind_name(s.kind);
  out["source_dtype"] = s.source_dtype;
  return out;
}

double psi(const Series& data, const Series& reference) {
  if (data.kind == ml::ColumnKind::Categorical) {
    int64_t data_missing = 0, ref_missing = 0;
    const auto d = category_counts(data, data_missing);
    const auto r = category_counts(reference, ref_missing);
    double dn = 0, rn = 0;
    for (const auto& [k, n] : d) dn += static_cast<double>(n);
    for (const auto& [k, n] : r) rn += static_cast<double>(n);
    if (dn == 0 || rn == 0) return 0;
    std::map<std::string, std::pair<double, double>> bins;
    for (const auto& [k, n] : d) bins[k].first = static_cast<double>(n) / dn;
    for (const auto& [k, n] : r) bins[k].second = static_cast<double>(n) / rn;
    double total = 0;
    for (const auto& [k, p] : bins) total += psi_term(p.first, p.second);
    return total;
  }
  const auto& ref = reference.sorted;
  const auto& dat = data.sorted;
  if (ref.empty() || dat.empty()) return 0;
  std::vector<double> edges;
  for (int i = 1; i < 10; ++i) edges.push_back(quantile_sorted(ref, i / 10.0));
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  const auto fractions = [&](const std::vector<float>& values) {
    std::vector<double> f(edges.size() + 1, 0.0);
    for (const auto v : values)
      f[static_cast<std::size_t>(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin())] += 1;
    for (auto& x : f) x /= static_cast<double>(values.size());
    return f;
  };
  const auto fd = fractions(dat), fr = fractions(ref);
  double total = 0;
  for (std::size_t i = 0; i < fd.size(); ++i) total += psi_term(fd[i], fr[i]);
  return total;
}

int64_t out_of_range(const Series& data, const Series& reference, double tolerance) {
  const auto& ref = reference.sorted;
  if (ref.empty()) return 0;
  const double margin = tolerance * (ref.back() - ref.front());
  const double lo = ref.front() - margin, hi = ref.back() + margin;
  int64_t n = 0;
  for (const auto v : data.values)
    if (std::isfinite(v) && (v < lo || v > hi)) ++n;
  return n;
}

}  // namespace kiln::data

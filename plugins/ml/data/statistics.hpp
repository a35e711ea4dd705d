// Per-column statistics and drift for data.validate. A "series" is one
// column of a table, one channel of an image dataset, or the label.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataset.hpp"

namespace kiln::data {

struct Series {
  std::string name;
  ml::ColumnKind kind = ml::ColumnKind::Numeric;
  std::string source_dtype;
  std::vector<std::string> categories;  // Categorical: values are indices into this
  std::vector<float> values;            // NaN = missing
  std::vector<float> sorted;            // Numeric: the finite values, ascending (see finish)
};

// Fills `sorted` once, so statistics, drift and range checks share one sort
// (an image channel can hold tens of millions of values).
void finish(Series& s);

// Table columns, or image channels named channel_0...
std::vector<Series> feature_series(const ml::Dataset& d);
// The label as a series (categorical for classes); requires labels.
Series label_series(const ml::Dataset& d);

// count, missing, infinite, mean, std, min, max, quantiles, histogram (numeric)
// or count, missing, distinct, top (categorical). Non-finite results are null.
nlohmann::json describe(const Series& s);

// Population stability index of `data` against `reference`: numeric values
// binned at the reference's deciles, categories by name; empty bins count as
// 1e-4 so the log stays finite.
double psi(const Series& data, const Series& reference);

// Finite values outside reference [min - tol*range, max + tol*range].
int64_t out_of_range(const Series& data, const Series& reference, double tolerance);

}  // namespace kiln::data

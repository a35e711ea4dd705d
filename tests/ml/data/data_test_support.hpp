// Shared helpers for the data component tests: running a component of
// kiln_data.so and building/reading small datasets.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "dataset.hpp"
#include "test_support.hpp"

namespace kiln::data_test {

namespace fs = std::filesystem;

// A missing value in a numeric column.
inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
using host::Json;
using kiln::test::RecordingSink;
using kiln::test::TempDir;
using Inputs = std::map<std::string, host::InputArtifact>;

// Runs `component` with outputs under dir/<run>/out/<port>.
inline host::StepOutcome run(const std::string& component, const Json& params, const fs::path& dir, RecordingSink& sink,
                             Inputs inputs = {}) {
  return kiln::test::invoke_component(KILN_TEST_DATA_PLUGIN, component, params, dir, sink, std::move(inputs));
}

inline double metric(const RecordingSink& sink, const std::string& name) {
  for (const auto& m : sink.metrics)
    if (m.name == name) return m.value;
  ADD_FAILURE() << "no metric " << name;
  return NAN;
}

inline ml::Dataset output(const fs::path& dir, const std::string& port) {
  return ml::load_dataset(dir / "out" / port);
}

inline std::vector<float> features(const ml::Dataset& d) {
  return d.features.to_float();
}

inline std::vector<int64_t> labels(const ml::Dataset& d) {
  return d.class_labels();
}

inline std::vector<float> targets(const ml::Dataset& d) {
  return d.labels->to_float();
}

// A table dataset: numeric columns named by `names` unless `columns` is given.
inline ml::Dataset table(const std::vector<std::vector<float>>& rows, std::vector<ml::Column> columns,
                         const std::vector<int64_t>& classes = {}, std::vector<std::string> class_names = {}) {
  ml::Dataset d;
  const auto width = static_cast<int64_t>(columns.size());
  d.schema.feature_shape = {width};
  d.schema.columns = std::move(columns);
  std::vector<float> values;
  for (const auto& r : rows) values.insert(values.end(), r.begin(), r.end());
  d.features = ml::Tensor::from_float(values, {static_cast<int64_t>(rows.size()), width});
  if (!class_names.empty()) {
    d.schema.label = ml::LabelInfo{"y", ml::Task::Classification, std::move(class_names)};
    ml::Tensor t(ml::DType::I64, {static_cast<int64_t>(classes.size())});
    std::copy(classes.begin(), classes.end(), t.data<int64_t>());
    d.labels = std::move(t);
  }
  return d;
}

inline ml::Column numeric(const std::string& name) {
  return {name, ml::ColumnKind::Numeric, "float64", {}};
}
inline ml::Column categorical(const std::string& name, std::vector<std::string> categories) {
  return {name, ml::ColumnKind::Categorical, "string", std::move(categories)};
}

// Saves `d` under dir/name and returns it as an input artifact.
inline host::InputArtifact saved(const fs::path& dir, const std::string& name, const ml::Dataset& d) {
  ml::save_dataset(dir / name, d);
  return {dir / name};
}

inline void write_gzip(const fs::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

// The decompressed bytes of the gzip file at `path` ("" when unreadable).
inline std::string gunzip_text(const std::string& path) {
  std::string text;
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return text;
  char buffer[1 << 16];
  for (int n; (n = gzread(f, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<size_t>(n));
  gzclose(f);
  return text;
}

// A file of samples/data (committed: present in every checkout).
inline std::string samples_data(const std::string& name) {
  return (fs::path(KILN_TEST_SAMPLES_DATA_DIR) / name).string();
}

}  // namespace kiln::data_test

#include "torch_test_data.hpp"

#include <array>
#include <cstdlib>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>

namespace kiln::test {
namespace fs = std::filesystem;

namespace {

ml::Column numeric_column(const std::string& name) {
  ml::Column column;
  column.name = name;
  return column;
}

ml::Dataset table(const std::vector<float>& x, int64_t dims, ml::LabelInfo label) {
  ml::Dataset d;
  const auto rows = static_cast<int64_t>(x.size()) / dims;
  d.schema.feature_shape = {dims};
  for (int64_t c = 0; c < dims; ++c) d.schema.columns.push_back(numeric_column("x" + std::to_string(c)));
  d.schema.label = std::move(label);
  d.features = ml::Tensor::from_float(x, {rows, dims});
  return d;
}

ml::Tensor class_tensor(const std::vector<int64_t>& labels) {
  ml::Tensor t(ml::DType::I64, {static_cast<int64_t>(labels.size())});
  std::copy(labels.begin(), labels.end(), t.data<int64_t>());
  return t;
}

std::vector<std::string> class_names(int64_t classes) {
  std::vector<std::string> names;
  for (int64_t k = 0; k < classes; ++k) names.push_back("c" + std::to_string(k));
  return names;
}

std::string gunzip(const fs::path& path) {
  const std::string command = "gzip -dc '" + path.string() + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) return {};
  std::string text;
  std::array<char, 65536> buffer{};
  for (size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0;) text.append(buffer.data(), n);
  return text;
}

}  // namespace

ml::Dataset blobs(int64_t rows, int64_t classes, int64_t dims, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t k = i % classes;
    for (int64_t c = 0; c < dims; ++c) x.push_back((c % classes == k ? 3.0f : 0.0f) + noise(rng));
    y.push_back(k);
  }
  auto d = table(x, dims, {"y", ml::Task::Classification, class_names(classes)});
  d.labels = class_tensor(y);
  return d;
}

ml::Dataset line(int64_t rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x, y;
  for (int64_t i = 0; i < rows; ++i) {
    x.push_back(u(rng));
    y.push_back(2 * x.back() + 1);
  }
  auto d = table(x, 1, {"y", ml::Task::Regression, {}});
  d.labels = ml::Tensor::from_float(y, {rows});
  return d;
}

ml::Dataset halves(int64_t rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dim(0, 60), bright(150, 255);
  ml::Dataset d;
  d.schema.feature_shape = {1, 8, 8};
  d.schema.label = ml::LabelInfo{"half", ml::Task::Classification, {"top", "bottom"}};
  d.features = ml::Tensor(ml::DType::U8, {rows, 1, 8, 8});
  std::vector<int64_t> y;
  auto* pixels = d.features.data<uint8_t>();
  for (int64_t i = 0; i < rows; ++i) {
    y.push_back(i % 2);
    for (int p = 0; p < 64; ++p) {
      const bool lit = (p < 32) == (y.back() == 0);
      pixels[i * 64 + p] = static_cast<uint8_t>(lit ? bright(rng) : dim(rng));
    }
  }
  d.labels = class_tensor(y);
  return d;
}

ml::Dataset sample_digits() {
  const std::string text = gunzip(fs::path(KILN_TEST_SAMPLES_DATA_DIR) / "digits.csv.gz");
  std::vector<float> x;
  std::vector<int64_t> y;
  std::istringstream lines(text);
  for (std::string row; std::getline(lines, row);) {
    std::istringstream cells(row);
    std::vector<float> values;
    for (std::string cell; std::getline(cells, cell, ',');) values.push_back(std::stof(cell));
    if (values.size() != 65) continue;
    x.insert(x.end(), values.begin(), values.end() - 1);
    y.push_back(static_cast<int64_t>(values.back()));
  }
  auto d = table(x, 64, {"digit", ml::Task::Classification, class_names(10)});
  d.labels = class_tensor(y);
  return d;
}

fs::path save(const fs::path& dir, const ml::Dataset& data) {
  ml::save_dataset(dir, data);
  return dir;
}

host::StepOutcome train(const fs::path& dir, const host::Json& params, RecordingSink& sink, const fs::path& train_dir,
                        const fs::path& validation, const fs::path& transform) {
  std::map<std::string, host::InputArtifact> inputs{{"train", {train_dir}}};
  if (!validation.empty()) inputs["validation"] = {validation};
  if (!transform.empty()) inputs["transform"] = {transform};
  return invoke_component(KILN_TEST_TORCH_PLUGIN, "train.torch", params, dir, sink, inputs);
}

host::StepOutcome train_failing_after(int epoch, const fs::path& dir, const host::Json& params, const fs::path& train_dir,
                                      const fs::path& validation) {
  ::setenv("KILN_TEST_TRAIN_FAIL_AFTER_EPOCH", std::to_string(epoch).c_str(), 1);
  RecordingSink failing;
  const host::StepOutcome outcome = train(dir, params, failing, train_dir, validation);
  ::unsetenv("KILN_TEST_TRAIN_FAIL_AFTER_EPOCH");
  return outcome;
}

host::StepOutcome evaluate(const fs::path& dir, const host::Json& params, RecordingSink& sink, const fs::path& model,
                           const fs::path& test) {
  const host::Json given = params.is_null() ? host::Json::object() : params;  // `{}` in a call is null
  return invoke_component(KILN_TEST_TORCH_PLUGIN, "evaluate", given, dir, sink, {{"model", {model}}, {"test", {test}}});
}

host::Json read_json(const fs::path& path) {
  return host::Json::parse(read_text(path));
}

}  // namespace kiln::test

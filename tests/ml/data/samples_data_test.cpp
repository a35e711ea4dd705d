// The real scikit-learn files committed in samples/data, the plugin's
// manifest, and one iris pipeline through split, transform and validate.
#include <kiln/host/plugin_library.hpp>

#include <algorithm>
#include <sstream>

#include "data_test_support.hpp"
#include "transform.hpp"

namespace kiln::data_test {
namespace {

TEST(DataPlugin, DeclaresEveryComponent) {
  const auto library = host::PluginLibrary::load(KILN_TEST_DATA_PLUGIN);
  for (const auto* name :
       {"data.csv", "data.idx", "data.clean", "data.split", "data.transform", "data.augment", "data.validate"})
    EXPECT_NE(library->find(name), nullptr) << name;
}

TEST(DataSamples, DigitsGzippedCsv) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome =
      run("data.csv", {{"path", samples_data("digits.csv.gz")}, {"header", false}, {"label", "-1"}}, dir.path(), sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(d.rows(), 1797);
  EXPECT_EQ(d.schema.feature_shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(d.schema.label->classes.size(), 10u);
  EXPECT_EQ(d.schema.label->classes[9], "9");
}

// scikit-learn's diabetes_data_raw.csv.gz layout (no header, the ten features
// separated by single spaces, gzipped), made from samples/data/diabetes.csv.gz.
TEST(DataSamples, DiabetesWhitespaceFile) {
  TempDir dir;
  std::istringstream csv(gunzip_text(samples_data("diabetes.csv.gz")));
  std::string line, spaced;
  std::getline(csv, line);  // the header
  while (std::getline(csv, line)) {
    line.erase(line.rfind(','));  // the target
    std::replace(line.begin(), line.end(), ',', ' ');
    spaced += line + "\n";
  }
  const auto raw = dir / "diabetes_data_raw.csv.gz";
  write_gzip(raw, spaced);
  RecordingSink sink;
  const auto outcome = run("data.csv", {{"path", raw.string()}, {"header", false}}, dir / "step", sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto d = output(dir / "step", "data");
  EXPECT_EQ(d.rows(), 442);
  EXPECT_EQ(d.schema.feature_shape, (std::vector<int64_t>{10}));
  EXPECT_EQ(d.features.data<float>()[0], 59.0f);  // the first row: 59 2 32.1 ...
  EXPECT_FLOAT_EQ(d.features.data<float>()[2], 32.1f);
}

TEST(DataSamples, SamplePipelineInputsLoad) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome =
      run("data.csv", {{"path", samples_data("diabetes.csv.gz")}, {"label", "target"}, {"task", "regression"}}, dir.path(), sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(d.rows(), 442);
  EXPECT_EQ(d.schema.feature_shape, (std::vector<int64_t>{10}));
  EXPECT_EQ(d.labels->dtype, ml::DType::F32);
}

TEST(DataSamples, IrisThroughSplitTransformAndValidate) {
  TempDir dir;
  RecordingSink sink;
  const auto csv = dir / "csv";
  ASSERT_TRUE(run("data.csv",
                  {{"path", samples_data("iris.csv")},
                   {"header", false},
                   {"skip_rows", 1},
                   {"label", "-1"},
                   {"columns", {"sepal_length", "sepal_width", "petal_length", "petal_width", "species"}},
                   {"class_names", {"setosa", "versicolor", "virginica"}}},
                  csv, sink)
                  .ok);
  const auto iris = output(csv, "data");
  EXPECT_EQ(iris.rows(), 150);
  EXPECT_EQ(iris.schema.feature_shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(iris.schema.label->classes[2], "virginica");

  const auto split = dir / "split";
  ASSERT_TRUE(run("data.split", {{"seed", 1}}, split, sink, {{"data", {csv / "out/data"}}}).ok);
  EXPECT_EQ(output(split, "test").rows(), 30);
  EXPECT_EQ(output(split, "validation").rows(), 15);
  const auto transform = dir / "transform";
  ASSERT_TRUE(run("data.transform", Json::object(), transform, sink,
                  {{"train", {split / "out/train"}},
                   {"validation", {split / "out/validation"}},
                   {"test", {split / "out/test"}}})
                  .ok);
  const auto t = ml::load_transform(transform / "out/transform");
  EXPECT_EQ(t.output_shape(), (std::vector<int64_t>{4}));
  const auto validate = dir / "validate";
  ASSERT_TRUE(run("data.validate", {{"range_tolerance", 0.5}}, validate, sink,
                  {{"data", {split / "out/test"}}, {"reference", {split / "out/train"}}})
                  .ok);
  EXPECT_TRUE(sink.output_parameters.contains("valid"));
}

}  // namespace
}  // namespace kiln::data_test

// data.clean: each policy against hand-computed counts and values.
#include <limits>

#include "data_test_support.hpp"

namespace kiln::data_test {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// x numeric, c categorical {a, b}; rows 1 and 4 have a missing/infinite x,
// row 2 a missing category; rows 0 and 3 are duplicates.
ml::Dataset messy() {
  return table({{1, 0}, {kNaN, 1}, {3, kNaN}, {1, 0}, {kInf, 1}, {2, 1}}, {numeric("x"), categorical("c", {"a", "b"})},
               {0, 1, 1, 0, 1, 1}, {"n", "p"});
}

host::StepOutcome clean(const TempDir& dir, const ml::Dataset& d, const Json& params, RecordingSink& sink) {
  return run("data.clean", params, dir.path(), sink, {{"data", saved(dir.path(), "in", d)}});
}

TEST(DataClean, DropsRowsWithMissingOrInfiniteValues) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(clean(dir, messy(), Json::object(), sink).ok);
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(features(d), (std::vector<float>{1, 0, 1, 0, 2, 1}));
  EXPECT_EQ(labels(d), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(metric(sink, "rows_in"), 6);
  EXPECT_EQ(metric(sink, "rows_out"), 3);
  EXPECT_EQ(metric(sink, "missing_dropped"), 3);
  EXPECT_EQ(metric(sink, "missing_imputed"), 0);
  EXPECT_EQ(sink.output_metadata["data"]["rows_out"], Json(3));
}

TEST(DataClean, ImputesMeanMedianAndCategoricalMode) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(clean(dir, messy(), {{"missing", "impute_mean"}, {"drop_duplicates", true}}, sink).ok);
  const auto f = features(output(dir.path(), "data"));
  // finite x: 1, 3, 1, 2 -> mean 1.75; c: a a b b b -> mode b (1). After
  // imputing, row 3 repeats row 0 and row 4 repeats row 1 (same labels).
  EXPECT_EQ(f, (std::vector<float>{1, 0, 1.75f, 1, 3, 1, 2, 1}));
  EXPECT_EQ(metric(sink, "missing_imputed"), 3);
  EXPECT_EQ(metric(sink, "duplicates_dropped"), 2);
  EXPECT_EQ(metric(sink, "rows_out"), 4);

  TempDir dir2;
  RecordingSink sink2;
  ASSERT_TRUE(clean(dir2, messy(), {{"missing", "impute_median"}}, sink2).ok);
  EXPECT_EQ(features(output(dir2.path(), "data"))[2], 1.5f);  // median of 1, 1, 2, 3
}

TEST(DataClean, DuplicatesNeedTheSameLabel) {
  TempDir dir;
  RecordingSink sink;
  const auto d = table({{1, 2}, {1, 2}, {1, 2}}, {numeric("x"), numeric("y")}, {0, 1, 0}, {"a", "b"});
  ASSERT_TRUE(clean(dir, d, {{"drop_duplicates", true}}, sink).ok);
  EXPECT_EQ(labels(output(dir.path(), "data")), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(metric(sink, "duplicates_dropped"), 1);
}

TEST(DataClean, ClipsByZscore) {
  TempDir dir;
  RecordingSink sink;
  // nine 0s and one 100: mean 10, std 30, z=2 -> [-50, 70]
  std::vector<std::vector<float>> rows(9, {0.0f});
  rows.push_back({100.0f});
  ASSERT_TRUE(clean(dir, table(rows, {numeric("x")}), {{"outliers", "zscore"}, {"zscore", 2.0}}, sink).ok);
  const auto f = features(output(dir.path(), "data"));
  EXPECT_EQ(f.back(), 70.0f);
  EXPECT_EQ(f.front(), 0.0f);
  EXPECT_EQ(metric(sink, "values_clipped"), 1);
  EXPECT_EQ(metric(sink, "rows_out"), 10);
}

TEST(DataClean, ClipsByQuantileButNotCategories) {
  TempDir dir;
  RecordingSink sink;
  std::vector<std::vector<float>> rows;
  for (int i = 0; i <= 10; ++i) rows.push_back({static_cast<float>(i), static_cast<float>(i % 2)});
  const auto d = table(rows, {numeric("x"), categorical("c", {"a", "b"})});
  ASSERT_TRUE(clean(dir, d, {{"outliers", "quantile"}, {"quantile_low", 0.1}, {"quantile_high", 0.9}}, sink).ok);
  const auto f = features(output(dir.path(), "data"));
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[20], 9.0f);
  EXPECT_EQ(f[21], 0.0f);
  EXPECT_EQ(metric(sink, "values_clipped"), 2);
}

TEST(DataClean, FailPolicyNamesTheColumnAndImagesAreRejected) {
  TempDir dir;
  RecordingSink sink;
  auto outcome = clean(dir, messy(), {{"missing", "fail"}}, sink);
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(outcome.message.find("row 1, column 'x': missing value"), std::string::npos) << outcome.message;

  TempDir dir2;
  ml::Dataset image;
  image.schema.feature_shape = {1, 2, 2};
  image.features = ml::Tensor(ml::DType::U8, {1, 1, 2, 2});
  outcome = clean(dir2, image, Json::object(), sink);
  ASSERT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find("data.clean works on tables"), std::string::npos) << outcome.message;
}

TEST(DataClean, RegressionRowsWithoutTargetAreDropped) {
  TempDir dir;
  RecordingSink sink;
  auto d = table({{1}, {2}, {3}}, {numeric("x")});
  d.schema.label = ml::LabelInfo{"t", ml::Task::Regression, {}};
  d.labels = ml::Tensor::from_float({0.5f, kNaN, 1.5f}, {3});
  ASSERT_TRUE(clean(dir, d, {{"missing", "impute_mean"}}, sink).ok);
  const auto out = output(dir.path(), "data");
  EXPECT_EQ(features(out), (std::vector<float>{1, 3}));
  EXPECT_EQ(targets(out), (std::vector<float>{0.5f, 1.5f}));
  EXPECT_EQ(metric(sink, "missing_dropped"), 1);
}

}  // namespace
}  // namespace kiln::data_test

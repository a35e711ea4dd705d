// data.transform and kiln::ml::Transform: statistics from train only, the
// artifact round trip, one-hot, images, and constant columns.
#include <cmath>
#include <limits>

#include "data_test_support.hpp"
#include "transform.hpp"

namespace kiln::data_test {
namespace {

// x: 1 2 3 (mean 2, population std sqrt(2/3)); k: constant 5; c: {a, b, c}.
ml::Dataset train_set() {
  return table({{1, 5, 0}, {2, 5, 2}, {3, 5, 1}}, {numeric("x"), numeric("k"), categorical("c", {"a", "b", "c"})},
               {0, 1, 0}, {"n", "p"});
}

TEST(DataTransform, StandardizesWithTrainStatisticsOnlyAndOneHotEncodes) {
  TempDir dir;
  RecordingSink sink;
  const auto validation = table({{10, 7, 2}, {2, 5, kNaN}}, train_set().schema.columns, {1, 0}, {"n", "p"});
  const auto outcome = run(
      "data.transform", Json::object(), dir.path(), sink,
      {{"train", saved(dir.path(), "train_in", train_set())}, {"validation", saved(dir.path(), "val_in", validation)}});
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const double inv_std = 1.0 / std::sqrt(2.0 / 3.0);
  const auto train = output(dir.path(), "train");
  ASSERT_EQ(train.schema.feature_shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(train.schema.columns[2].name, "c=a");
  EXPECT_EQ(train.schema.columns[4].name, "c=c");
  const auto t = features(train);
  EXPECT_NEAR(t[0], -inv_std, 1e-6);
  EXPECT_EQ(t[1], 0.0f);  // constant column: 0, not NaN
  EXPECT_EQ((std::vector<float>(t.begin() + 2, t.begin() + 5)), (std::vector<float>{1, 0, 0}));
  EXPECT_EQ((std::vector<float>(t.begin() + 12, t.begin() + 15)), (std::vector<float>{0, 1, 0}));
  // Validation uses train's mean/std, so 10 -> (10 - 2) / std, k 7 -> 2.
  const auto v = features(output(dir.path(), "validation"));
  EXPECT_NEAR(v[0], 8 * inv_std, 1e-5);
  EXPECT_EQ(v[1], 2.0f);
  EXPECT_EQ((std::vector<float>(v.begin() + 2, v.begin() + 5)), (std::vector<float>{0, 0, 1}));
  EXPECT_EQ((std::vector<float>(v.begin() + 7, v.begin() + 10)), (std::vector<float>{0, 0, 0}));  // missing
  EXPECT_EQ(labels(output(dir.path(), "validation")), (std::vector<int64_t>{1, 0}));
  // An unwired split becomes a valid 0-row dataset with the output schema.
  const auto test = output(dir.path(), "test");
  EXPECT_EQ(test.rows(), 0);
  EXPECT_EQ(test.schema.feature_shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(metric(sink, "features_out"), 5);
}

TEST(DataTransform, ArtifactReloadsAndAppliesToRawRowsLikeTheStep) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(
      run("data.transform", Json::object(), dir.path(), sink, {{"train", saved(dir.path(), "in", train_set())}}).ok);
  const auto t = ml::load_transform(dir / "out/transform");
  EXPECT_EQ(t.output_shape(), (std::vector<int64_t>{5}));
  EXPECT_EQ(t.input_columns.size(), 3u);
  ASSERT_EQ(t.ops.size(), 2u);
  EXPECT_EQ(t.ops[0].kind, ml::TransformOpKind::Affine);
  EXPECT_DOUBLE_EQ(t.ops[0].shift[0], 2.0);
  EXPECT_EQ(t.ops[1].kind, ml::TransformOpKind::OneHot);
  const float raw[] = {ml::encode_field(t.input_columns[0], "3"), ml::encode_field(t.input_columns[1], "5"),
                       ml::encode_field(t.input_columns[2], "b")};
  std::vector<float> out;
  ml::apply_transform(t, raw, 1, out);
  const auto expected = features(output(dir.path(), "train"));
  EXPECT_EQ(out, (std::vector<float>(expected.begin() + 10, expected.end())));
  EXPECT_EQ(ml::encode_field(t.input_columns[2], "zebra"), -1.0f);
  EXPECT_TRUE(std::isnan(ml::encode_field(t.input_columns[0], "")));
  const auto json = kiln::test::read_text(dir / "out/transform/transform.json");
  EXPECT_NE(json.find("\"format\": \"kiln.transform/v1\""), std::string::npos);
  const auto again = ml::transform_from_json(ml::transform_to_json(t), "again");
  EXPECT_EQ(ml::transform_to_json(again), ml::transform_to_json(t));
}

TEST(DataTransform, MissingTrainValuesStayNaNWithAWarning) {
  TempDir dir;
  RecordingSink sink;
  const auto train = table({{1}, {kNaN}, {3}}, {numeric("x")});
  ASSERT_TRUE(run("data.transform", Json::object(), dir.path(), sink, {{"train", saved(dir.path(), "in", train)}}).ok);
  const auto f = features(output(dir.path(), "train"));
  EXPECT_EQ(f[0], -1.0f);  // mean 2 and std 1 from the two present values
  EXPECT_TRUE(std::isnan(f[1]));
  bool warned = false;
  for (const auto& [level, message] : sink.logs)
    warned = warned || (level == KILN_LOG_WARNING && message.find("column 'x' has 1 missing") != std::string::npos);
  EXPECT_TRUE(warned);
}

TEST(DataTransform, MinMaxOnChosenColumnsWithoutOneHot) {
  TempDir dir;
  RecordingSink sink;
  const auto train =
      table({{2, 1, 0}, {4, 2, 1}, {6, 3, 0}}, {numeric("x"), numeric("y"), categorical("c", {"a", "b"})});
  const auto test = table({{8, 9, 1}}, train.schema.columns);
  ASSERT_TRUE(run("data.transform", {{"scale", "minmax"}, {"columns", {"x"}}, {"one_hot", false}}, dir.path(), sink,
                  {{"train", saved(dir.path(), "a", train)}, {"test", saved(dir.path(), "b", test)}})
                  .ok);
  EXPECT_EQ(features(output(dir.path(), "train")), (std::vector<float>{0, 1, 0, 0.5f, 2, 1, 1, 3, 0}));
  EXPECT_EQ(features(output(dir.path(), "test")), (std::vector<float>{1.5f, 9, 1}));
  EXPECT_EQ(output(dir.path(), "test").schema.columns[2].kind, ml::ColumnKind::Categorical);
}

TEST(DataTransform, ImagesScalePerChannel) {
  TempDir dir;
  RecordingSink sink;
  ml::Dataset images;
  images.schema.feature_shape = {2, 1, 2};  // two channels of 1x2
  images.features = ml::Tensor(ml::DType::U8, {2, 2, 1, 2});
  const uint8_t pixels[] = {0, 10, 100, 100, 20, 30, 100, 100};  // channel 1 is constant
  std::copy(std::begin(pixels), std::end(pixels), images.features.data<uint8_t>());
  ASSERT_TRUE(
      run("data.transform", {{"scale", "minmax"}}, dir.path(), sink, {{"train", saved(dir.path(), "in", images)}}).ok);
  const auto out = output(dir.path(), "train");
  EXPECT_EQ(out.features.dtype, ml::DType::F32);
  EXPECT_EQ(features(out), (std::vector<float>{0, 1.0f / 3, 0, 0, 2.0f / 3, 1, 0, 0}));
  TempDir dir2;
  ASSERT_TRUE(
      run("data.transform", Json::object(), dir2.path(), sink, {{"train", saved(dir2.path(), "in", images)}}).ok);
  const auto s = features(output(dir2.path(), "train"));
  EXPECT_NEAR(s[0] + s[1] + s[4] + s[5], 0.0, 1e-5);  // channel 0 has mean 0
  EXPECT_EQ(s[2], 0.0f);
}

TEST(DataTransform, MismatchedSplitAndBadArtifactsAreErrors) {
  TempDir dir;
  RecordingSink sink;
  const auto other = table({{1, 2}}, {numeric("x"), numeric("y")});
  const auto outcome = run("data.transform", Json::object(), dir.path(), sink,
                           {{"train", saved(dir.path(), "a", train_set())}, {"test", saved(dir.path(), "b", other)}});
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(outcome.message.find("input 'test' does not match train"), std::string::npos) << outcome.message;

  ml::Transform t;
  t.input_shape = {2};
  t.input_columns = {numeric("a"), categorical("b", {"u", "v"})};
  t.ops.push_back({ml::TransformOpKind::OneHot, "one_hot", {1}, {}, {}, {2}});
  t.ops.push_back({ml::TransformOpKind::Affine, "standardize", {0}, {0.0}, {1.0}, {}});
  t.output_columns = {numeric("a"), numeric("b=u"), numeric("b=v")};
  EXPECT_THROW(ml::save_transform(dir / "bad", t), std::runtime_error);  // one_hot not last
  EXPECT_THROW(ml::transform_from_json("{\"format\": \"other\"}", "x.json"), std::runtime_error);
  EXPECT_THROW(ml::load_transform(dir / "absent"), std::runtime_error);
}

}  // namespace
}  // namespace kiln::data_test

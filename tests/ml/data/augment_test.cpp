// data.augment: geometry of image copies, noise statistics, oversampling
// counts, and reproducibility for a seed.
#include <cmath>
#include <numeric>

#include "data_test_support.hpp"

namespace kiln::data_test {
namespace {

// One 1x5x5 U8 image whose only lit pixel is (row, col).
ml::Dataset dot(int64_t row, int64_t col, uint8_t value = 255) {
  ml::Dataset d;
  d.schema.feature_shape = {1, 5, 5};
  d.features = ml::Tensor(ml::DType::U8, {1, 1, 5, 5});
  d.features.data<uint8_t>()[row * 5 + col] = value;
  d.schema.label = ml::LabelInfo{"label", ml::Task::Classification, {"a", "b"}};
  d.labels = ml::Tensor(ml::DType::I64, {1});
  d.labels->data<int64_t>()[0] = 1;
  return d;
}

ml::Dataset augment(const ml::Dataset& d, const Json& params, RecordingSink& sink) {
  TempDir dir;
  const auto outcome = run("data.augment", params, dir.path(), sink, {{"data", saved(dir.path(), "in", d)}});
  EXPECT_TRUE(outcome.ok) << outcome.message;
  return outcome.ok ? output(dir.path(), "data") : ml::Dataset{};
}

TEST(DataAugment, ShiftsMoveThePixelByAtMostShift) {
  RecordingSink sink;
  const auto out = augment(dot(2, 2), {{"copies", 20}, {"shift", 1}, {"seed", 3}}, sink);
  ASSERT_EQ(out.rows(), 21);
  EXPECT_EQ(out.features.dtype, ml::DType::U8);
  const auto* p = out.features.data<uint8_t>();
  EXPECT_EQ(p[12], 255);  // the original comes first, unchanged
  int moved = 0;
  for (int64_t r = 1; r < 21; ++r) {
    int lit = 0;
    for (int64_t k = 0; k < 25; ++k) {
      if (p[r * 25 + k] == 0) continue;
      ++lit;
      EXPECT_EQ(p[r * 25 + k], 255);
      EXPECT_LE(std::abs(k / 5 - 2), 1);
      EXPECT_LE(std::abs(k % 5 - 2), 1);
      moved += k != 12;
    }
    EXPECT_EQ(lit, 1);
  }
  EXPECT_GT(moved, 0);
  EXPECT_EQ(labels(out), std::vector<int64_t>(21, 1));
  EXPECT_EQ(metric(sink, "rows_out"), 21);
}

TEST(DataAugment, FlipsMirrorAndRotationsKeepTheCentre) {
  RecordingSink sink;
  const auto flipped = augment(dot(0, 0), {{"copies", 10}, {"flip_horizontal", true}, {"seed", 1}}, sink);
  int left = 0, right = 0;
  for (int64_t r = 1; r < 11; ++r) {
    left += flipped.features.data<uint8_t>()[r * 25 + 0] == 255;
    right += flipped.features.data<uint8_t>()[r * 25 + 4] == 255;
  }
  EXPECT_EQ(left + right, 10);
  EXPECT_GT(left, 0);
  EXPECT_GT(right, 0);
  const auto rotated = augment(dot(2, 2, 200), {{"copies", 5}, {"rotation", 90.0}, {"seed", 2}}, sink);
  for (int64_t r = 0; r < 6; ++r) EXPECT_EQ(rotated.features.data<uint8_t>()[r * 25 + 12], 200);
}

TEST(DataAugment, SameSeedSameBytes) {
  RecordingSink sink;
  const Json params = {{"copies", 3}, {"shift", 2}, {"rotation", 15.0}, {"noise", 5.0}, {"seed", 9}};
  const auto a = augment(dot(1, 3), params, sink), b = augment(dot(1, 3), params, sink);
  EXPECT_EQ(a.features.bytes, b.features.bytes);
  auto other = params;
  other["seed"] = 10;
  EXPECT_NE(augment(dot(1, 3), other, sink).features.bytes, a.features.bytes);
}

TEST(DataAugment, TabularNoiseHasTheRequestedSpreadAndSparesCategories) {
  RecordingSink sink;
  const auto d = table({{10, 1}}, {numeric("x"), categorical("c", {"a", "b"})});
  const auto out = augment(d, {{"copies", 400}, {"noise", 0.5}, {"seed", 4}}, sink);
  const auto f = features(out);
  ASSERT_EQ(out.rows(), 401);
  EXPECT_EQ(f[0], 10.0f);
  double sum = 0, squares = 0;
  for (int64_t r = 1; r < 401; ++r) {
    sum += f[static_cast<std::size_t>(r * 2)];
    EXPECT_EQ(f[static_cast<std::size_t>(r * 2 + 1)], 1.0f);
  }
  const double mean = sum / 400;
  for (int64_t r = 1; r < 401; ++r) squares += std::pow(f[static_cast<std::size_t>(r * 2)] - mean, 2);
  EXPECT_NEAR(mean, 10.0, 0.1);
  EXPECT_NEAR(std::sqrt(squares / 400), 0.5, 0.06);
}

TEST(DataAugment, OversamplingBalancesClasses) {
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < 8; ++i) rows.push_back({static_cast<float>(i)});
  const auto d = table(rows, {numeric("x")}, {0, 0, 0, 0, 0, 0, 1, 1}, {"big", "small"});
  RecordingSink sink;
  const auto out = augment(d, {{"copies", 0}, {"oversample", true}}, sink);
  const auto l = labels(out);
  EXPECT_EQ(out.rows(), 12);
  EXPECT_EQ(std::count(l.begin(), l.end(), 1), 6);
  EXPECT_EQ(metric(sink, "oversampled"), 4);
  const auto f = features(out);
  for (int64_t r = 8; r < 12; ++r) EXPECT_GE(f[static_cast<std::size_t>(r)], 6.0f);  // copies of rows 6 and 7
  RecordingSink sink2;
  const auto doubled = augment(d, {{"copies", 1}, {"oversample", true}, {"noise", 0.1}}, sink2);
  const auto l2 = labels(doubled);
  EXPECT_EQ(doubled.rows(), 24);
  EXPECT_EQ(std::count(l2.begin(), l2.end(), 0), 12);
}

TEST(DataAugment, OversamplingNeedsClasses) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = run("data.augment", {{"oversample", true}}, dir.path(), sink,
                           {{"data", saved(dir.path(), "in", table({{1}}, {numeric("x")}))}});
  ASSERT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find("oversample needs class labels"), std::string::npos) << outcome.message;
}

}  // namespace
}  // namespace kiln::data_test

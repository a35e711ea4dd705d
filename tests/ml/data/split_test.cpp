// data.split: stratified counts, reproducibility, disjointness and k-fold.
#include <algorithm>
#include <set>

#include "data_test_support.hpp"

namespace kiln::data_test {
namespace {

// Rows whose only feature is their index, so outputs tell which rows they hold.
ml::Dataset indexed(const std::vector<int64_t>& classes, std::size_t class_count) {
  std::vector<std::vector<float>> rows;
  for (std::size_t i = 0; i < classes.size(); ++i) rows.push_back({static_cast<float>(i)});
  std::vector<std::string> names;
  for (std::size_t c = 0; c < class_count; ++c) names.push_back("c" + std::to_string(c));
  return table(rows, {numeric("id")}, classes, names);
}

std::vector<int64_t> repeat(const std::vector<std::pair<int64_t, int>>& counts) {
  std::vector<int64_t> out;
  for (const auto& [label, n] : counts) out.insert(out.end(), static_cast<std::size_t>(n), label);
  return out;
}

struct Result {
  std::vector<int64_t> train, validation, test;  // row ids
};

std::vector<int64_t> ids(const ml::Dataset& d) {
  std::vector<int64_t> out;
  for (const auto v : features(d)) out.push_back(static_cast<int64_t>(v));
  return out;
}

int64_t count_class(const ml::Dataset& d, int64_t c) {
  const auto l = labels(d);
  return std::count(l.begin(), l.end(), c);
}

Result split(const ml::Dataset& d, const Json& params, RecordingSink& sink) {
  TempDir dir;
  const auto outcome = run("data.split", params, dir.path(), sink, {{"data", saved(dir.path(), "in", d)}});
  EXPECT_TRUE(outcome.ok) << outcome.message;
  if (!outcome.ok) return {};
  return {ids(output(dir.path(), "train")), ids(output(dir.path(), "validation")), ids(output(dir.path(), "test"))};
}

TEST(DataSplit, StratifiedCountsAreExactAndPartsDisjoint) {
  const auto d = indexed(repeat({{0, 60}, {1, 40}}), 2);
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(run("data.split", {{"validation", 0.1}, {"test", 0.2}, {"seed", 7}}, dir.path(), sink,
                  {{"data", saved(dir.path(), "in", d)}})
                  .ok);
  const auto train = output(dir.path(), "train"), val = output(dir.path(), "validation"),
             test = output(dir.path(), "test");
  EXPECT_EQ(count_class(test, 0), 12);
  EXPECT_EQ(count_class(test, 1), 8);
  EXPECT_EQ(count_class(val, 0), 6);
  EXPECT_EQ(count_class(val, 1), 4);
  EXPECT_EQ(count_class(train, 0), 42);
  EXPECT_EQ(count_class(train, 1), 28);
  EXPECT_EQ(metric(sink, "train_rows"), 70);
  std::set<int64_t> all;
  for (const auto* part : {&train, &val, &test})
    for (const auto id : ids(*part)) EXPECT_TRUE(all.insert(id).second) << "row " << id << " in two parts";
  EXPECT_EQ(all.size(), 100u);
  // Labels travel with their rows.
  const auto l = labels(test);
  const auto rows = ids(test);
  for (std::size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(l[i], rows[i] < 60 ? 0 : 1);
}

TEST(DataSplit, SameSeedSameSplitOtherSeedOtherSplit) {
  const auto d = indexed(repeat({{0, 30}, {1, 20}, {2, 10}}), 3);
  RecordingSink sink;
  const auto a = split(d, {{"seed", 11}}, sink), b = split(d, {{"seed", 11}}, sink), c = split(d, {{"seed", 12}}, sink);
  EXPECT_EQ(a.test, b.test);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_EQ(a.train, b.train);
  EXPECT_NE(a.test, c.test);
}

TEST(DataSplit, KnownAnswerIsPortable) {
  // mt19937_64 and the hand-written Fisher–Yates fix this exact answer on
  // every platform (checked against an independent Python implementation of
  // the documented algorithm); a change here breaks users' reproducibility.
  const auto d = indexed(repeat({{0, 6}, {1, 4}}), 2);
  RecordingSink sink;
  const auto r = split(d, {{"seed", 42}, {"validation", 0.2}, {"test", 0.2}}, sink);
  EXPECT_EQ(r.test, (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(r.validation, (std::vector<int64_t>{1, 9}));
}

TEST(DataSplit, RemaindersGoToLargestFractionsAndTotalsMatch) {
  // test 0.5 of 7 + 3 rows: ideal 3.5 and 1.5, total round(5) = 5 -> 4 and 1
  const auto d = indexed(repeat({{0, 7}, {1, 3}}), 2);
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(
      run("data.split", {{"validation", 0.0}, {"test", 0.5}}, dir.path(), sink, {{"data", saved(dir.path(), "in", d)}})
          .ok);
  const auto test = output(dir.path(), "test");
  EXPECT_EQ(test.rows(), 5);
  EXPECT_EQ(count_class(test, 0), 4);
  EXPECT_EQ(count_class(test, 1), 1);
  EXPECT_EQ(output(dir.path(), "validation").rows(), 0);
}

TEST(DataSplit, UnstratifiedForRegression) {
  auto d = table(std::vector<std::vector<float>>(50, {1.0f}), {numeric("x")});
  d.schema.label = ml::LabelInfo{"t", ml::Task::Regression, {}};
  d.labels = ml::Tensor::from_float(std::vector<float>(50, 2.0f), {50});
  RecordingSink sink;
  const auto r = split(d, {{"validation", 0.1}, {"test", 0.2}}, sink);
  EXPECT_EQ(r.test.size(), 10u);
  EXPECT_EQ(r.validation.size(), 5u);
  EXPECT_EQ(r.train.size(), 35u);
}

TEST(DataSplit, KFoldKeepsTestFixedAndCoversTheRestOnce) {
  const auto d = indexed(repeat({{0, 10}, {1, 10}, {2, 10}}), 3);
  std::vector<int64_t> first_test;
  std::multiset<int64_t> validated;
  for (int fold = 0; fold < 3; ++fold) {
    RecordingSink sink;
    const auto r = split(d, {{"folds", 3}, {"fold", fold}, {"test", 0.2}, {"seed", 5}}, sink);
    if (fold == 0) first_test = r.test;
    EXPECT_EQ(r.test, first_test);
    EXPECT_EQ(r.test.size(), 6u);
    EXPECT_EQ(r.validation.size(), 8u);
    EXPECT_EQ(r.train.size(), 16u);
    validated.insert(r.validation.begin(), r.validation.end());
    for (const auto id : r.validation) EXPECT_EQ(std::count(r.train.begin(), r.train.end(), id), 0);
  }
  EXPECT_EQ(validated.size(), 24u);
  EXPECT_EQ(std::set<int64_t>(validated.begin(), validated.end()).size(), 24u);
}

TEST(DataSplit, RejectsBadFractionsAndFolds) {
  const auto d = indexed(repeat({{0, 5}, {1, 5}}), 2);
  for (const auto& params :
       {Json{{"validation", 0.5}, {"test", 0.5}}, Json{{"folds", 3}, {"fold", 3}}, Json{{"folds", 1}}}) {
    TempDir dir;
    RecordingSink sink;
    const auto outcome = run("data.split", params, dir.path(), sink, {{"data", saved(dir.path(), "in", d)}});
    EXPECT_FALSE(outcome.ok) << params.dump();
    EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
  }
}

}  // namespace
}  // namespace kiln::data_test

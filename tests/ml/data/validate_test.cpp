// data.validate: statistics with known values, anomalies against a
// reference, output parameters and fail_on_anomalies.
#include <limits>
#include <nlohmann/json.hpp>

#include "data_test_support.hpp"

namespace kiln::data_test {
namespace {

using nlohmann::json;

json report(const fs::path& dir) {
  return json::parse(kiln::test::read_text(dir / "out/report/report.json"));
}

std::vector<std::string> kinds_of(const json& r, const std::string& column) {
  std::vector<std::string> out;
  for (const auto& a : r["anomalies"])
    if (a["column"] == column) out.push_back(a["kind"]);
  return out;
}

ml::Dataset sample() {
  return table({{1, 0}, {2, 0}, {3, 1}, {4, 0}, {kNaN, 0}}, {numeric("x"), categorical("c", {"a", "b"})},
               {0, 1, 1, 1, 0}, {"n", "p"});
}

TEST(DataValidate, ReportsStatisticsWithKnownValues) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(run("data.validate", Json::object(), dir.path(), sink, {{"data", saved(dir.path(), "in", sample())}}).ok);
  const auto r = report(dir.path());
  const auto& x = r["columns"][0];
  EXPECT_EQ(x["name"], "x");
  EXPECT_EQ(x["count"], 4);
  EXPECT_EQ(x["missing"], 1);
  EXPECT_DOUBLE_EQ(x["mean"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(x["std"].get<double>(), std::sqrt(1.25));
  EXPECT_EQ(x["min"], 1.0);
  EXPECT_EQ(x["max"], 4.0);
  EXPECT_DOUBLE_EQ(x["quantiles"]["0.5"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(x["quantiles"]["0.25"].get<double>(), 1.75);
  EXPECT_EQ(x["histogram"]["counts"][0], 1);
  EXPECT_EQ(x["histogram"]["counts"][9], 1);
  const auto& c = r["columns"][1];
  EXPECT_EQ(c["distinct"], 2);
  EXPECT_EQ(c["top"][0]["value"], "a");
  EXPECT_EQ(c["top"][0]["count"], 4);
  EXPECT_EQ(r["label"]["top"][0]["value"], "p");
  EXPECT_EQ(r["valid"], true);
  EXPECT_EQ(sink.output_parameters["valid"], Json(true));
  EXPECT_EQ(sink.output_parameters["anomalies"], Json(0));
}

TEST(DataValidate, MatchingReferenceHasNoAnomalies) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(run("data.validate", Json::object(), dir.path(), sink,
                  {{"data", saved(dir.path(), "a", sample())}, {"reference", saved(dir.path(), "b", sample())}})
                  .ok);
  const auto r = report(dir.path());
  EXPECT_EQ(r["anomalies"].size(), 0u) << r["anomalies"].dump();
  EXPECT_DOUBLE_EQ(r["columns"][0]["psi"].get<double>(), 0.0);
  EXPECT_EQ(sink.output_parameters["valid"], Json(true));
}

TEST(DataValidate, FindsSchemaRangeCategoryAndDriftAnomalies) {
  std::vector<std::vector<float>> ref_rows, data_rows;
  for (int i = 0; i < 100; ++i) {
    ref_rows.push_back({static_cast<float>(i % 10), 0, static_cast<float>(i % 2), 1});
    data_rows.push_back({static_cast<float>(i % 10 + 20), 1, static_cast<float>(i % 3), 2});
  }
  const auto reference = table(ref_rows, {numeric("x"), numeric("gone"), categorical("c", {"a", "b"}), numeric("t")});
  auto t_categorical = categorical("t", {"0", "1", "2"});
  const auto data =
      table(data_rows, {numeric("x"), numeric("extra"), categorical("c", {"a", "b", "z"}), t_categorical});
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(run("data.validate", {{"drift_threshold", 0.25}}, dir.path(), sink,
                  {{"data", saved(dir.path(), "a", data)}, {"reference", saved(dir.path(), "b", reference)}})
                  .ok);
  const auto r = report(dir.path());
  EXPECT_EQ(kinds_of(r, "x"), (std::vector<std::string>{"out_of_range", "drift"}));
  EXPECT_EQ(kinds_of(r, "extra"), (std::vector<std::string>{"unexpected_column"}));
  EXPECT_EQ(kinds_of(r, "gone"), (std::vector<std::string>{"missing_column"}));
  EXPECT_EQ(kinds_of(r, "c")[0], "unknown_category");
  EXPECT_EQ(kinds_of(r, "t"), (std::vector<std::string>{"type_change"}));
  EXPECT_EQ(r["valid"], false);
  EXPECT_EQ(sink.output_parameters["anomalies"], Json(r["anomalies"].size()));
  EXPECT_EQ(metric(sink, "anomalies"), static_cast<double>(r["anomalies"].size()));
  EXPECT_GT(r["columns"][0]["psi"].get<double>(), 0.25);
}

TEST(DataValidate, LabelChangesAndNonFiniteValuesAreAnomalies) {
  auto data = sample();
  data.features.data<float>()[0] = std::numeric_limits<float>::infinity();
  auto reference = sample();
  reference.schema.label->classes = {"n", "p", "q"};
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(run("data.validate", Json::object(), dir.path(), sink,
                  {{"data", saved(dir.path(), "a", data)}, {"reference", saved(dir.path(), "b", reference)}})
                  .ok);
  const auto r = report(dir.path());
  EXPECT_EQ(kinds_of(r, "x")[0], "non_finite");
  EXPECT_EQ(kinds_of(r, "y")[0], "class_change");
}

TEST(DataValidate, FailOnAnomaliesFailsAfterWritingTheReport) {
  auto reference = sample();
  reference.schema.columns[0].name = "renamed";
  TempDir dir;
  RecordingSink sink;
  const auto outcome =
      run("data.validate", {{"fail_on_anomalies", true}}, dir.path(), sink,
          {{"data", saved(dir.path(), "a", sample())}, {"reference", saved(dir.path(), "b", reference)}});
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(outcome.message.find("x: unexpected_column"), std::string::npos) << outcome.message;
  EXPECT_NE(outcome.message.find("renamed: missing_column"), std::string::npos) << outcome.message;
  EXPECT_EQ(report(dir.path())["valid"], false);
}

TEST(DataValidate, ImageChannelsAreSeries) {
  ml::Dataset images;
  images.schema.feature_shape = {1, 2, 2};
  images.features = ml::Tensor(ml::DType::U8, {2, 1, 2, 2});
  for (int i = 0; i < 8; ++i) images.features.data<uint8_t>()[i] = static_cast<uint8_t>(i * 10);
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(run("data.validate", Json::object(), dir.path(), sink, {{"data", saved(dir.path(), "in", images)}}).ok);
  const auto r = report(dir.path());
  EXPECT_EQ(r["columns"][0]["name"], "channel_0");
  EXPECT_EQ(r["columns"][0]["count"], 8);
  EXPECT_DOUBLE_EQ(r["columns"][0]["mean"].get<double>(), 35.0);
  EXPECT_EQ(r["label"], nullptr);
}

}  // namespace
}  // namespace kiln::data_test

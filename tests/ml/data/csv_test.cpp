// data.csv: parsing, typing, labels and every bad-input path.
#include "data_test_support.hpp"

namespace kiln::data_test {
namespace {

// Writes `text` as in.csv and runs data.csv on it with `params`.
host::StepOutcome load(const TempDir& dir, const std::string& text, Json params, RecordingSink& sink,
                       const std::string& file = "in.csv") {
  kiln::test::write_text(dir / file, text);
  params["path"] = (dir / file).string();
  return run("data.csv", params, dir.path(), sink);
}

TEST(DataCsv, ReadsHeaderTypesMissingValuesAndLabelByName) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = load(dir, "a,b,color,y\n1,2.5,red,0\n3,,blue,1\n5,4,red,1\n", {{"label", "y"}}, sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto d = output(dir.path(), "data");
  ASSERT_EQ(d.rows(), 3);
  ASSERT_EQ(d.schema.feature_shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(d.schema.columns[0].source_dtype, "int64");
  EXPECT_EQ(d.schema.columns[1].source_dtype, "float64");
  EXPECT_EQ(d.schema.columns[2].kind, ml::ColumnKind::Categorical);
  EXPECT_EQ(d.schema.columns[2].categories, (std::vector<std::string>{"blue", "red"}));
  const auto f = features(d);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[1], 2.5f);
  EXPECT_EQ(f[2], 1.0f);  // red
  EXPECT_TRUE(std::isnan(f[4]));
  EXPECT_EQ(f[5], 0.0f);  // blue
  EXPECT_EQ(labels(d), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(d.schema.label->classes, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(d.schema.label->task, ml::Task::Classification);
  EXPECT_NE(d.schema.description.find("in.csv"), std::string::npos);
  EXPECT_EQ(metric(sink, "rows"), 3);
  EXPECT_EQ(metric(sink, "bad_rows"), 0);
  EXPECT_EQ(sink.output_metadata["data"]["rows"], Json(3));
}

TEST(DataCsv, ReadsGzippedTsvWithoutHeaderAndNegativeLabelIndex) {
  TempDir dir;
  write_gzip(dir / "in.tsv.gz", "0.5\t1\tx\n1.5\t2\ty\n2.5\t3\tx\n");
  RecordingSink sink;
  const auto outcome =
      run("data.csv", {{"path", (dir / "in.tsv.gz").string()}, {"header", false}, {"label", "-1"}}, dir.path(), sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(d.rows(), 3);
  EXPECT_EQ(d.schema.columns[0].name, "col_0");
  EXPECT_EQ(d.schema.columns[1].name, "col_1");
  EXPECT_EQ(d.schema.label->name, "col_2");
  EXPECT_EQ(d.schema.label->classes, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(labels(d), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(features(d)[4], 2.5f);
}

TEST(DataCsv, WhitespaceSkipRowsColumnNamesAndRegression) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = load(dir, "3 junk header\n 1  2\t 3.5\n4 5 6.25  \n\n",
                            {{"delimiter", "whitespace"},
                             {"header", false},
                             {"skip_rows", 1},
                             {"columns", {"p", "q", "target"}},
                             {"label", "target"}},
                            sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(d.rows(), 2);
  EXPECT_EQ(d.schema.columns[1].name, "q");
  EXPECT_EQ(d.schema.label->task, ml::Task::Regression);
  EXPECT_EQ(targets(d), (std::vector<float>{3.5f, 6.25f}));
}

TEST(DataCsv, NumericClassLabelsSortNumerically) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(load(dir, "x,y\n1,10\n2,9\n3,2\n4,9.0\n", {{"label", "y"}}, sink).ok);
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(d.schema.label->classes, (std::vector<std::string>{"2", "9", "10"}));
  EXPECT_EQ(labels(d), (std::vector<int64_t>{2, 1, 0, 1}));
}

TEST(DataCsv, ClassNamesNameIntegerLabels) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(load(dir, "x,y\n1,2\n2,0\n", {{"label", "y"}, {"class_names", {"a", "b", "c"}}}, sink).ok);
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(d.schema.label->classes, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(labels(d), (std::vector<int64_t>{2, 0}));
}

TEST(DataCsv, ManyDistinctIntegersAreRegressionUnlessTold) {
  TempDir dir;
  std::string text = "x,y\n";
  for (int i = 0; i < 30; ++i) text += std::to_string(i) + "," + std::to_string(i * 7) + "\n";
  RecordingSink sink;
  ASSERT_TRUE(load(dir, text, {{"label", "y"}}, sink).ok);
  EXPECT_EQ(output(dir.path(), "data").schema.label->task, ml::Task::Regression);
  TempDir dir2;
  RecordingSink sink2;
  ASSERT_TRUE(load(dir2, text, {{"label", "y"}, {"task", "classification"}}, sink2).ok);
  EXPECT_EQ(output(dir2.path(), "data").schema.label->classes.size(), 30u);
}

TEST(DataCsv, QuotedFieldsSemicolonsBoolsAndDeclaredDtypes) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = load(dir, "name;flag;code\n\"a;b\";true;3\n\"say \"\"hi\"\"\";false;1\n\"a;b\";TRUE;3\n",
                            {{"dtypes", {{"code", "category"}}}}, sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto d = output(dir.path(), "data");
  EXPECT_EQ(d.schema.columns[0].categories, (std::vector<std::string>{"a;b", "say \"hi\""}));
  EXPECT_EQ(d.schema.columns[1].source_dtype, "bool");
  EXPECT_EQ(d.schema.columns[2].kind, ml::ColumnKind::Categorical);
  EXPECT_EQ(d.schema.columns[2].categories, (std::vector<std::string>{"1", "3"}));
  EXPECT_EQ(features(d), (std::vector<float>{0, 1, 1, 1, 0, 0, 0, 1, 1}));
  EXPECT_FALSE(d.schema.label.has_value());
}

TEST(DataCsv, WarnsWhenAStrayWordMakesANumericColumnCategorical) {
  TempDir dir;
  RecordingSink sink;
  std::string text = "a\tb\n";
  for (int i = 0; i < 12; ++i) text += std::to_string(i) + "\t1\n";
  text += "oops\t2\n";
  ASSERT_TRUE(load(dir, text, {{"delimiter", "tab"}}, sink).ok);
  EXPECT_EQ(output(dir.path(), "data").schema.columns[0].kind, ml::ColumnKind::Categorical);
  bool warned = false;
  for (const auto& [level, message] : sink.logs)
    warned = warned || (level == KILN_LOG_WARNING && message.find("in.csv:14: column 'a'") != std::string::npos);
  EXPECT_TRUE(warned);
}

TEST(DataCsv, CrlfAndMultiLineQuotesKeepLineNumbersRight) {
  TempDir dir;
  RecordingSink sink;
  ASSERT_TRUE(load(dir, "a,b\r\n\"two\nlines\",1\r\nx,2\r\n", Json::object(), sink).ok);
  EXPECT_EQ(output(dir.path(), "data").schema.columns[0].categories, (std::vector<std::string>{"two\nlines", "x"}));
  const auto outcome = load(dir, "a,b\r\n\"two\nlines\",1\r\nx\r\n", Json::object(), sink, "bad.csv");
  EXPECT_NE(outcome.message.find("bad.csv:4: expected 2 fields, found 1"), std::string::npos) << outcome.message;
}

TEST(DataCsv, RaggedRowFailsWithLineNumber) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = load(dir, "a,b,y\n1,2,0\n3,1\n", {{"label", "y"}}, sink);
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(outcome.message.find("in.csv:3: expected 3 fields, found 2"), std::string::npos) << outcome.message;
}

TEST(DataCsv, BadRowsSkipCountsThem) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = load(dir, "a,b,y\n1,2,0\n3,1\n4,x,1\n5,6,\n7,8,1\n",
                            {{"label", "y"}, {"bad_rows", "skip"}, {"dtypes", {{"b", "float"}}}}, sink);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_EQ(output(dir.path(), "data").rows(), 2);
  EXPECT_EQ(metric(sink, "bad_rows"), 3);  // ragged, unparsable b, missing label
  EXPECT_EQ(sink.output_metadata["data"]["bad_rows"], Json(3));
}

TEST(DataCsv, UnparsableDeclaredNumberNamesLineAndColumn) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = load(dir, "a,b\n1,2\n3,oops\n", {{"dtypes", {{"b", "int"}}}}, sink);
  ASSERT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find("in.csv:3: column 'b': 'oops' is not a valid int64"), std::string::npos)
      << outcome.message;
}

TEST(DataCsv, MissingLabelColumnIsNamed) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = load(dir, "a,b\n1,2\n", {{"label", "target"}}, sink);
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(outcome.message.find("label column 'target' is not among the columns (a, b)"), std::string::npos)
      << outcome.message;
}

TEST(DataCsv, MissingLabelValueFailsWithLine) {
  TempDir dir;
  RecordingSink sink;
  const auto outcome = load(dir, "a,y\n1,0\n2,NA\n", {{"label", "y"}}, sink);
  ASSERT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find(":3: label column 'y' is missing"), std::string::npos) << outcome.message;
}

TEST(DataCsv, EmptyFileHeaderOnlyAndMissingFileAreErrors) {
  TempDir dir;
  RecordingSink sink;
  auto outcome = load(dir, "", {}, sink);
  EXPECT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find("empty file"), std::string::npos) << outcome.message;
  outcome = load(dir, "a,b\n", {}, sink, "header.csv");
  EXPECT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find("no data rows"), std::string::npos) << outcome.message;
  outcome = run("data.csv", {{"path", (dir / "absent.csv").string()}}, dir.path(), sink);
  EXPECT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find("absent.csv: no such file"), std::string::npos) << outcome.message;
}

TEST(DataCsv, TruncatedGzipAndBadOptionsAreErrors) {
  TempDir dir;
  write_gzip(dir / "full.gz", std::string(5000, 'a') + ",1\n");
  const auto bytes = kiln::test::read_text(dir / "full.gz");
  kiln::test::write_text(dir / "cut.gz", bytes.substr(0, bytes.size() / 2));
  RecordingSink sink;
  auto outcome = run("data.csv", {{"path", (dir / "cut.gz").string()}}, dir.path(), sink);
  EXPECT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find("truncated gzip"), std::string::npos) << outcome.message;
  outcome = load(dir, "a,b\n1,2\n", {{"dtypes", {{"zz", "float"}}}}, sink);
  EXPECT_NE(outcome.message.find("dtypes: column 'zz'"), std::string::npos) << outcome.message;
  outcome = load(dir, "a,b\n1,2\n", {{"dtypes", {{"a", "decimal"}}}}, sink);
  EXPECT_NE(outcome.message.find("dtype 'decimal'"), std::string::npos) << outcome.message;
  outcome = load(dir, "a,b\n1,2\n", {{"label", "5"}}, sink);
  EXPECT_NE(outcome.message.find("label index 5 is outside the 2 columns"), std::string::npos) << outcome.message;
  outcome = load(dir, "a,a\n1,2\n", {}, sink);
  EXPECT_NE(outcome.message.find("column 'a' appears twice"), std::string::npos) << outcome.message;
  outcome = load(dir, "a,b\n\"1,2\n", {}, sink);
  EXPECT_NE(outcome.message.find(":2: unterminated quoted field"), std::string::npos) << outcome.message;
  outcome = load(dir, "x,y\n1,4\n", {{"label", "y"}, {"class_names", {"a", "b"}}}, sink);
  EXPECT_NE(outcome.message.find("label value 4 has no name in class_names"), std::string::npos) << outcome.message;
}

}  // namespace
}  // namespace kiln::data_test

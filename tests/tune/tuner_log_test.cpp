// steps/<step>/tuner.jsonl (kiln::host::TunerLog): what the engine appends
// reads back as written, a line cut by a crash is dropped (and cut off before
// the next append), and a malformed or oversized log is refused with the
// file, line and field.
#include <gtest/gtest.h>
#include <kiln/host/tuner_log.hpp>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace kiln::host {
namespace {

namespace fs = std::filesystem;

struct TempFile {
  fs::path dir = fs::temp_directory_path() / ("kiln_tuner_log_" + std::to_string(::getpid()));
  fs::path path = dir / "steps" / "tune" / "tuner.jsonl";
  TempFile() { fs::remove_all(dir); }
  ~TempFile() { fs::remove_all(dir); }
  std::string text() const {
    std::ifstream in(path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
};

std::string error_of(const std::string& text) {
  try {
    TunerLog::parse(text, "t.jsonl");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(TunerLog, ReadsBackWhatItAppended) {
  const TempFile file;
  EXPECT_TRUE(TunerLog::read(file.path).empty());  // no log: a fresh search
  {
    TunerLog log(file.path);
    TunerRecord suggest;
    suggest.kind = TunerRecord::Kind::Suggest;
    suggest.trials = {{0, Json{{"x", 0.25}}}, {1, Json{{"x", 0.5}, {"h", Json::array({64, 32})}}}};
    log.append(suggest);
    TunerRecord metric;
    metric.trial = 1;
    metric.step = 3;
    metric.value = 0.75;
    log.append(metric);
    TunerRecord failed;
    failed.trial = 0;
    failed.value = std::nan("");
    failed.final = true;
    failed.status = TrialStatus::Failed;
    log.append(failed);
    TunerRecord two = failed;  // a multi-objective step's values (NaN: none)
    two.trial = 1;
    two.value = 0.5;
    two.status = TrialStatus::Succeeded;
    two.values = {0.5, std::nan("")};
    log.append(two);
  }
  const auto records = TunerLog::read(file.path);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].kind, TunerRecord::Kind::Suggest);
  ASSERT_EQ(records[0].trials.size(), 2u);
  EXPECT_EQ(records[0].trials[1].id, 1);
  EXPECT_EQ(records[0].trials[1].parameters, (Json{{"x", 0.5}, {"h", Json::array({64, 32})}}));
  EXPECT_EQ(records[1].kind, TunerRecord::Kind::Observe);
  EXPECT_EQ(records[1].trial, 1);
  EXPECT_EQ(records[1].step, 3);
  EXPECT_DOUBLE_EQ(records[1].value, 0.75);
  EXPECT_FALSE(records[1].final);
  EXPECT_TRUE(records[2].final);
  EXPECT_EQ(records[2].status, TrialStatus::Failed);
  EXPECT_TRUE(std::isnan(records[2].value));
  EXPECT_TRUE(records[2].values.empty());
  ASSERT_EQ(records[3].values.size(), 2u);
  EXPECT_DOUBLE_EQ(records[3].values[0], 0.5);
  EXPECT_TRUE(std::isnan(records[3].values[1]));
}

TEST(TunerLog, ALineCutByACrashIsDroppedAndCutOffBeforeTheNextAppend) {
  const TempFile file;
  fs::create_directories(file.path.parent_path());
  std::ofstream(file.path) << "{\"observe\":0,\"step\":1,\"value\":0.5}\n{\"observe\":0,\"st";
  EXPECT_EQ(TunerLog::read(file.path).size(), 1u);
  {
    TunerLog log(file.path);
    TunerRecord r;
    r.trial = 0;
    r.step = 2;
    r.value = 0.25;
    log.append(r);
  }
  EXPECT_EQ(file.text(), "{\"observe\":0,\"step\":1,\"value\":0.5}\n{\"observe\":0,\"step\":2,\"value\":0.25}\n");
  EXPECT_EQ(TunerLog::read(file.path).size(), 2u);
}

TEST(TunerLog, RefusesMalformedLinesNamingTheLineAndField) {
  EXPECT_EQ(error_of("{\"observe\":0,\"step\":1}\nnot json\n"), "t.jsonl:2: not JSON");
  EXPECT_EQ(error_of("[1]\n"), "t.jsonl:1: expected a JSON object");
  EXPECT_EQ(error_of("{\"ask\":1}\n"), "t.jsonl:1: expected \"suggest\" or \"observe\"");
  EXPECT_EQ(error_of("{\"observe\":-1,\"step\":1}\n"), "t.jsonl:1: observe: a trial id (an integer >= 0) is required");
  EXPECT_EQ(error_of("{\"observe\":1,\"step\":\"1\"}\n"), "t.jsonl:1: step: an integer is required");
  EXPECT_EQ(error_of("{\"observe\":1,\"step\":1,\"value\":\"x\"}\n"), "t.jsonl:1: value: a number or null is required");
  EXPECT_EQ(error_of("{\"observe\":1,\"step\":1,\"status\":\"running\"}\n"),
            "t.jsonl:1: status: succeeded, failed or early-stopped is required");
  EXPECT_EQ(error_of("{\"observe\":1,\"step\":1,\"values\":[1]}\n"),
            "t.jsonl:1: values: a list on a final observe is required");
  EXPECT_EQ(error_of("{\"observe\":1,\"step\":1,\"status\":\"failed\",\"values\":[\"x\"]}\n"),
            "t.jsonl:1: values: numbers or null are required");
  EXPECT_EQ(error_of("{\"suggest\":{}}\n"), "t.jsonl:1: suggest: a list of trials is required");
  EXPECT_EQ(error_of("{\"suggest\":[{\"trial\":1,\"parameters\":3}]}\n"),
            "t.jsonl:1: suggest: each trial needs \"trial\" and an object \"parameters\"");
}

TEST(TunerLog, RefusesALogOverItsSizeLimit) {
  const TempFile file;
  fs::create_directories(file.path.parent_path());
  {
    std::ofstream out(file.path);
    const std::string line = "{\"observe\":0,\"step\":1,\"value\":0.5}\n";
    for (uintmax_t written = 0; written <= TunerLog::kMaxBytes; written += line.size()) out << line;
  }
  try {
    TunerLog::read(file.path);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file.path.string() + ": "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("more than the 67108864 a tuner log may have"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln::host

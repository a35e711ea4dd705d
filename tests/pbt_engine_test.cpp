// Population-based training through the engine (issue 23): trials of
// util.objective's drifting objective (drift > 0, its gain kept in the
// checkpoint) in rounds; an exploited trial continues its donor's
// checkpoint, the lineage is in the trials table, the same seed gives the same
// lineage at any parallelism, and PBT beats the same population left alone.
#include <gtest/gtest.h>
#include <kiln/host/engine.hpp>
#include <kiln/host/spec.hpp>

#include <cmath>
#include <map>

#include "test_support.hpp"

using kiln::host::Json;
using kiln::test::TempDir;
namespace fs = std::filesystem;

namespace {

struct PbtRun {
  Json record;
  fs::path dir;
  Json trials;  // the trials table's rows, by trial id
};

class PbtEngineTest : public ::testing::Test {
 protected:
  PbtRun run(const std::string& steps_yaml, int jobs = 4) {
    const std::string yaml = "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n" + steps_yaml;
    auto plan = kiln::host::plan_pipeline(kiln::host::parse_pipeline_text(yaml, "t.yaml"), kiln::test::util_catalog(),
                                          Json::object());
    PbtRun result;
    result.dir = workspace / ("run-" + std::to_string(++runs_));
    kiln::host::RunOptions options;
    options.executor = "process";
    options.jobs = jobs;
    options.run_dir = result.dir;
    options.run_id = result.dir.filename().string();
    std::map<std::string, std::unique_ptr<kiln::host::Executor>> executors;
    executors["inprocess"] = kiln::host::make_inprocess_executor();
    executors["process"] = kiln::host::make_process_executor(kiln::test::kiln_exe());
    kiln::host::Engine engine(plan, options, std::move(executors));
    result.record = engine.run();
    const Json& step = result.record["steps"]["t"];
    if (step.contains("trials")) {
      result.trials = Json::object();
      const Json rows = Json::parse(kiln::test::read_text(result.dir / step["trials"].get<std::string>()))["trials"];
      for (const Json& row : rows) result.trials[std::to_string(row["trial"].get<int>())] = row;
    }
    return result;
  }

  TempDir workspace;

 private:
  int runs_ = 0;
};

// util.objective with drift 0.08: the optimum x goes from 1 to 2.4 in 12 epochs.
// Population 4, 6 rounds of 2 epochs; PARALLEL trials at once.
std::string pbt_pipeline(int parallel, const std::string& tuner = "tune.pbt", int max_trials = 24, int epochs = 2) {
  return R"(
steps:
  - name: t
    component: util.objective
    parameters: {drift: 0.08, epochs: )" +
         std::to_string(epochs) + R"(}
    tune:
      tuner: )" +
         tuner + R"(
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: log_uniform, low: 0.5, high: 10.0}
      settings: {population: 4, interval: 2}
      max_trials: )" +
         std::to_string(max_trials) + R"(
      parallel_trials: )" +
         std::to_string(parallel) + R"(
      seed: 3
)";
}

double gain_of_epoch(double x, int64_t epoch) {
  const double target = std::exp(0.08 * static_cast<double>(epoch - 1));
  const double z = (x - target) / (0.2 * target);
  return std::exp(-z * z);
}

// Each row's lineage and result: {trial: [member, round, from, exploited, x, gain]}.
Json lineage_of(const PbtRun& r) {
  Json out = Json::object();
  for (const auto& [id, row] : r.trials.items())
    out[id] = {row["pbt"]["member"],    row["pbt"]["round"],    row["pbt"]["from"],
               row["pbt"]["exploited"], row["parameters"]["x"], row["outputs"]["gain"]};
  return out;
}

TEST_F(PbtEngineTest, AnExploitedTrialContinuesItsDonorsCheckpointAndTheLineageIsRecorded) {
  const PbtRun r = run(pbt_pipeline(4));
  ASSERT_EQ(r.record["status"], "succeeded") << r.record.dump(2);
  ASSERT_EQ(r.trials.size(), 24u);
  int exploited = 0;
  for (const auto& [id, row] : r.trials.items()) {
    ASSERT_EQ(row["status"], "succeeded") << row.dump();
    const Json& pbt = row["pbt"];
    const int trial = std::stoi(id), round = pbt["round"].get<int>();
    EXPECT_EQ(pbt["member"], trial % 4);
    EXPECT_EQ(round, trial / 4);
    EXPECT_EQ(row["parameters"]["epochs"], 2 * (round + 1));
    EXPECT_FALSE(row["parameters"].contains("kiln.pbt"));  // lineage is its own column
    const double x = row["parameters"]["x"].get<double>();
    EXPECT_GE(x, 0.5);
    EXPECT_LE(x, 10.0);
    const Json& curve = row["curve"];
    ASSERT_EQ(curve.size(), 2u) << row.dump();  // it resumed: only its own round's epochs ran
    const int64_t first_epoch = 2 * round + 1;
    ASSERT_TRUE(curve.contains(std::to_string(first_epoch))) << row.dump();
    // The gain it started from is the checkpoint's trial's, to the last bit.
    const double start =
        pbt["from"].is_null() ? 0.0 : r.trials[std::to_string(pbt["from"].get<int>())]["outputs"]["gain"].get<double>();
    if (pbt["from"].is_null()) {
      EXPECT_EQ(round, 0);
    } else {
      const Json& donor = r.trials[std::to_string(pbt["from"].get<int>())]["pbt"];
      EXPECT_EQ(donor["round"], round - 1);
      if (pbt["exploited"].get<bool>()) {
        ++exploited;
        EXPECT_NE(donor["member"], pbt["member"]);
      } else {
        EXPECT_EQ(donor["member"], pbt["member"]);
      }
    }
    const double expected_gain = start + gain_of_epoch(x, first_epoch) + gain_of_epoch(x, first_epoch + 1);
    EXPECT_NEAR(row["outputs"]["gain"].get<double>(), expected_gain, 1e-9) << row.dump();
    EXPECT_NEAR(curve[std::to_string(first_epoch)].get<double>(), 1.0 / (1.0 + start + gain_of_epoch(x, first_epoch)),
                1e-9);
    // Kept for the next round, removed once the round after that began: the last two rounds' stay.
    EXPECT_EQ(fs::exists(r.dir / "steps/t" / id / "checkpoint/objective.state"), round >= 4) << id;
  }
  EXPECT_EQ(exploited, 5);  // one per round after the first (quantile 0.25 of 4)
  // The best trial is of the last round.
  EXPECT_EQ(r.trials[std::to_string(r.record["steps"]["t"]["outputs"]["best_trial"].get<int>())]["pbt"]["round"], 5);
}

TEST_F(PbtEngineTest, TheSameSeedGivesTheSameLineageAtAnyParallelism) {
  const PbtRun four = run(pbt_pipeline(4));
  const PbtRun one = run(pbt_pipeline(1), 1);
  const PbtRun three = run(pbt_pipeline(3), 3);
  ASSERT_EQ(four.record["status"], "succeeded");
  EXPECT_EQ(lineage_of(one), lineage_of(four));
  EXPECT_EQ(lineage_of(three), lineage_of(four));
  EXPECT_EQ(four.record["steps"]["t"]["outputs"]["best_value"], one.record["steps"]["t"]["outputs"]["best_value"]);
}

// Population 4 over 12 epochs of drift 0.05 (the optimum goes from 1 to 1.7),
// seed SEED: PBT in rounds of one epoch (TUNER tune.pbt, 48 trials), or the
// same four first draws trained 12 epochs with x fixed (tune.random, 4 trials).
std::string comparison_pipeline(bool pbt, int seed) {
  return std::string(R"(
steps:
  - name: t
    component: util.objective
    parameters: {drift: 0.05, epochs: )") +
         (pbt ? "1" : "12") + R"(}
    tune:
      tuner: )" +
         (pbt ? "tune.pbt" : "tune.random") + R"(
      objective: {metric: loss, goal: minimize}
      space:
        x: {type: log_uniform, low: 0.5, high: 10.0}
      settings: {population: 4, interval: 1}
      max_trials: )" +
         (pbt ? "48" : "4") + R"(
      parallel_trials: 4
      seed: )" +
         std::to_string(seed) + "\n";
}

TEST_F(PbtEngineTest, BeatsTheSamePopulationWithoutExploitAndExplore) {
  int wins = 0;
  double with = 0, without = 0;
  for (int seed = 1; seed <= 5; ++seed) {
    const PbtRun pbt = run(comparison_pipeline(true, seed));
    const PbtRun fixed = run(comparison_pipeline(false, seed));
    ASSERT_EQ(pbt.record["status"], "succeeded") << pbt.record.dump(2);
    ASSERT_EQ(fixed.record["status"], "succeeded") << fixed.record.dump(2);
    for (int m = 0; m < 4; ++m)  // the same population
      EXPECT_EQ(fixed.trials[std::to_string(m)]["parameters"]["x"], pbt.trials[std::to_string(m)]["parameters"]["x"]);
    const double a =
        pbt.trials[std::to_string(pbt.record["steps"]["t"]["outputs"]["best_trial"].get<int>())]["outputs"]["gain"];
    const double b =
        fixed.trials[std::to_string(fixed.record["steps"]["t"]["outputs"]["best_trial"].get<int>())]["outputs"]["gain"];
    wins += a > b;
    with += a;
    without += b;
    std::cout << "seed " << seed << ": best gain " << a << " with PBT, " << b << " without\n";
  }
  EXPECT_GE(wins, 4);
  EXPECT_GT(with, 1.3 * without);
}

TEST_F(PbtEngineTest, KilnTrialsShowsEachTrialsLineage) {
  const fs::path file = workspace / "p.yaml";
  kiln::test::write_text(file,
                         "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n" + pbt_pipeline(4, "tune.pbt", 8));
  const std::string workdir = (workspace / "w").string();
  const auto ran = kiln::test::run_kiln({"run", file.string(), "--workdir", workdir});
  ASSERT_TRUE(ran.status.success()) << ran.output;
  const auto table = kiln::test::run_kiln({"trials", "latest", "t", "--workdir", workdir});
  ASSERT_TRUE(table.status.success()) << table.output;
  EXPECT_NE(table.output.find("lineage"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("m0 r0 "), std::string::npos) << table.output;     // round 0: no donor
  EXPECT_NE(table.output.find("m0 r1 <- "), std::string::npos) << table.output;  // round 1 continues a checkpoint
  EXPECT_NE(table.output.find(" exploit"), std::string::npos) << table.output;   // round 1's worst member
  EXPECT_EQ(table.output.find("kiln.pbt"), std::string::npos) << table.output;   // not among the parameters
}

}  // namespace

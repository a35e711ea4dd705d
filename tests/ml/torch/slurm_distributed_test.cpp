// samples/digits on the Slurm executor against the real one-node cluster
// (ctest fixture `slurm`, scripts/slurm-local.sh): end to end on one task,
// and its train step on 2 replicas as one srun step of 2 tasks (rank from
// SLURM_PROCID): accuracy, identical weights on both ranks, a dying rank and
// a retry. Skips only where there is no cluster, never in CI (KILN_TEST_NO_SKIPS=1).
#include <gtest/gtest.h>
#include <kiln/host/subprocess.hpp>

#include <map>
#include <regex>

#include "digits_runs.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using kiln::host::Json;
using kiln::test::TempDir;

namespace {

const fs::path kSource = KILN_TEST_SOURCE_DIR;

bool cluster_answers() {
  const auto scontrol = kiln::host::find_in_path("scontrol");
  if (!std::getenv("SLURM_CONF") || !scontrol) return false;
  const auto ping = kiln::host::run_with_result_channel({scontrol->string(), "ping"}, std::chrono::seconds(5));
  return ping.output.find("UP") != std::string::npos;
}

using DigitsRun = kiln::test::digits::Run;
using kiln::test::digits::digest_logged;

fs::path digits_pipeline(const fs::path& dir, int replicas, const std::string& retries) {
  return kiln::test::digits::pipeline(dir, replicas, retries);
}

DigitsRun run_on_slurm(const fs::path& pipeline, const fs::path& workdir, int epochs,
                       const std::vector<std::pair<std::string, std::string>>& env = {}) {
  return kiln::test::digits::run(pipeline, workdir, epochs, env, {"--executor", "slurm"});
}

class SlurmDigits : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cluster_answers())
      KILN_TEST_SKIP("no Slurm cluster answers (SLURM_CONF unset, or scripts/slurm-local.sh start was not run as root)");
  }
  TempDir dir;
};

}  // namespace

// The sample as users run it, on Slurm and on the process executor: the same
// model byte for byte (publish, `executor: process` in the sample, stays local).
TEST_F(SlurmDigits, TheDigitsSampleTrainsTheSameModelOnSlurmAsInProcesses) {
  const std::string pipeline = (kSource / "samples" / "digits" / "pipeline.yaml").string();
  std::map<std::string, Json> records;
  for (const std::string executor : {"slurm", "process"}) {
    const fs::path workdir = dir / executor;
    const auto run = kiln::test::run_kiln({"run", pipeline, "--workdir", workdir.string(), "--executor", executor,
                                           "--param", "epochs=15", "--param", "model_repo=" + (workdir / "models").string()},
                                          {}, std::chrono::minutes(5));
    ASSERT_TRUE(run.status.success()) << run.output;
    for (const auto& entry : fs::directory_iterator(workdir / "runs"))
      records[executor] = Json::parse(kiln::test::read_text(entry.path() / "run.json"));
  }
  const Json& slurm = records["slurm"];
  EXPECT_EQ(slurm["steps"]["train"]["attempts"].back()["executor"], "slurm");
  EXPECT_EQ(slurm["steps"]["publish"]["attempts"].back()["executor"], "process");
  EXPECT_GT(slurm["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), 0.9);  // 15 epochs
  EXPECT_EQ(slurm["steps"]["evaluate"]["outputs"]["accuracy"], records["process"]["steps"]["evaluate"]["outputs"]["accuracy"]);
  const auto digest = [](const Json& run) {
    return fs::path(run["steps"]["train"]["artifacts"]["model"].get<std::string>()).filename();
  };
  EXPECT_EQ(digest(slurm), digest(records["process"]));  // content-addressed: byte-identical weights
  EXPECT_TRUE(fs::exists(dir / "slurm" / "models" / "digits" / "1" / "model.json"));
}

// One srun step of 2 tasks: both ranks end with the same weights, rank 0
// alone writes outputs, and the model reaches the sample's accuracy.
TEST_F(SlurmDigits, TwoReplicasTrainAsOneTwoTaskStepWithIdenticalWeights) {
  const DigitsRun two = run_on_slurm(digits_pipeline(dir.path(), 2, "0"), dir / "two", 20);
  ASSERT_TRUE(two.ok) << two.output;
  EXPECT_GE(two.record["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), 0.97);
  const fs::path attempt = two.dir / "steps" / "train" / "attempt-1";
  const std::string rank0 = digest_logged(attempt / "events.jsonl");
  const std::string rank1 = digest_logged(attempt / "rank-1" / "channel.jsonl");
  ASSERT_EQ(rank0.size(), 16u) << kiln::test::read_text(attempt / "events.jsonl");
  EXPECT_EQ(rank0, rank1);
  EXPECT_NE(kiln::test::read_text(attempt / "events.jsonl").find("started as a step of Slurm allocation"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(attempt / "rank-1" / "outputs")) << "rank 1 wrote outputs";
}

// Rank 1 dies after epoch 2 of 4: srun ends the other task, the step fails
// naming task 1; with a retry it resumes from rank 0's checkpoint and succeeds.
TEST_F(SlurmDigits, ADyingRankFailsTheStepAndARetryResumesFromTheCheckpoint) {
  const std::vector<std::pair<std::string, std::string>> kill_rank_1{{"KILN_TEST_TRAIN_FAIL_AFTER_EPOCH", "2"},
                                                                     {"KILN_TEST_TRAIN_FAIL_RANK", "1"}};
  const DigitsRun failed = run_on_slurm(digits_pipeline(dir.path(), 2, "0"), dir / "failed", 4, kill_rank_1);
  EXPECT_FALSE(failed.ok);
  const Json& train = failed.record["steps"]["train"];
  EXPECT_EQ(train["status"], "failed") << train.dump(2);
  ASSERT_EQ(train["attempts"].size(), 1u);
  EXPECT_NE(train["attempts"][0].value("message", "").find("task 1"), std::string::npos) << train.dump(2);
  EXPECT_NE(kiln::test::read_text(failed.dir / "steps" / "train" / "attempt-1" / "rank-1" / "stderr.log")
                .find("rank 1 exits after epoch 2"),
            std::string::npos);

  const DigitsRun retried =
      run_on_slurm(digits_pipeline(dir.path(), 2, "{limit: 1, backoff: 0}"), dir / "retried", 4, kill_rank_1);
  ASSERT_TRUE(retried.ok) << retried.output;
  const Json& attempts = retried.record["steps"]["train"]["attempts"];
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[1].value("status", ""), "succeeded");
  const fs::path second = retried.dir / "steps" / "train" / "attempt-2";
  EXPECT_NE(kiln::test::read_text(second / "events.jsonl").find("resuming from epoch 2"), std::string::npos);
  EXPECT_EQ(digest_logged(second / "events.jsonl"), digest_logged(second / "rank-1" / "channel.jsonl"));
}

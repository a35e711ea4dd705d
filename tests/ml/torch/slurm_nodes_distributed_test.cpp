// samples/digits' train step on 2 replicas across the two nodes of the
// `slurm2` fixture (scripts/slurm-local.sh with KILN_SLURM_NODES=2: n1 and n2
// on this host): one rank per node (`slurm: {extra_args:
// [--ntasks-per-node=1]}`, a batch job), the rendezvous at rank 0's node
// address, identical weights on both ranks; rank 1 dying on its node fails
// the step naming it, and a retry resumes. Skips only where there is no
// cluster, never in CI (KILN_TEST_NO_SKIPS=1).
#include <gtest/gtest.h>
#include <kiln/host/subprocess.hpp>

#include <regex>
#include <set>

#include "digits_runs.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using kiln::host::Json;
using kiln::test::TempDir;

namespace {

std::string slurm_tool(const std::string& tool, std::vector<std::string> args) {
  const auto binary = kiln::host::find_in_path(tool);
  if (!binary) return "";
  args.insert(args.begin(), binary->string());
  const auto run = kiln::host::run_with_result_channel(args, std::chrono::seconds(30));
  return run.status.success() ? run.output : "";
}

using NodesRun = kiln::test::digits::Run;
using kiln::test::digits::digest_logged;

// samples/digits with its train step on 2 replicas, one per node.
fs::path spread_pipeline(const fs::path& dir, const std::string& retries) {
  const fs::path path = kiln::test::digits::pipeline(dir, 2, retries);
  std::string text = kiln::test::read_text(path);
  const std::string replicas = "    distributed: {replicas: 2}\n";
  const auto at = text.find(replicas);
  if (at == std::string::npos) throw std::runtime_error("no replicas line in " + path.string());
  text.insert(at + replicas.size(), "    slurm: {extra_args: [--ntasks-per-node=1]}\n");
  kiln::test::write_text(path, text);
  return path;
}

NodesRun run_on_nodes(const fs::path& pipeline, const fs::path& workdir, int epochs,
                      const std::vector<std::pair<std::string, std::string>>& env = {}) {
  return kiln::test::digits::run(pipeline, workdir, epochs, env, {"--executor", "slurm"});
}

// "kiln: rank R of N on node NODE, rendezvous HOST:PORT" in a task's stderr.log: NODE and HOST:PORT.
std::pair<std::string, std::string> placement(const fs::path& stderr_log, int rank) {
  const std::regex pattern("kiln: rank " + std::to_string(rank) + " of 2 on node ([^,]+), rendezvous ([^ \n]+)");
  std::smatch match;
  const std::string text = kiln::test::read_text(stderr_log);
  if (!std::regex_search(text, match, pattern)) return {};
  return {match[1].str(), match[2].str()};
}

class SlurmNodesDigits : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::getenv("SLURM_CONF") || slurm_tool("scontrol", {"ping"}).find("UP") == std::string::npos)
      KILN_TEST_SKIP("no Slurm cluster answers (SLURM_CONF unset, or scripts/slurm-local.sh start was not run as root)");
    ASSERT_EQ(slurm_tool("sinfo", {"-h", "-N", "-o", "%N"}), "n1\nn2\n") << "the slurm2 fixture's nodes";
  }
  TempDir dir;
};

}  // namespace

TEST_F(SlurmNodesDigits, TwoReplicasTrainOneOnEachNodeWithIdenticalWeights) {
  const NodesRun run = run_on_nodes(spread_pipeline(dir.path(), "0"), dir / "spread", 12);
  ASSERT_TRUE(run.ok) << run.output;
  EXPECT_GE(run.record["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), 0.9);
  const fs::path attempt = run.dir / "steps" / "train" / "attempt-1";
  const auto [node0, rendezvous0] = placement(attempt / "stderr.log", 0);
  const auto [node1, rendezvous1] = placement(attempt / "rank-1" / "stderr.log", 1);
  EXPECT_EQ((std::set<std::string>{node0, node1}), (std::set<std::string>{"n1", "n2"}))
      << kiln::test::read_text(attempt / "stderr.log");
  // Rank 0's node by its NodeAddr (the names n1, n2 resolve nowhere), the same for both ranks.
  EXPECT_EQ(rendezvous0.rfind("127.0.0.1:", 0), 0u) << rendezvous0;
  EXPECT_EQ(rendezvous0, rendezvous1);
  const std::string rank0 = digest_logged(attempt / "events.jsonl");
  ASSERT_EQ(rank0.size(), 16u) << kiln::test::read_text(attempt / "events.jsonl");
  EXPECT_EQ(rank0, digest_logged(attempt / "rank-1" / "channel.jsonl"));
  EXPECT_NE(kiln::test::read_text(attempt / "events.jsonl").find("submitted as Slurm job"), std::string::npos);
  EXPECT_FALSE(fs::exists(attempt / "rank-1" / "outputs")) << "rank 1 wrote outputs";
}

// Rank 1, on the other node, dies after epoch 2 of 4: the step fails naming
// task 1; with a retry it resumes from rank 0's checkpoint, again on both nodes.
TEST_F(SlurmNodesDigits, ARankDyingOnItsNodeFailsTheStepAndARetryResumes) {
  const std::vector<std::pair<std::string, std::string>> kill_rank_1{{"KILN_TEST_TRAIN_FAIL_AFTER_EPOCH", "2"},
                                                                     {"KILN_TEST_TRAIN_FAIL_RANK", "1"}};
  const NodesRun failed = run_on_nodes(spread_pipeline(dir.path(), "0"), dir / "failed", 4, kill_rank_1);
  EXPECT_FALSE(failed.ok);
  const Json& train = failed.record["steps"]["train"];
  EXPECT_EQ(train["status"], "failed") << train.dump(2);
  ASSERT_EQ(train["attempts"].size(), 1u);
  EXPECT_NE(train["attempts"][0].value("message", "").find("task 1"), std::string::npos) << train.dump(2);
  const fs::path first = failed.dir / "steps" / "train" / "attempt-1";
  const std::string rank1_node = placement(first / "rank-1" / "stderr.log", 1).first;
  EXPECT_NE(placement(first / "stderr.log", 0).first, rank1_node);
  // srun's own message, from the batch job's stderr: the node and the task.
  EXPECT_NE(train["attempts"][0].value("message", "").find(rank1_node + ": task 1: Exited with exit code"),
            std::string::npos) << train.dump(2);
  EXPECT_NE(kiln::test::read_text(first / "rank-1" / "stderr.log").find("rank 1 exits after epoch 2"), std::string::npos);

  const NodesRun retried =
      run_on_nodes(spread_pipeline(dir.path(), "{limit: 1, backoff: 0}"), dir / "retried", 4, kill_rank_1);
  ASSERT_TRUE(retried.ok) << retried.output;
  const Json& attempts = retried.record["steps"]["train"]["attempts"];
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[1].value("status", ""), "succeeded");
  const fs::path second = retried.dir / "steps" / "train" / "attempt-2";
  EXPECT_NE(kiln::test::read_text(second / "events.jsonl").find("resuming from epoch 2"), std::string::npos);
  EXPECT_NE(placement(second / "stderr.log", 0).first, placement(second / "rank-1" / "stderr.log", 1).first);
  EXPECT_EQ(digest_logged(second / "events.jsonl"), digest_logged(second / "rank-1" / "channel.jsonl"));
}

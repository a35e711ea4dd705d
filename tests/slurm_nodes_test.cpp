// The Slurm executor on two nodes (ctest fixture `slurm2`: scripts/slurm-local.sh
// with KILN_SLURM_NODES=2, two slurmd on this host as nodes n1 and n2): a
// loop's items and two parallel steps, each a batch job that takes a whole
// node, run on both nodes at once, and the one kiln run collects every
// output. Skips only where there is no cluster, never in CI (KILN_TEST_NO_SKIPS=1).
#include <gtest/gtest.h>
#include <kiln/host/subprocess.hpp>

#include <set>
#include <sstream>

#include "store_workspace.hpp"
#include "test_support.hpp"

using kiln::host::Json;
namespace fs = std::filesystem;

namespace {

// A Slurm client command's output ("" when it failed).
std::string slurm_output(const std::string& tool, std::vector<std::string> args) {
  const auto binary = kiln::host::find_in_path(tool);
  if (!binary) return "";
  args.insert(args.begin(), binary->string());
  const auto run = kiln::host::run_with_result_channel(args, std::chrono::seconds(30));
  return run.status.success() ? run.output : "";
}

// A command component: waits (bounded) until `count` attempts have started
// (files in `barrier`), so they all run at once, then reports the node it ran on.
constexpr const char* kWhereComponent = R"yaml(apiVersion: kiln/v1
kind: Component
metadata: {name: test.where, version: 1.0.0, description: the Slurm node a step ran on}
parameters:
  barrier: {type: string}
  count: {type: int}
  name: {type: string}
output_parameters:
  node: {type: string}
implementation:
  shell: |
    set -eu
    touch "$KILN_PARAM_barrier/$KILN_PARAM_name"
    i=0
    while [ "$(ls "$KILN_PARAM_barrier" | wc -l)" -lt "$KILN_PARAM_count" ]; do
      i=$((i + 1)); [ "$i" -lt 1200 ] || { echo "the others never started" >&2; exit 1; }
      sleep 0.1
    done
    echo "output node ${SLURMD_NODENAME:-none}" >> "$KILN_REPORT"
)yaml";

class SlurmNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::getenv("SLURM_CONF") || slurm_output("scontrol", {"ping"}).find("UP") == std::string::npos)
      KILN_TEST_SKIP("no Slurm cluster answers (SLURM_CONF unset, or scripts/slurm-local.sh start was not run as root)");
    std::istringstream nodes(slurm_output("sinfo", {"-h", "-N", "-o", "%N %c"}));
    std::string node;
    while (nodes >> node >> node_cpus) node_names.insert(node);
    ASSERT_EQ(node_names, (std::set<std::string>{"n1", "n2"})) << "the slurm2 fixture's cluster has nodes n1 and n2";
    // A job of an earlier test may still be completing on a node (its allocation's CG state), and
    // Slurm would then place both attempts on the other node: start from an idle cluster.
    const bool idle = kiln::test::poll_until([] { return slurm_output("sinfo", {"-h", "-N", "-o", "%T"}) == "idle\nidle\n"; },
                                             6000);
    ASSERT_TRUE(idle) << slurm_output("sinfo", {"-N"}) << slurm_output("squeue", {});
  }
  std::set<std::string> node_names;
  int node_cpus = 0;
  kiln::test::TempDir dir;
};

}  // namespace

// Each attempt asks for a whole node's cpus, and all wait for one another:
// Slurm must start them on different nodes. A loop of two items, then two
// independent steps; every output reaches run.json through the one kiln run.
TEST_F(SlurmNodes, ALoopsItemsAndParallelStepsRunOnBothNodes) {
  kiln::test::write_text(dir / "where.yaml", kWhereComponent);
  for (const char* barrier : {"loop", "pair"}) fs::create_directories(dir / barrier);
  const std::string whole_node = "    resources: {cpus: " + std::to_string(node_cpus) + "}\n    slurm: {mode: batch}\n";
  const auto step = [&](const std::string& name, const std::string& barrier, int count, const std::string& extra) {
    return "  - name: " + name + "\n    component: ./where.yaml\n" + whole_node + extra +
           "    parameters: {barrier: \"" + (dir / barrier).string() + "\", count: " + std::to_string(count) +
           ", name: \"" + name + (extra.find("for_each") != std::string::npos ? "-{{ item }}" : "") + "\"}\n";
  };
  const fs::path pipeline = dir / "nodes.yaml";
  kiln::test::write_text(pipeline, "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: nodes}\nsteps:\n" +
                                       step("loop", "loop", 2, "    for_each: [1, 2]\n    parallelism: 2\n") +
                                       step("left", "pair", 2, "    after: [loop]\n") +
                                       step("right", "pair", 2, "    after: [loop]\n"));
  const auto ran = kiln::test::run_kiln({"run", pipeline.string(), "--executor", "slurm", "--json", "--jobs", "4",
                                         "--workdir", (dir / "ws").string()},
                                        {{"KILN_CACHE_DIR", kiln::test::scan_cache().string()}}, std::chrono::minutes(4));
  const Json summary = kiln::test::summary_of(ran.output);
  ASSERT_EQ(summary.value("status", ""), "succeeded") << ran.output;
  const Json record = Json::parse(kiln::test::read_text(fs::path(summary["run_dir"].get<std::string>()) / "run.json"));

  std::set<std::string> loop_nodes;
  ASSERT_EQ(record["steps"]["loop"]["units"].size(), 2u) << record["steps"]["loop"].dump(2);
  for (const auto& [key, unit] : record["steps"]["loop"]["units"].items()) {
    EXPECT_EQ(unit["attempts"].back()["executor"], "slurm") << key;
    loop_nodes.insert(unit["outputs"]["node"].get<std::string>());
  }
  EXPECT_EQ(loop_nodes, node_names) << record["steps"]["loop"].dump(2);
  const std::set<std::string> pair_nodes{record["steps"]["left"]["outputs"]["node"].get<std::string>(),
                                         record["steps"]["right"]["outputs"]["node"].get<std::string>()};
  EXPECT_EQ(pair_nodes, node_names) << record["steps"].dump(2);
}

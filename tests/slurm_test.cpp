// The Slurm executor against a real one-node cluster (scripts/slurm-local.sh,
// started and stopped by the ctest fixture `slurm`): samples/hello, retries,
// an external scancel, a memory limit, kiln's timeout and kill -9 of the host
// then resume (each in allocation and batch mode), one allocation per run, a
// loop and a tuning step as parallel attempts, and the profile that sends a run to Slurm. Skips only
// where there is no cluster, and never in CI (KILN_TEST_NO_SKIPS=1).
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>
#include <kiln/host/subprocess.hpp>

#include <atomic>
#include <set>
#include <thread>

#include "store_workspace.hpp"
#include "test_support.hpp"

using kiln::host::Json;
namespace fs = std::filesystem;

namespace {

#if defined(KILN_TEST_SANITIZED)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

// A Slurm client command's output ("" when it failed).
std::string slurm(const std::string& tool, std::vector<std::string> args,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto binary = kiln::host::find_in_path(tool);
  if (!binary) return "";
  args.insert(args.begin(), binary->string());
  const auto run = kiln::host::run_with_result_channel(args, timeout);
  return run.status.success() ? run.output : "";
}

// Ids of the running srun steps named `name` (allocation mode: "12.3").
std::vector<std::string> steps_named(const std::string& name) {
  std::vector<std::string> ids;
  std::istringstream lines(slurm("squeue", {"-s", "-h", "-o", "%i %j"}));
  std::string id, n;
  while (lines >> id >> n)
    if (n == name) ids.push_back(id);
  return ids;
}

// Job ids of jobs named `name` in `state` (squeue's %T).
std::vector<std::string> jobs_named(const std::string& name, const std::string& state) {
  std::vector<std::string> ids;
  std::istringstream lines(slurm("squeue", {"-h", "--states=all", "-n", name, "-o", "%i %T"}));
  std::string id, s;
  while (lines >> id >> s)
    if (s == state) ids.push_back(id);
  return ids;
}

std::string state_of(const std::string& job) {
  std::istringstream line(slurm("squeue", {"-h", "--states=all", "-j", job, "-o", "%T"}));
  std::string state;
  line >> state;
  return state;
}

class SlurmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::getenv("SLURM_CONF") || slurm("scontrol", {"ping"}, std::chrono::seconds(5)).find("UP") == std::string::npos)
      KILN_TEST_SKIP("no Slurm cluster answers (SLURM_CONF unset, or scripts/slurm-local.sh start was not run as root)");
  }

  std::vector<std::pair<std::string, std::string>> env() const {
    return {{"KILN_PLUGIN_PATH", kiln::test::util_plugin().parent_path().string()},
            {"KILN_CACHE_DIR", kiln::test::scan_cache().string()}};
  }
  fs::path workspace() const { return dir / "ws"; }

  std::string pipeline(const std::string& body, const std::string& name = "t") const {
    const auto file = dir / (name + ".yaml");
    kiln::test::write_text(file, "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n" + body);
    return file.string();
  }

  kiln::host::CapturedRun kiln(std::vector<std::string> args) const {
    return kiln::test::run_kiln(args, env(), std::chrono::seconds(240));
  }

  // `kiln run FILE --executor slurm --json ARGS`: the summary and the run record.
  std::pair<Json, Json> run(const std::string& file, std::vector<std::string> args = {}) const {
    args.insert(args.begin(),
                {"run", file, "--executor", "slurm", "--json", "--workdir", workspace().string(), "--grace", "1"});
    const auto r = kiln(args);
    const Json summary = kiln::test::summary_of(r.output);
    EXPECT_TRUE(summary.contains("run_dir")) << r.output;
    if (!summary.contains("run_dir")) return {summary, Json::object()};
    return {summary,
            Json::parse(kiln::test::read_text(fs::path(summary["run_dir"].get<std::string>()) / "run.json"))};
  }

  // Jobs this workspace's kiln still records as running.
  size_t recorded_jobs() const {
    std::error_code ec;
    size_t n = 0;
    for (auto it = fs::directory_iterator(workspace() / "slurm" / "jobs", ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
      ++n;
    return n;
  }

  // The only job this workspace's kiln records (the allocation, or a batch job), "" when not one.
  std::string recorded_job() const {
    std::error_code ec;
    std::vector<std::string> ids;
    for (auto it = fs::directory_iterator(workspace() / "slurm" / "jobs", ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
      ids.push_back(it->path().filename().string());
    return ids.size() == 1 ? ids.front() : "";
  }

  kiln::test::TempDir dir;
};

// The failure classes, cancel and resume in both launch modes: allocation
// (srun steps in the run's allocation, the default) and batch (a job per
// attempt), chosen by a profile's slurm.mode.
class SlurmModeTest : public SlurmTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    SlurmTest::SetUp();
    kiln::test::write_text(dir / "kiln.yaml", "apiVersion: kiln/v1\nkind: Workspace\nprofiles:\n  m: {slurm: {mode: " +
                                                  GetParam() + "}}\n");
  }
  std::vector<std::string> mode_args() const { return {"--config", (dir / "kiln.yaml").string(), "--profile", "m"}; }
  std::pair<Json, Json> run_in_mode(const std::string& file, std::vector<std::string> args = {}) const {
    for (auto& arg : mode_args()) args.push_back(arg);
    return run(file, args);
  }
  // Running attempts of the step named `step` (kiln:STEP): srun steps or batch jobs.
  std::vector<std::string> running(const std::string& step) const {
    return GetParam() == "batch" ? jobs_named("kiln:" + step, "RUNNING") : steps_named("kiln:" + step);
  }
  // What an attempt's events say about how it was launched.
  std::string launched_as() const { return GetParam() == "batch" ? "submitted as Slurm job" : "started as a step of Slurm allocation"; }
};

const Json& last_attempt(const Json& record, const std::string& step) {
  return record["steps"][step]["attempts"].back();
}

}  // namespace

TEST_F(SlurmTest, HelloRunsAsSlurmJobsWithTheSameResultsAsTheProcessExecutor) {
  const std::string hello = (fs::path(KILN_TEST_SOURCE_DIR) / "samples" / "hello" / "pipeline.yaml").string();
  const auto [summary, record] = run(hello);
  ASSERT_EQ(summary["status"], "succeeded") << summary.dump(2);
  EXPECT_EQ(last_attempt(record, "greet")["executor"], "slurm");
  const auto local = kiln({"run", hello, "--json", "--no-cache", "--workdir", (dir / "local").string()});
  const Json there = kiln::test::summary_of(local.output);
  ASSERT_EQ(there["status"], "succeeded") << local.output;
  for (const char* step : {"greet", "per-name", "summary"})
    EXPECT_EQ(summary["steps"][step]["outputs"], there["steps"][step]["outputs"]) << step;
  // The attempt's channel, written by `kiln step` on the node, became live events.
  const fs::path attempt = fs::path(summary["run_dir"].get<std::string>()) / "steps" / "greet" / "attempt-1";
  const std::string events = kiln::test::read_text(attempt / "events.jsonl");
  EXPECT_NE(events.find("started as a step of Slurm allocation"), std::string::npos) << events;
  EXPECT_NE(events.find("\"progress\""), std::string::npos) << events;
  EXPECT_EQ(recorded_jobs(), 0u);
  // A second run is served from the cache: no job at all.
  const auto [again, again_record] = run(hello);
  EXPECT_EQ(again["steps"]["greet"]["status"], "cached") << again.dump(2);
}

TEST_F(SlurmTest, AFlakyStepIsRetriedAsNewJobs) {
  const std::string counter = (dir / "counter").string();
  const auto [summary, record] = run(pipeline(R"(
steps:
  - name: flaky
    component: util.flaky
    executor: slurm
    retries: {limit: 3, backoff: 0s}
    parameters: {failures: 2, counter_file: )" + counter + "}\n"));
  ASSERT_EQ(summary["status"], "succeeded") << summary.dump(2);
  EXPECT_EQ(summary["steps"]["flaky"]["attempts"], 3);
  EXPECT_EQ(summary["steps"]["flaky"]["outputs"]["runs"], 3);
  EXPECT_EQ(record["steps"]["flaky"]["attempts"][0]["failure"], "error");
}

TEST_P(SlurmModeTest, AJobCancelledOutsideKilnFailsItsStepAndTheRunGoesOn) {
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    kiln::test::poll_until(
        [&] {
          const auto ids = running("victim");
          if (ids.empty()) return false;
          slurm("scancel", {ids.front()});
          return cancelled = true;
        },
        6000);
  });
  const auto [summary, record] = run_in_mode(pipeline(R"(
options: {failure_policy: continue}
steps:
  - {name: victim, component: util.sleep, parameters: {seconds: 120}}
  - {name: gate, component: util.sleep, parameters: {seconds: 2}}
  - {name: later, component: util.echo, after: gate}
)"));
  canceller.join();
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(summary["status"], "failed") << summary.dump(2);
  EXPECT_EQ(summary["steps"]["victim"]["status"], "failed");
  EXPECT_NE(summary["steps"]["victim"]["message"].get<std::string>().find("was cancelled outside kiln"),
            std::string::npos)
      << summary.dump(2);
  EXPECT_EQ(last_attempt(record, "victim")["failure"], "crash");
  EXPECT_EQ(summary["steps"]["later"]["status"], "succeeded");
}

TEST_P(SlurmModeTest, AJobOverItsMemoryLimitEndsOutOfMemory) {
  const std::string limit = kAsan ? "256Mi" : "64Mi";
  const auto [summary, record] = run_in_mode(pipeline(R"(
options: {failure_policy: continue}
steps:
  - {name: hog, component: util.probe, resources: {memory: )" + limit +
                                               R"(}, parameters: {allocate_mib: 2048}}
  - {name: modest, component: util.probe, resources: {memory: )" + limit +
                                               R"(}, parameters: {allocate_mib: 8}}
)"));
  EXPECT_EQ(summary["steps"]["modest"]["status"], "succeeded") << summary.dump(2);
  EXPECT_EQ(summary["steps"]["hog"]["status"], "failed");
  EXPECT_EQ(last_attempt(record, "hog")["failure"], "out_of_memory") << record["steps"]["hog"].dump(2);
  EXPECT_NE(summary["steps"]["hog"]["message"].get<std::string>().find("ran out of memory"), std::string::npos);
}

TEST_P(SlurmModeTest, KilnsTimeoutStopsTheJob) {
  const auto [summary, record] = run_in_mode(pipeline(R"(
steps:
  - {name: slow, component: util.sleep, timeout: 1s, parameters: {seconds: 120}}
)"));
  EXPECT_EQ(summary["steps"]["slow"]["status"], "failed") << summary.dump(2);
  EXPECT_EQ(last_attempt(record, "slow")["failure"], "timeout");
  EXPECT_TRUE(kiln::test::poll_until([&] { return running("slow").empty(); }, 3000));
  const std::string events = kiln::test::read_text(fs::path(summary["run_dir"].get<std::string>()) / "steps" /
                                                   "slow" / "attempt-1" / "events.jsonl");
  EXPECT_NE(events.find(launched_as()), std::string::npos) << events;
}

TEST_F(SlurmTest, ALoopRunsItsItemsAsParallelJobs) {
  std::atomic<bool> done{false};
  size_t most = 0;
  std::thread watcher([&] {
    while (!done) {
      most = std::max(most, steps_named("kiln:wait[0]").size() + steps_named("kiln:wait[1]").size() +
                                steps_named("kiln:wait[2]").size() + steps_named("kiln:wait[3]").size());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const auto [summary, record] = run(pipeline(R"(
steps:
  - {name: wait, component: util.sleep, for_each: [1, 2, 3, 4], parallelism: 4, parameters: {seconds: 3}}
)"),
                                     {"--jobs", "4"});
  done = true;
  watcher.join();
  ASSERT_EQ(summary["status"], "succeeded") << summary.dump(2);
  EXPECT_GE(most, 2u);  // several items' jobs ran at once
  EXPECT_EQ(record["steps"]["wait"]["units"].size(), 4u);
}

// kill -9 of `kiln run` leaves its jobs running; `kiln resume` cancels them
// (their attempts are lost with the host) and runs those steps again.
TEST_P(SlurmModeTest, ResumeAfterTheHostWasKilledCancelsItsJobsAndFinishesTheRun) {
  const std::string file = pipeline(R"(
steps:
  - {name: first, component: util.echo, parameters: {message: hi}}
  - {name: slow, component: util.sleep, after: first, parameters: {seconds: 4}}
)");
  auto environment = env();
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  std::vector<std::string> argv{kiln::test::kiln_exe().string(), "run", file, "--executor", "slurm", "--json",
                                "--workdir", workspace().string()};
  for (auto& arg : mode_args()) argv.push_back(arg);
  auto child = kiln::host::ChildProcess::spawn({argv,
                                                {{1, null_fd}, {2, null_fd}},
                                                {},
                                                environment});
  ::close(null_fd);
  ASSERT_TRUE(kiln::test::poll_until([&] { return !running("slow").empty(); }, 6000));
  ::kill(child.pid(), SIGKILL);
  EXPECT_EQ(child.wait().signal, SIGKILL);
  // The job (batch) or the allocation its step runs in outlives its host.
  const std::string orphan = recorded_job();
  ASSERT_FALSE(orphan.empty());
  EXPECT_EQ(state_of(orphan), "RUNNING");
  EXPECT_FALSE(running("slow").empty());

  const auto resumed = kiln({"resume", "latest", "--json", "--workdir", workspace().string()});
  ASSERT_EQ(resumed.status.code, 0) << resumed.output;
  const Json summary = kiln::test::summary_of(resumed.output);
  EXPECT_EQ(summary["status"], "succeeded") << resumed.output;
  EXPECT_EQ(summary["steps"]["first"]["status"], "succeeded") << summary.dump(2);  // kept from the killed run
  EXPECT_EQ(summary["steps"]["slow"]["status"], "succeeded");
  EXPECT_EQ(state_of(orphan), "CANCELLED");
  EXPECT_EQ(recorded_jobs(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, SlurmModeTest, ::testing::Values("allocation", "batch"),
                         [](const auto& info) { return info.param; });

// Allocation mode: the run's steps are srun steps of one allocation, released
// at the end; a step that asks for batch mode (or places itself elsewhere) is
// a job of its own beside them.
TEST_F(SlurmTest, TheRunsStepsShareOneAllocationReleasedAtTheEnd) {
  const auto [summary, record] = run(pipeline(R"(
steps:
  - {name: a, component: util.echo, parameters: {message: one}}
  - {name: b, component: util.echo, after: a, parameters: {message: two}}
  - {name: own, component: util.echo, slurm: {mode: batch}, parameters: {message: three}}
)"));
  ASSERT_EQ(summary["status"], "succeeded") << summary.dump(2);
  const fs::path steps = fs::path(summary["run_dir"].get<std::string>()) / "steps";
  std::set<std::string> allocations;
  for (const char* step : {"a", "b"}) {
    const std::string events = kiln::test::read_text(steps / step / "attempt-1" / "events.jsonl");
    const auto at = events.find("started as a step of Slurm allocation ");
    ASSERT_NE(at, std::string::npos) << events;
    std::istringstream id(events.substr(at + std::string("started as a step of Slurm allocation ").size()));
    std::string allocation;
    std::getline(id, allocation, '"');
    allocations.insert(allocation);
  }
  ASSERT_EQ(allocations.size(), 1u);
  EXPECT_EQ(summary["steps"]["a"]["outputs"]["message"], "one");
  EXPECT_EQ(summary["steps"]["b"]["outputs"]["message"], "two");
  EXPECT_EQ(summary["steps"]["own"]["outputs"]["message"], "three");
  EXPECT_NE(kiln::test::read_text(steps / "own" / "attempt-1" / "events.jsonl").find("submitted as Slurm job"),
            std::string::npos);
  EXPECT_EQ(recorded_jobs(), 0u);
  const std::string released = state_of(*allocations.begin());
  // Released: ended, or ending (slurmctld reports COMPLETING until its node has cleaned up).
  EXPECT_TRUE(released == "CANCELLED" || released == "COMPLETED" || released == "COMPLETING" || released.empty())
      << released;
}

TEST_F(SlurmTest, AProfileSendsTheSamePipelineToSlurm) {
  const std::string file = pipeline("steps:\n  - {name: a, component: util.echo, parameters: {message: hi}}\n");
  kiln::test::write_text(dir / "kiln.yaml", R"(apiVersion: kiln/v1
kind: Workspace
profiles:
  dev: {executor: process, workdir: ws-dev}
  prod: {executor: slurm, workdir: ws-prod, jobs: 8, slurm: {partition: debug}}
)");
  for (const std::string profile : {"dev", "prod"}) {
    const auto r = kiln({"run", file, "--json", "--config", (dir / "kiln.yaml").string(), "--profile", profile});
    const Json summary = kiln::test::summary_of(r.output);
    ASSERT_EQ(summary["status"], "succeeded") << r.output;
    EXPECT_EQ(summary["steps"]["a"]["outputs"]["message"], "hi");
    const Json record =
        Json::parse(kiln::test::read_text(fs::path(summary["run_dir"].get<std::string>()) / "run.json"));
    EXPECT_EQ(last_attempt(record, "a")["executor"], profile == "dev" ? "process" : "slurm");
  }
}

TEST_F(SlurmTest, AClusterThatDoesNotAnswerIsAClearError) {
  kiln::test::TempDir conf;
  kiln::test::write_text(conf / "slurm.conf",
                         "ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1\n"
                         "NodeName=localhost\nPartitionName=p Nodes=localhost\n");
  auto environment = env();
  environment.emplace_back("SLURM_CONF", (conf / "slurm.conf").string());
  const auto r = kiln::test::run_kiln({"run", pipeline("steps:\n  - {name: a, component: util.echo}\n"), "--executor",
                                       "slurm", "--workdir", workspace().string()},
                                      environment, std::chrono::seconds(120));
  EXPECT_NE(r.status.code, 0);
  EXPECT_NE(r.output.find("the Slurm cluster does not answer"), std::string::npos) << r.output;
}

// A tuning step's trials are Slurm jobs too, several at once, and find what they find locally.
TEST_F(SlurmTest, ATuningStepsTrialsRunAsParallelJobs) {
  const auto [summary, record] = run(pipeline(R"(
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 2}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 0.9, grid_points: 4}}
      parallel_trials: 4
)"),
                                     {"--jobs", "4"});
  ASSERT_EQ(summary["status"], "succeeded") << summary.dump(2);
  const auto trials = kiln({"trials", summary["run_id"].get<std::string>(), "t", "--json", "--workdir",
                            workspace().string()});
  ASSERT_EQ(trials.status.code, 0) << trials.output;
  const Json rows = Json::parse(trials.output);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_DOUBLE_EQ(rows[0]["parameters"]["x"].get<double>(), 0.3);  // the best, as on the process executor
  ASSERT_EQ(record["steps"]["t"]["units"].size(), 4u) << record["steps"]["t"].dump(2);
  for (const auto& unit : record["steps"]["t"]["units"])
    EXPECT_EQ(unit["attempts"].back()["executor"], "slurm") << unit.dump();
}

// ---- Component files (docs/command-components.md) as Slurm steps ---------------

namespace {

constexpr const char* kPython = "/usr/bin/python3";  // Debian's, whatever python3 is first on PATH

// A shell command and a Python script (through python/kiln_report.py, which
// `kiln step` puts on PYTHONPATH on the node) beside a plugin.
void write_command_components(const fs::path& dir) {
  kiln::test::write_text(dir / "components" / "greet.yaml", R"y(apiVersion: kiln/v1
kind: Component
metadata: {name: t.greet-sh, version: 1.0.0}
parameters:
  name: {type: string}
  times: {type: int, default: 1}
outputs:
  greeting: {type: Text}
output_parameters:
  words: {type: int}
implementation:
  shell: |
    set -eu
    i=0
    : > "$KILN_OUTPUT_greeting/greeting.txt"
    while [ "$i" -lt "$KILN_PARAM_times" ]; do
      i=$((i + 1))
      echo "Hello, $KILN_PARAM_name!" >> "$KILN_OUTPUT_greeting/greeting.txt"
      echo "progress $i/$KILN_PARAM_times" >> "$KILN_REPORT"
    done
    echo "metric greetings $KILN_PARAM_times" >> "$KILN_REPORT"
    echo "output words $((2 * KILN_PARAM_times))" >> "$KILN_REPORT"
    echo "greeted $KILN_PARAM_times times"
    echo "a line for stderr" >&2
)y");
  kiln::test::write_text(dir / "components" / "train.yaml", std::string(R"y(apiVersion: kiln/v1
kind: Component
metadata: {name: t.train-py, version: 1.0.0}
parameters:
  epochs: {type: int, default: 3}
inputs:
  text: {type: Text}
outputs:
  model: {type: Text}
output_parameters:
  summary: {type: string}
  lines: {type: int}
implementation:
  command: [)y") + kPython + R"y(, train.py, "{{ inputs.text }}/greeting.txt"]
  env: {PYTHONDONTWRITEBYTECODE: "1"}
)y");
  kiln::test::write_text(dir / "components" / "train.py", R"y(import os
import sys
import kiln_report as kiln

lines = open(sys.argv[1]).read().splitlines()
epochs = kiln.param("epochs", int)
for epoch in range(epochs):
    kiln.metric("loss", 1.0 / (epoch + 1), step=epoch)
    kiln.progress(epoch + 1, f"epoch {epoch + 1}", total=epochs)
with open(os.path.join(kiln.output_dir("model"), "model.txt"), "w") as out:
    out.write(lines[-1])
kiln.output("lines", len(lines))
kiln.output("summary", f"{len(lines)} lines in {epochs} epochs")
print(f"trained {epochs} epochs")
)y");
}

const std::string kCommandsPipeline = R"y(
steps:
  - {name: greet, component: ./components/greet.yaml, parameters: {name: node, times: 2}}
  - {name: train, component: ./components/train.yaml, inputs: {text: greet.outputs.greeting}}
  - {name: tell, component: util.echo, parameters: {message: "{{ steps.train.outputs.summary }}"}}
)y";

}  // namespace

// samples/commands' mix (a shell command, a Python script through the
// kiln_report helper, a plugin) as steps of the run's allocation or as batch
// jobs: outputs, live metrics in the run's record and events, the commands'
// logs in their attempt files; then the cache: all hit, and editing the
// script reruns only its step, naming the file.
TEST_P(SlurmModeTest, ComponentFilesRunOnTheClusterBesideAPlugin) {
  if (!fs::exists(kPython)) KILN_TEST_SKIP("no " << kPython << " (Debian's python3)");
  write_command_components(dir.path());
  const std::string file = pipeline(kCommandsPipeline);
  const auto [summary, record] = run_in_mode(file);
  ASSERT_EQ(summary["status"], "succeeded") << summary.dump(2);
  for (const char* step : {"greet", "train", "tell"}) {
    EXPECT_EQ(last_attempt(record, step)["executor"], "slurm") << step;
    EXPECT_EQ(record["steps"][step]["cache"]["status"], "miss") << record["steps"][step].dump(2);
  }
  EXPECT_EQ(summary["steps"]["greet"]["outputs"]["words"], 4);
  EXPECT_EQ(summary["steps"]["train"]["outputs"]["lines"], 2);
  EXPECT_EQ(summary["steps"]["train"]["outputs"]["summary"], "2 lines in 3 epochs");
  EXPECT_EQ(summary["steps"]["tell"]["outputs"]["message"], "2 lines in 3 epochs");
  // The last value of each metric is the step's in run.json; every value is in the event log.
  EXPECT_DOUBLE_EQ(record["steps"]["train"]["metrics"]["loss"].get<double>(), 1.0 / 3) << record["steps"]["train"].dump(2);
  EXPECT_DOUBLE_EQ(record["steps"]["greet"]["metrics"]["greetings"].get<double>(), 2);
  const fs::path run_dir = summary["run_dir"].get<std::string>();
  std::vector<double> losses, progress;
  std::istringstream events(kiln::test::read_text(run_dir / "events.jsonl"));
  for (std::string line; std::getline(events, line);) {
    const Json e = Json::parse(line);
    if (e.value("step", "") != "train") continue;
    if (e["type"] == "metric" && e["name"] == "loss") losses.push_back(e["value"].get<double>());
    if (e["type"] == "progress") progress.push_back(e["fraction"].get<double>());
  }
  EXPECT_EQ(losses, (std::vector<double>{1.0, 0.5, 1.0 / 3}));
  EXPECT_EQ(progress, (std::vector<double>{1.0 / 3, 2.0 / 3, 1.0}));
  // The commands' stdout and stderr are the attempts' logs, written on the node.
  const fs::path greet = run_dir / "steps" / "greet" / "attempt-1";
  EXPECT_EQ(kiln::test::read_text(greet / "stdout.log"), "greeted 2 times\n");
  EXPECT_EQ(kiln::test::read_text(greet / "stderr.log"), "a line for stderr\n");
  // The outputs the commands wrote on the node, now in the workspace's artifact store.
  const auto artifact = [&](const char* step, const char* output) {
    return fs::path(summary["steps"][step]["artifacts"][output].get<std::string>());
  };
  EXPECT_EQ(kiln::test::read_text(artifact("greet", "greeting") / "greeting.txt"), "Hello, node!\nHello, node!\n");
  const fs::path train = run_dir / "steps" / "train" / "attempt-1";
  EXPECT_EQ(kiln::test::read_text(train / "stdout.log"), "trained 3 epochs\n");
  EXPECT_EQ(kiln::test::read_text(artifact("train", "model") / "model.txt"), "Hello, node!");
  EXPECT_NE(kiln::test::read_text(train / "events.jsonl").find(launched_as()), std::string::npos);
  EXPECT_EQ(recorded_jobs(), 0u);

  // Nothing changed: no job at all.
  const auto [again, again_record] = run_in_mode(file);
  for (const char* step : {"greet", "train", "tell"})
    EXPECT_EQ(again["steps"][step]["status"], "cached") << again.dump(2);
  // The script edited: its step reruns on the cluster, the miss names the file.
  kiln::test::write_text(dir / "components" / "train.py",
                         kiln::test::read_text(dir / "components" / "train.py") + "# an edit\n");
  const auto [edited, edited_record] = run_in_mode(file);
  ASSERT_EQ(edited["status"], "succeeded") << edited.dump(2);
  EXPECT_EQ(edited["steps"]["greet"]["status"], "cached");
  EXPECT_EQ(edited["steps"]["train"]["status"], "succeeded") << edited.dump(2);
  EXPECT_EQ(edited_record["steps"]["train"]["cache"]["reason"], "file 'train.py' changed")
      << edited_record["steps"]["train"].dump(2);
  EXPECT_EQ(last_attempt(edited_record, "train")["executor"], "slurm");
  EXPECT_EQ(edited["steps"]["train"]["outputs"]["summary"], "2 lines in 3 epochs");
  EXPECT_EQ(edited["steps"]["tell"]["status"], "cached") << "its parameter did not change";
}

// kiln's stop request (scancel --signal=TERM) reaches `kiln step` alone on
// the node; it passes the stop on to the command's process group, so the
// command's own handler runs, and what it started (a child that ignores
// SIGTERM) is killed once it has ended.
TEST_P(SlurmModeTest, CancellingACommandStopsItsProcessGroupOnTheNode) {
  const fs::path pid_file = dir / "sleep.pid", term_file = dir / "term";
  kiln::test::write_text(dir / "stubborn.yaml", R"y(apiVersion: kiln/v1
kind: Component
metadata: {name: t.stubborn, version: 1.0.0}
implementation:
  shell: |
    trap 'echo term > "$MARKS/term"; exit 143' TERM
    (trap '' TERM; exec sleep 120) &
    echo $! > "$MARKS/sleep.pid"
    echo "progress 0.5 started" >> "$KILN_REPORT"
    wait
  env: {MARKS: )y" + dir.path().string() + R"y(}
)y");
  const std::string file = pipeline("steps:\n  - {name: s, component: ./stubborn.yaml}\n");
  std::vector<std::string> argv{kiln::test::kiln_exe().string(), "run", file, "--executor", "slurm", "--json",
                                "--workdir", workspace().string(), "--grace", "1"};
  for (auto& arg : mode_args()) argv.push_back(arg);
  const fs::path out_file = dir / "run.out";
  const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  auto child = kiln::host::ChildProcess::spawn({argv, {{1, out}, {2, out}}, {}, env()});
  ::close(out);
  // Cancelled once the run's event log (written live) has the command's
  // report: kiln has seen it start (a batch job it has not seen start is
  // removed rather than signalled).
  const auto reported = [&] {
    std::error_code ec;
    for (auto it = fs::directory_iterator(workspace() / "runs", ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
      if (kiln::test::read_text(it->path() / "events.jsonl").find("\"type\":\"progress\"") != std::string::npos)
        return true;
    return false;
  };
  const bool started = kiln::test::poll_until(reported, 6000);
  ::kill(child.pid(), SIGINT);  // as Ctrl-C does
  const auto status = child.wait();
  ASSERT_TRUE(started) << kiln::test::read_text(out_file);
  EXPECT_EQ(status.code, 130) << kiln::test::read_text(out_file);
  const Json summary = kiln::test::summary_of(kiln::test::read_text(out_file));
  EXPECT_EQ(summary["steps"]["s"]["status"], "cancelled") << summary.dump(2);
  EXPECT_EQ(kiln::test::read_text(term_file), "term\n") << "the command never saw SIGTERM";
  const pid_t sleeper = std::stoi(kiln::test::read_text(pid_file));
  EXPECT_TRUE(kiln::test::poll_until([&] { return kiln::test::process_ended(sleeper); }, 3000))
      << "the command's child " << sleeper << " outlived the cancel";
  EXPECT_TRUE(kiln::test::poll_until([&] { return running("s").empty(); }, 3000));
  EXPECT_EQ(recorded_jobs(), 0u);
}

// Crash-safe resume: the host is SIGKILLed at named moments (a hidden hook,
// KILN_TEST_KILL_AT) and at seeded random times, then `kiln resume` must
// finish the run without running any step that had finished, with outputs
// byte-identical to an uninterrupted run, and `kiln fsck` clean.
#include <gtest/gtest.h>
#include <kiln/host/event_log.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/store.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "store_workspace.hpp"

using kiln::host::Json;
using kiln::test::StoreWorkspace;
namespace fs = std::filesystem;

namespace {

// src -> x1, x2 -> y -> z -> last, and a loop fan[0..2] over y. Half the
// steps opt out of caching, so resume must rely on the run record alone.
// With a `gate`, the last step waits for that file: the run cannot finish
// before the test kills it at a random moment.
std::string pipeline_body(const StoreWorkspace& ws, const std::string& gate = "") {
  const std::string common = "log: " + ws.path("log").string() + ", sleep_ms: 40";
  return "steps:\n"
         "  - {name: src, component: fx.step, parameters: {tag: src, " +
         common +
         "}}\n"
         "  - {name: x1, component: fx.step, cache: false, inputs: {data: src.outputs.data}, parameters: {tag: x1, " +
         common +
         "}}\n"
         "  - {name: x2, component: fx.step, inputs: {data: src.outputs.data}, parameters: {tag: x2, " +
         common +
         "}}\n"
         "  - {name: y, component: fx.step, cache: false, inputs: {data: x1.outputs.data, extra: x2.outputs.data},"
         " parameters: {tag: y, " +
         common +
         "}}\n"
         "  - {name: fan, component: fx.step, for_each: [1, 2, 3], inputs: {data: y.outputs.data},"
         " parameters: {tag: 'fan{{ item }}', " +
         common +
         "}}\n"
         "  - {name: z, component: fx.step, cache: false, inputs: {data: y.outputs.data}, parameters: {tag: z, " +
         common +
         "}}\n"
         "  - {name: last, component: fx.step, inputs: {data: z.outputs.data}, parameters: {tag: last, " +
         common + (gate.empty() ? "" : ", wait_for: " + gate) + "}}\n";
}

const std::map<std::string, std::string>& expected_outputs() {
  static const std::map<std::string, std::string> out = [] {
    const std::string src = "|src:v1", y = src + "|x1:v1" + src + "|x2:v1" + "|y:v1";
    return std::map<std::string, std::string>{{"last", y + "|z:v1|last:v1"},
                                              {"fan[0]", y + "|fan1:v1"},
                                              {"fan[1]", y + "|fan2:v1"},
                                              {"fan[2]", y + "|fan3:v1"}};
  }();
  return out;
}

std::string tag_of(const std::string& unit) {
  const auto bracket = unit.find('[');
  if (bracket == std::string::npos) return unit;
  return "fan" + std::to_string(std::stoi(unit.substr(bracket + 1)) + 1);
}

struct Crash {
  std::string kill_at;         // KILN_TEST_KILL_AT for the run, or ""
  int random_seed = -1;        // >= 0: kill -9 at a random moment instead
  bool prewarm = false;        // run once before, so the killed run has cache hits
  std::string resume_kill_at;  // also kill the first resume there
};

Crash at(const std::string& point, bool prewarm = false, const std::string& then = "") {
  Crash c;
  c.kill_at = point;
  c.prewarm = prewarm;
  c.resume_kill_at = then;
  return c;
}

Crash randomly(int seed) {
  Crash c;
  c.random_seed = seed;
  return c;
}

std::string describe(const Crash& c) {
  std::string name = c.random_seed >= 0 ? "random_" + std::to_string(c.random_seed) : c.kill_at;
  if (c.prewarm) name += "_cached";
  if (!c.resume_kill_at.empty()) name += "_then_" + c.resume_kill_at;
  for (auto& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

// Kills the host (only the host: its step server then cleans up, as after a
// crash) at a seeded random moment after the run was recorded, while the
// last step still waits for its gate file (created after the kill).
void run_and_kill_randomly(const StoreWorkspace& ws, const std::string& file, int seed) {
  std::mt19937 random(static_cast<unsigned>(seed));
  // The chain of 40 ms steps lasts about 250 ms after the run is recorded
  // (start-up no longer adds 0.3 s, issue 16): kill within it.
  const int delay_ms = std::uniform_int_distribution<int>(0, 220)(random);
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  auto env = ws.env();
  auto child = kiln::host::ChildProcess::spawn(
      {{kiln::test::kiln_exe().string(), "run", file, "--json", "--jobs", "2"}, {{1, null_fd}, {2, null_fd}}, {}, env});
  ::close(null_fd);
  const auto runs = ws.workspace() / "runs";
  for (int i = 0; i < 2000 && !child.try_wait(); ++i) {  // until the run is recorded (run.json follows the row)
    std::error_code ec;
    bool recorded = false;
    for (const auto& e : fs::directory_iterator(runs, ec)) recorded = recorded || fs::exists(e.path() / "run.json");
    if (recorded) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  ::kill(child.pid(), SIGKILL);
  child.wait();
}

class KillAndResume : public ::testing::TestWithParam<Crash> {};

}  // namespace

TEST_P(KillAndResume, ResumeFinishesWithoutRedoingAnythingFinished) {
  const Crash crash = GetParam();
  StoreWorkspace ws;
  const fs::path gate = ws.path("gate");
  const std::string file = ws.pipeline(pipeline_body(ws, crash.random_seed >= 0 ? gate.string() : ""));
  if (crash.prewarm) ws.run(file);
  if (crash.random_seed >= 0) {
    run_and_kill_randomly(ws, file, crash.random_seed);
    std::ofstream(gate).put('\n');  // the resumed run's last step may finish
  } else {
    const auto killed = ws.kiln({"run", file, "--json", "--jobs", "2"}, {{"KILN_TEST_KILL_AT", crash.kill_at}});
    ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  }
  kiln::host::Store store(ws.workspace());
  const auto runs = store.db.query("SELECT id, status FROM runs ORDER BY rowid DESC");
  ASSERT_FALSE(runs.empty());
  const std::string id = runs.front()["id"];
  EXPECT_EQ(runs.front()["status"], "running");  // as the dead host left it

  for (int round = 0; round < 2; ++round) {
    std::set<std::string> finished;
    for (const auto& row :
         store.db.query("SELECT unit FROM steps WHERE run_id=? AND status IN ('succeeded','cached')", {id}))
      finished.insert(row["unit"].get<std::string>());
    const size_t before = ws.log().size();
    const bool kill_resume = round == 0 && !crash.resume_kill_at.empty();
    const auto resumed = ws.kiln(
        {"resume", id, "--json"},
        kill_resume ? std::vector<std::pair<std::string, std::string>>{{"KILN_TEST_KILL_AT", crash.resume_kill_at}}
                    : std::vector<std::pair<std::string, std::string>>{});
    const auto log = ws.log();
    for (size_t i = before; i < log.size(); ++i)
      for (const auto& unit : finished) EXPECT_NE(log[i], tag_of(unit)) << unit << " finished before, yet ran again";
    if (kill_resume) {
      ASSERT_EQ(resumed.status.signal, SIGKILL) << resumed.output;
      continue;
    }
    ASSERT_EQ(resumed.status.code, 0) << resumed.output;
    EXPECT_EQ(kiln::test::summary_of(resumed.output)["status"], "succeeded") << resumed.output;
    break;
  }
  for (const auto& [unit, content] : expected_outputs()) EXPECT_EQ(ws.output(id, unit), content) << unit;
  // Every unit succeeded exactly once in the record, whatever was interrupted.
  for (const auto& row : store.db.query("SELECT unit, COUNT(*) AS n FROM attempts WHERE run_id=? AND status IN "
                                        "('succeeded','cached') GROUP BY unit",
                                        {id}))
    EXPECT_EQ(kiln::host::MetadataDb::integer(row["n"]), 1) << row.dump();
  const auto fsck = ws.kiln({"fsck"});
  EXPECT_EQ(fsck.status.code, 0) << fsck.output;
  // The event log, written by the killed host(s) and the resume, reads whole
  // and gap-free, and ends with the run's success.
  kiln::host::EventLogReader reader(ws.workspace() / "runs" / id / kiln::host::kEventLogName);
  const auto events = reader.poll();
  ASSERT_FALSE(events.empty());
  for (size_t i = 0; i < events.size(); ++i) ASSERT_EQ(events[i]["seq"].get<uint64_t>(), i + 1) << events[i].dump();
  EXPECT_EQ(events.back()["type"], "run_finished");
  EXPECT_EQ(events.back()["status"], "succeeded");
}

INSTANTIATE_TEST_SUITE_P(KillPoints, KillAndResume,
                         ::testing::Values(at("run-recorded:1"), at("attempt-recorded:1"), at("attempt-recorded:4"),
                                           at("attempt-started:2"), at("attempt-started:6"), at("attempt-finished:3"),
                                           at("artifacts-committed:1"), at("artifacts-committed:5"),
                                           at("step-recorded:2"), at("step-recorded:7"), at("step-finished:1"),
                                           at("step-finished:4"), at("step-finished:8"), at("group-committed:1"),
                                           at("group-committed:3"), at("run-json:2"),
                                           at("run-finishing:1"), at("cache-hit:2", true),
                                           at("step-recorded:3", false, "step-recorded:2"), randomly(1), randomly(2),
                                           randomly(3), randomly(4)),
                         [](const ::testing::TestParamInfo<Crash>& param) { return describe(param.param); });

TEST(Resume, AnUninterruptedRunMatchesTheExpectedOutputs) {
  StoreWorkspace ws;
  const Json summary = ws.run(ws.pipeline(pipeline_body(ws)));
  for (const auto& [unit, content] : expected_outputs()) EXPECT_EQ(ws.output(summary["run_id"], unit), content);
}

// Group commit (issue 16): the records of units that end close together go
// to the database in one transaction, written before any unit that could read
// them starts. Six independent steps and a join: with the time window out of
// the way, the six are written together just before the join starts; a kill
// right after that first transaction leaves all six recorded and the join
// not, and the resume runs only the join.
namespace {

std::string fan_in_body(const StoreWorkspace& ws) {
  std::string body = "steps:\n";
  std::string names;
  for (int i = 0; i < 6; ++i) {
    const std::string name = "s" + std::to_string(i);
    body += "  - {name: " + name + ", component: fx.step, cache: false, parameters: {tag: " + name +
            ", log: " + ws.path("log").string() + "}}\n";
    names += (names.empty() ? "" : ", ") + name;
  }
  body += "  - {name: join, component: fx.step, cache: false, after: [" + names + "], parameters: {tag: join, log: " +
          ws.path("log").string() + "}}\n";
  return body;
}

// Runs the fan-in pipeline with a group commit window and a kill point; expects the kill.
void run_until_killed(const StoreWorkspace& ws, const std::string& jobs, const std::string& window,
                      const std::string& kill_at) {
  const auto killed = ws.kiln({"run", ws.pipeline(fan_in_body(ws)), "--json", "--jobs", jobs},
                              {{"KILN_GROUP_COMMIT_MS", window}, {"KILN_TEST_KILL_AT", kill_at}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
}

// A grid search of four quick trials, one at a time; the best is x = 0.3.
std::string four_trial_grid(const StoreWorkspace& ws) {
  return ws.pipeline(R"(steps:
  - name: t
    component: util.objective
    cache: false
    parameters: {epochs: 2}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 0.9, grid_points: 4}}
      parallel_trials: 1
)");
}

// The trials whose outcome (a final observe) run `id`'s tuner log of step t
// records, in its order.
std::vector<int64_t> told_outcomes(const StoreWorkspace& ws, const std::string& id) {
  std::vector<int64_t> out;
  std::ifstream log(ws.workspace() / "runs" / id / "steps" / "t" / "tuner.jsonl");
  for (std::string line; std::getline(log, line);)
    if (const Json record = Json::parse(line); record.contains("status")) out.push_back(record["observe"]);
  return out;
}

// population-based training of util.objective: rounds of 4, 2 at a time.
std::string pbt_search(const StoreWorkspace& ws, int max_trials) {
  return ws.pipeline(R"(steps:
  - name: t
    component: util.objective
    parameters: {drift: 0.08, epoch_seconds: 0.01}
    tune:
      tuner: tune.pbt
      objective: {metric: loss, goal: minimize}
      space: {x: {type: log_uniform, low: 0.5, high: 10.0}}
      settings: {population: 4, interval: 2}
      max_trials: )" + std::to_string(max_trials) + R"(
      parallel_trials: 2
      seed: 9
)");
}

// The units that have an attempt record, whatever its status.
std::set<std::string> attempted_units(const std::string& workspace_dir) {
  kiln::host::Store store(workspace_dir);
  std::set<std::string> units;
  for (const auto& row : store.db.query("SELECT unit FROM attempts")) units.insert(row["unit"].get<std::string>());
  return units;
}

// The latest run's id.
std::string run_id_of(const StoreWorkspace& ws) {
  kiln::host::Store store(ws.workspace());
  return store.db.query("SELECT id FROM runs ORDER BY rowid DESC").front()["id"];
}

std::set<std::string> recorded_units(const std::string& workspace_dir) {
  kiln::host::Store store(workspace_dir);
  std::set<std::string> units;
  for (const auto& row : store.db.query("SELECT unit FROM steps WHERE status='succeeded'"))
    units.insert(row["unit"].get<std::string>());
  return units;
}

}  // namespace

TEST(GroupCommit, UnitsThatEndTogetherAreWrittenInOneTransactionBeforeTheirDependentStarts) {
  StoreWorkspace ws;
  ASSERT_NO_FATAL_FAILURE(run_until_killed(ws, "2", "600000", "group-committed:1"));
  EXPECT_EQ(recorded_units(ws.workspace()), (std::set<std::string>{"s0", "s1", "s2", "s3", "s4", "s5"}));
  EXPECT_EQ(ws.log().size(), 6u);  // the join had not started: its upstream was written first
  const auto resumed = ws.kiln({"resume", "latest", "--json"});
  ASSERT_EQ(resumed.status.code, 0) << resumed.output;
  const auto log = ws.log();
  ASSERT_EQ(log.size(), 7u) << "only the join ran again";
  EXPECT_EQ(log.back(), "join");
}

TEST(GroupCommit, AWindowOfZeroWritesEachUnitAlone) {
  StoreWorkspace ws;
  ASSERT_NO_FATAL_FAILURE(run_until_killed(ws, "1", "0", "group-committed:1"));
  EXPECT_EQ(recorded_units(ws.workspace()).size(), 1u);
}

// A unit that ended but whose group was not written yet is lost to a kill -9
// and runs again on resume (its outputs byte-identical, as the KillPoints
// cases check); nothing downstream of it had started.
TEST(GroupCommit, AKillBetweenAnEndAndItsGroupRunsTheUnitAgain) {
  StoreWorkspace ws;
  ASSERT_NO_FATAL_FAILURE(run_until_killed(ws, "1", "600000", "step-finished:3"));
  EXPECT_TRUE(recorded_units(ws.workspace()).empty());
  const auto log = ws.log();
  ASSERT_EQ(log.size(), 3u);
  const auto resumed = ws.kiln({"resume", "latest", "--json"});
  ASSERT_EQ(resumed.status.code, 0) << resumed.output;
  EXPECT_EQ(kiln::test::summary_of(resumed.output)["status"], "succeeded") << resumed.output;
  EXPECT_EQ(ws.log().size(), 3u + 7u);  // all seven, the three that had ended among them
  EXPECT_EQ(recorded_units(ws.workspace()).size(), 7u);
}

// A tuner's next trial reads nothing of the trials before it (their
// outcomes reach the tuner, whose log a resume replays): it starts without
// writing their waiting records, so a short trial does not pay an fsynced
// commit (issue 23). Killed as the third trial's start is recorded, with a
// window no pause reaches: the two finished trials' records were still
// waiting, and on resume they run again, each told the outcome it had.
TEST(GroupCommit, ATunersNextTrialDoesNotWaitForTheRecordsOfTheTrialsBeforeIt) {
  StoreWorkspace ws;
  const std::string file = four_trial_grid(ws);
  const auto killed = ws.kiln({"run", file, "--json", "--jobs", "1"},
                              {{"KILN_GROUP_COMMIT_MS", "600000"}, {"KILN_TEST_KILL_AT", "attempt-recorded:3"}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  EXPECT_TRUE(recorded_units(ws.workspace()).empty());
  const std::string id = run_id_of(ws);
  EXPECT_EQ(told_outcomes(ws, id), (std::vector<int64_t>{0, 1}));  // the tuner was told before the third trial began

  const auto resumed = ws.kiln({"resume", id, "--json"});
  ASSERT_EQ(resumed.status.code, 0) << resumed.output;
  const Json summary = kiln::test::summary_of(resumed.output);
  EXPECT_EQ(summary["status"], "succeeded") << resumed.output;
  EXPECT_DOUBLE_EQ(summary["steps"]["t"]["outputs"]["best_x"].get<double>(), 0.3) << resumed.output;
  EXPECT_EQ(recorded_units(ws.workspace()), (std::set<std::string>{"t[0]", "t[1]", "t[2]", "t[3]"}));
  EXPECT_EQ(told_outcomes(ws, id), (std::vector<int64_t>{0, 1, 2, 3}));  // each trial's outcome told once
}

// A trial template's next step may read its trial's records: it starts only
// once they are written (in its start's transaction), even while another
// trial runs (with none running, the scheduler's pause writes them anyway).
// Trial 0 sleeps 0.1 s, trial 1 3 s; the kill comes as trial 0's
// report step, the third attempt, is recorded.
TEST(GroupCommit, ATrialTemplatesNextStepWaitsForItsOwnTrialsRecords) {
  StoreWorkspace ws;
  const std::string file = ws.pipeline(R"(templates:
  fit-and-report:
    steps:
      - name: fit
        component: util.objective
      - name: report
        component: util.echo
        parameters: {message: reported}
        after: fit
steps:
  - name: t
    cache: false
    parameters: {epochs: 1}
    tune:
      trial: fit-and-report
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {epoch_seconds: {type: categorical, values: [0.1, 3.0]}}
      parallel_trials: 2
)");
  const auto killed = ws.kiln({"run", file, "--json", "--jobs", "2"},
                              {{"KILN_GROUP_COMMIT_MS", "600000"}, {"KILN_TEST_KILL_AT", "attempt-recorded:3"}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  EXPECT_EQ(attempted_units(ws.workspace()), (std::set<std::string>{"t[0.fit]", "t[1.fit]", "t[0.report]"}));
  EXPECT_EQ(recorded_units(ws.workspace()), (std::set<std::string>{"t[0.fit]"}));
}

// A trial template's steps read what is upstream of their tuning step: its
// records are written before the first trial starts (the template's steps'
// own upstream names only each other).
TEST(GroupCommit, ATrialTemplatesStepsWaitForTheRecordsUpstreamOfTheirTuningStep) {
  StoreWorkspace ws;
  const std::string file = ws.pipeline(R"(templates:
  fit-only:
    steps:
      - name: fit
        component: util.objective
steps:
  - name: prep
    component: util.echo
    cache: false
  - name: t
    cache: false
    after: [prep]
    parameters: {epochs: 1}
    tune:
      trial: fit-only
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 0.9, grid_points: 2}}
      parallel_trials: 1
)");
  const auto killed = ws.kiln({"run", file, "--json", "--jobs", "1"},
                              {{"KILN_GROUP_COMMIT_MS", "600000"}, {"KILN_TEST_KILL_AT", "attempt-recorded:2"}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  EXPECT_EQ(attempted_units(ws.workspace()), (std::set<std::string>{"prep", "t[0.fit]"}));
  EXPECT_EQ(recorded_units(ws.workspace()), (std::set<std::string>{"prep"}));
}

// Population-based training removes the checkpoints of rounds no trial can
// start from again; the trials that made them must never run again, so
// their records are written first (a trial whose record a crash lost runs
// again on resume, and would find no checkpoint to continue). Rounds of
// four trials, two at a time; killed as round 2's third trial starts, after
// round 2's first end removed round 0's checkpoints.
TEST(GroupCommit, PbtWritesARoundsRecordsBeforeRemovingItsCheckpoints) {
  StoreWorkspace ws;
  const std::string file = pbt_search(ws, 12);
  const auto killed = ws.kiln({"run", file, "--json", "--jobs", "2"},
                              {{"KILN_GROUP_COMMIT_MS", "600000"}, {"KILN_TEST_KILL_AT", "attempt-recorded:11"}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  const std::set<std::string> recorded = recorded_units(ws.workspace());
  const fs::path trials = ws.workspace() / "runs" / run_id_of(ws) / "steps" / "t";
  for (int trial = 0; trial < 4; ++trial) {  // round 0
    EXPECT_TRUE(recorded.count("t[" + std::to_string(trial) + "]")) << trial;
    EXPECT_FALSE(fs::exists(trials / std::to_string(trial) / "checkpoint")) << trial;
  }
}

TEST(Resume, RefusesARunWhoseHostIsAlive) {
  StoreWorkspace ws;
  const auto file = ws.pipeline("steps:\n  - {name: nap, component: util.sleep, parameters: {seconds: 30}}\n");
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  auto child = kiln::host::ChildProcess::spawn(
      {{kiln::test::kiln_exe().string(), "run", file, "--json"}, {{1, null_fd}, {2, null_fd}}, {}, ws.env()});
  ::close(null_fd);
  kiln::host::Store store(ws.workspace());
  std::string id;
  for (int i = 0; i < 2000 && id.empty(); ++i) {
    const auto row = store.db.query_one("SELECT id FROM runs");
    if (row) id = (*row)["id"];
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(id.empty());
  const auto refused = ws.kiln({"resume", id});
  EXPECT_EQ(refused.status.code, 1);
  EXPECT_NE(refused.output.find("is still running"), std::string::npos) << refused.output;
  child.kill_group(SIGKILL);
  child.wait();
}

TEST(Resume, ASucceededRunHasNothingToResume) {
  StoreWorkspace ws;
  const Json summary = ws.run(ws.pipeline("steps:\n  - {name: e, component: util.echo}\n"));
  const auto again = ws.kiln({"resume", summary["run_id"]});
  EXPECT_EQ(again.status.code, 0);
  EXPECT_NE(again.output.find("nothing to resume"), std::string::npos) << again.output;
}

namespace {

// Processes whose environment holds `marker` (inherited by the step server and steps).
int processes_with(const std::string& marker) {
  int count = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos || name == std::to_string(::getpid())) continue;
    std::ifstream in(e.path() / "environ", std::ios::binary);
    const std::string environ((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    count += environ.find(marker) != std::string::npos;
  }
  return count;
}

}  // namespace

TEST(Resume, StepsOfAKilledHostDoNotOutliveIt) {
  StoreWorkspace ws;
  const auto file = ws.pipeline("steps:\n  - {name: nap, component: util.sleep, parameters: {seconds: 60}}\n");
  const std::string marker = "KILN_TEST_MARKER=" + ws.path("marker").string();
  const auto killed = ws.kiln(
      {"run", file}, {{"KILN_TEST_KILL_AT", "attempt-started:1"}, {"KILN_TEST_MARKER", ws.path("marker").string()}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  int left = processes_with(marker);
  for (int i = 0; i < 100 && left > 0; ++i) {  // the step server notices its host is gone, kills the step, exits
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    left = processes_with(marker);
  }
  EXPECT_EQ(left, 0);
  // A resume marks the attempt interrupted before anything else (it is killed
  // again as it records its own attempt, so the test need not sleep 60 s).
  const auto resumed = ws.kiln({"resume", "latest"}, {{"KILN_TEST_KILL_AT", "attempt-recorded:1"}});
  EXPECT_EQ(resumed.status.signal, SIGKILL) << resumed.output;
  kiln::host::Store store(ws.workspace());
  const auto attempts = store.db.query("SELECT attempt, status FROM attempts ORDER BY attempt");
  ASSERT_GE(attempts.size(), 1u);
  EXPECT_EQ(attempts[0]["status"], "interrupted");
}

// Issue 7: a tuning run killed mid-search resumes without re-running the
// trials that had finished (trials opt out of the cache, so only the run
// record can keep them), and ends with every trial of the grid.
TEST(Resume, ATuningStepKeepsItsFinishedTrials) {
  StoreWorkspace ws;
  const std::string file = four_trial_grid(ws);
  // Each trial's record written alone (no group commit window), so that the
  // kill after the second one leaves two trials to run: a tuner's next trial
  // does not wait for the records of the trials before it (GroupCommit).
  const auto killed = ws.kiln({"run", file, "--json", "--jobs", "1"},
                              {{"KILN_GROUP_COMMIT_MS", "0"}, {"KILN_TEST_KILL_AT", "step-recorded:2"}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  const std::string id = run_id_of(ws);
  kiln::host::Store store(ws.workspace());
  std::set<std::string> finished;
  for (const auto& row : store.db.query("SELECT unit FROM steps WHERE run_id=? AND status='succeeded'", {id}))
    finished.insert(row["unit"].get<std::string>());
  ASSERT_FALSE(finished.empty());
  ASSERT_LT(finished.size(), 4u);

  const auto resumed = ws.kiln({"resume", id, "--json"});
  ASSERT_EQ(resumed.status.code, 0) << resumed.output;
  const Json summary = kiln::test::summary_of(resumed.output);
  EXPECT_EQ(summary["status"], "succeeded") << resumed.output;
  EXPECT_DOUBLE_EQ(summary["steps"]["t"]["outputs"]["best_x"].get<double>(), 0.3) << resumed.output;
  // Each trial succeeded exactly once across the first run and the resume.
  size_t trials = 0;
  for (const auto& row : store.db.query("SELECT unit, COUNT(*) AS n FROM attempts WHERE run_id=? AND status IN "
                                        "('succeeded','cached') GROUP BY unit",
                                        {id})) {
    EXPECT_EQ(kiln::host::MetadataDb::integer(row["n"]), 1) << row.dump();
    ++trials;
  }
  EXPECT_EQ(trials, 4u);
}

// Issue 23: a model-based search (`search`: TPE after 3 random trials, or
// NSGA-II on two objectives in generations of 3; two trials at a time)
// killed mid-search resumes with the same trials: the tuner log
// (steps/t/tuner.jsonl) is replayed into a new tuner, so every trial the
// killed run had suggested keeps its id and parameters, and the search goes
// on to max_trials. Trials sleep a suggested time per epoch, so they finish
// out of order; trial k learns from trials 0 ... k-2 only, and the
// resumed search ends with exactly the trials (parameters and losses) of the
// same search run without interruption. NSGA-II's later generations depend
// on both objectives of the trials the killed run finished: the log's
// values, replayed through observe_objectives. With `timing_free` false
// (history_lag: 0: trials learn from whatever finished) only the trials the
// killed run had suggested must come back: a rerun may make others.
void expect_a_resumed_search_continues_with_the_same_trials(const std::string& search, bool timing_free = true) {
  StoreWorkspace ws;
  const std::string file = ws.pipeline(R"(steps:
  - name: t
    component: util.objective
    cache: false
    parameters: {epochs: 3}
    tune:
      tuner: tune.search
)" + search + R"(
      space: {x: {type: uniform, low: -2.0, high: 2.0}, y: {type: int, low: -5, high: 9},
              epoch_seconds: {type: uniform, low: 0.0, high: 0.03}}
      max_trials: 10
      parallel_trials: 2
      seed: 5
)");
  // Each trial's record written alone (a trial does not wait for the
  // records of the trials before it, see GroupCommit): the kill comes right
  // after the seventh, before the search reacts to it.
  const auto killed = ws.kiln({"run", file, "--json", "--jobs", "2"},
                              {{"KILN_GROUP_COMMIT_MS", "0"}, {"KILN_TEST_KILL_AT", "step-recorded:7"}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  const std::string id = run_id_of(ws);
  // What the killed run's tuner had suggested, by trial.
  std::map<int64_t, Json> suggested;
  {
    std::ifstream log(ws.workspace() / "runs" / id / "steps" / "t" / "tuner.jsonl");
    for (std::string line; std::getline(log, line);) {
      const Json record = Json::parse(line);
      if (record.contains("suggest"))
        for (const Json& trial : record["suggest"]) suggested[trial["trial"].get<int64_t>()] = trial["parameters"];
    }
  }
  ASSERT_GE(suggested.size(), 7u);  // seven trials finished, the sampler learned from the fourth on
  ASSERT_LT(suggested.size(), 10u);

  const auto resumed = ws.kiln({"resume", id, "--json"});
  ASSERT_EQ(resumed.status.code, 0) << resumed.output;
  EXPECT_EQ(kiln::test::summary_of(resumed.output)["status"], "succeeded") << resumed.output;
  const auto table = ws.kiln({"trials", id, "t", "--json"});
  ASSERT_EQ(table.status.code, 0) << table.output;
  const Json rows = Json::parse(table.output.substr(table.output.find('[')));
  ASSERT_EQ(rows.size(), 10u) << rows.dump();
  for (const Json& row : rows) {
    const int64_t trial = row["trial"];
    EXPECT_EQ(row["status"], "succeeded") << row.dump();
    if (suggested.count(trial)) {
      EXPECT_EQ(row["parameters"], suggested[trial]) << "trial " << trial;
    }
  }
  // The resumed log holds the killed run's records first, then the rest of the search.
  std::set<int64_t> finals;
  for (const int64_t trial : told_outcomes(ws, id)) EXPECT_TRUE(finals.insert(trial).second) << "trial " << trial;
  EXPECT_EQ(finals.size(), 10u);
  if (!timing_free) return;

  // The same search, not interrupted: the same trials.
  auto by_trial = [](const Json& table) {
    std::map<int64_t, Json> out;
    for (const Json& row : table) out[row["trial"].get<int64_t>()] = {row["parameters"], row["loss"]};
    return out;
  };
  const std::string clean_id = ws.run(file)["run_id"];  // --jobs 2
  const auto clean = ws.kiln({"trials", clean_id, "t", "--json"});
  ASSERT_EQ(clean.status.code, 0) << clean.output;
  EXPECT_EQ(by_trial(Json::parse(clean.output.substr(clean.output.find('[')))), by_trial(rows));
}

TEST(Resume, AResumedTpeSearchContinuesWithTheSameTrials) {
  expect_a_resumed_search_continues_with_the_same_trials(R"(      objective: {metric: loss, goal: minimize}
      settings: {sampler: tpe, n_startup_trials: 3})");
}

// history_lag: 0 gives up the timing-free history, not the resume: the
// replayed tuner suggests the killed run's trials again (else the resume
// fails naming the log's line) and the search goes on from there.
TEST(Resume, AResumedSearchWithHistoryLagZeroKeepsTheTrialsItHadSuggested) {
  expect_a_resumed_search_continues_with_the_same_trials(R"(      objective: {metric: loss, goal: minimize}
      settings: {sampler: tpe, n_startup_trials: 3, history_lag: 0})",
                                                         /*timing_free=*/false);
}

TEST(Resume, AResumedNsga2SearchOnTwoObjectivesContinuesWithTheSameTrials) {
  expect_a_resumed_search_continues_with_the_same_trials(
      R"(      objectives: [{metric: loss, goal: minimize}, {metric: cost, goal: minimize}]
      settings: {sampler: nsga2, population_size: 3})");
}

// Issue 23: population-based training killed mid-search (six trials
// recorded: round 1 of a population of 4 under way) resumes to exactly the
// search an uninterrupted run makes: the same lineage, parameters and, since
// every trial continued the right checkpoint, the same gains to the last bit.
TEST(Resume, AResumedPbtSearchHasTheLineageAndResultsOfAnUninterruptedOne) {
  StoreWorkspace ws;
  const std::string file = pbt_search(ws, 16);
  // Each trial's record written alone (a trial does not wait for the
  // records of the trials before it, see GroupCommit): the kill comes right
  // after the sixth, mid-search.
  const auto killed = ws.kiln({"run", file, "--json", "--jobs", "2"},
                              {{"KILN_GROUP_COMMIT_MS", "0"}, {"KILN_TEST_KILL_AT", "step-recorded:6"}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  const std::string id = run_id_of(ws);
  const auto resumed = ws.kiln({"resume", id, "--json"});
  ASSERT_EQ(resumed.status.code, 0) << resumed.output;
  EXPECT_EQ(kiln::test::summary_of(resumed.output)["status"], "succeeded") << resumed.output;
  const auto whole = ws.kiln({"run", file, "--json", "--jobs", "2"});
  ASSERT_EQ(whole.status.code, 0) << whole.output;
  const std::string whole_id = kiln::test::summary_of(whole.output)["run_id"];
  const auto rows_of = [&](const std::string& run) {
    const auto table = ws.kiln({"trials", run, "t", "--json"});
    EXPECT_EQ(table.status.code, 0) << table.output;
    std::map<int64_t, Json> out;
    for (const Json& row : Json::parse(table.output.substr(table.output.find('['))))
      out[row["trial"].get<int64_t>()] = Json{row["status"], row["pbt"], row["parameters"], row["outputs"]["gain"]};
    return out;
  };
  const auto after_resume = rows_of(id), uninterrupted = rows_of(whole_id);
  ASSERT_EQ(uninterrupted.size(), 16u);
  EXPECT_EQ(after_resume, uninterrupted);
}

// One liveness rule (boot id + pid + process start time) for `kiln runs
// list`, `kiln runs show` and `kiln resume`: a finished run is marked running
// again with a chosen host identity, in the database and in run.json (which,
// as the engine writes it, holds only host and pid).
namespace {

struct MarkedRun {
  StoreWorkspace ws;
  std::string id;

  MarkedRun() {
    const Json summary = ws.run(ws.pipeline("steps:\n  - {name: e, component: util.echo}\n"));
    id = summary["run_id"];
  }

  void mark_running(const kiln::host::HostIdentity& host, const Json& run_json_extra = Json::object()) {
    kiln::host::Store store(ws.workspace());
    store.db.execute("UPDATE runs SET status='running', host=?, pid=?, boot_id=?, process_start=? WHERE id=?",
                     {host.host, host.pid, host.boot_id, host.process_start, id});
    const auto file = ws.workspace() / "runs" / id / "run.json";
    Json record = Json::parse(kiln::test::read_text(file));
    record["status"] = "running";
    record["host"] = host.host;
    record["pid"] = host.pid;
    record.erase("boot_id");
    record.erase("process_start");
    record.update(run_json_extra);
    kiln::test::write_text(file, record.dump(2));
  }

  // The status `kiln runs list --json` and `kiln runs show --json` report.
  std::pair<std::string, std::string> listed_and_shown() const {
    const auto list = ws.kiln({"runs", "list", "--json"});
    const auto show = ws.kiln({"runs", "show", id, "--json"});
    EXPECT_EQ(list.status.code, 0) << list.output;
    EXPECT_EQ(show.status.code, 0) << show.output;
    const Json runs = Json::parse(list.output);
    EXPECT_EQ(runs.size(), 1u) << list.output;
    return {runs.at(0).at("status"), Json::parse(show.output).at("status")};
  }
};

// The test process itself: alive for as long as the test runs.
kiln::host::HostIdentity this_process() {
  return kiln::host::current_host_identity();
}

}  // namespace

TEST(LivenessCli, ARunWhoseHostStillRunsIsRunningAndIsNotResumed) {
  MarkedRun r;
  r.mark_running(this_process());
  EXPECT_EQ(r.listed_and_shown(), std::make_pair(std::string("running"), std::string("running")));
  const auto refused = r.ws.kiln({"resume", r.id});
  EXPECT_EQ(refused.status.code, 1);
  EXPECT_NE(refused.output.find("is still running (host pid " + std::to_string(::getpid()) + ")"), std::string::npos)
      << refused.output;
}

TEST(LivenessCli, ALivePidWithAnotherStartTimeIsARecycledPidSoTheRunIsInterrupted) {
  MarkedRun r;
  auto host = this_process();
  host.process_start = std::to_string(std::stoll(host.process_start) + 1);
  r.mark_running(host);
  EXPECT_EQ(r.listed_and_shown(), std::make_pair(std::string("interrupted"), std::string("interrupted")));
  const auto text = r.ws.kiln({"runs", "show", r.id});
  EXPECT_NE(text.output.find("status: interrupted"), std::string::npos) << text.output;
  const auto resumed = r.ws.kiln({"resume", r.id, "--json"});
  EXPECT_EQ(resumed.status.code, 0) << resumed.output;
  EXPECT_EQ(kiln::test::summary_of(resumed.output)["status"], "succeeded");
}

TEST(LivenessCli, AnotherBootIdMeansTheMachineRebootedSoTheRunIsInterrupted) {
  MarkedRun r;
  auto host = this_process();
  host.boot_id = "00000000-0000-0000-0000-000000000000";
  r.mark_running(host);
  EXPECT_EQ(r.listed_and_shown(), std::make_pair(std::string("interrupted"), std::string("interrupted")));
  const auto resumed = r.ws.kiln({"resume", r.id, "--json"});
  EXPECT_EQ(resumed.status.code, 0) << resumed.output;
  EXPECT_EQ(kiln::test::summary_of(resumed.output)["status"], "succeeded");
}

TEST(LivenessCli, AnotherHostIsUnknownSoTheRunStaysRunningAndResumeNeedsForce) {
  MarkedRun r;
  auto host = this_process();
  host.host += ".elsewhere";
  r.mark_running(host);
  EXPECT_EQ(r.listed_and_shown(), std::make_pair(std::string("running"), std::string("running")));
  const auto refused = r.ws.kiln({"resume", r.id});
  EXPECT_EQ(refused.status.code, 1);
  EXPECT_NE(refused.output.find("was started on " + host.host), std::string::npos) << refused.output;
  const auto forced = r.ws.kiln({"resume", r.id, "--force", "--json"});
  EXPECT_EQ(forced.status.code, 0) << forced.output;
}

TEST(LivenessCli, ARunJsonWithTheWholeIdentityIsReadBeforeTheDatabase) {
  MarkedRun r;
  auto recycled = this_process();
  recycled.process_start = std::to_string(std::stoll(recycled.process_start) + 1);
  r.mark_running(this_process(), {{"boot_id", recycled.boot_id}, {"process_start", recycled.process_start}});
  EXPECT_EQ(r.listed_and_shown(), std::make_pair(std::string("interrupted"), std::string("interrupted")));
}

// `kiln logs --follow` polls the record until the step or the run ends: a
// run whose pid was recycled has ended (interrupted), so it stops.
TEST(LivenessCli, LogsFollowStopsWhenTheRunsHostIsGone) {
  MarkedRun r;
  auto host = this_process();
  host.process_start = std::to_string(std::stoll(host.process_start) + 1);
  r.mark_running(host);
  const auto file = r.ws.workspace() / "runs" / r.id / "run.json";
  Json record = Json::parse(kiln::test::read_text(file));
  record["steps"]["e"]["status"] = "running";
  kiln::test::write_text(file, record.dump(2));
  const auto logs = kiln::test::run_kiln({"logs", r.id, "e", "--follow"}, r.ws.env(), std::chrono::seconds(30));
  EXPECT_EQ(logs.status.code, 0) << logs.output;
  EXPECT_NE(logs.output.find("== e attempt 1 =="), std::string::npos) << logs.output;
}

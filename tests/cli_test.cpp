// The `kiln` command line, run as a user runs it.
#include <gtest/gtest.h>
#include <kiln/host/json.hpp>

#include <fcntl.h>
#include <signal.h>

#include <set>
#include <sstream>
#include <thread>

#include "test_support.hpp"

using kiln::host::Json;
using kiln::test::fixture;
using kiln::test::run_kiln;
using kiln::test::TempDir;
namespace fs = std::filesystem;

namespace {

// How long a plugin scan may take before it counts as hung: short, since the
// hang fixture waits it out, but an instrumented kiln on a busy two-core
// machine needs several seconds to scan even a good library.
#if defined(KILN_TEST_SANITIZED)
constexpr const char* kScanTimeoutMs = "8000";
#else
constexpr const char* kScanTimeoutMs = "3000";
#endif

// A plugin dir holding broken libraries, and a private manifest cache.
struct HostileWorkspace {
  HostileWorkspace() {
    for (const char* name : {"fixture_crash_on_load", "fixture_hang_on_load", "fixture_abi_major_2",
                             "fixture_not_a_plugin", "fixture_throw_on_load"})
      fs::copy_file(fixture(name), plugins / (std::string(name) + ".so"));
    kiln::test::write_text(plugins / "garbage.so", "not a library");
  }
  std::vector<std::pair<std::string, std::string>> env() const {
    return {{"KILN_PLUGIN_PATH", plugins.path().string()},
            {"KILN_CACHE_DIR", cache.path().string()},
            {"KILN_SCAN_TIMEOUT_MS", kScanTimeoutMs},
            {"XDG_DATA_HOME", (cache / "data").string()}};
  }
  TempDir plugins, cache;
};

}  // namespace

TEST(Cli, PluginsListSurvivesHostileLibraries) {
  HostileWorkspace ws;
  const auto run = run_kiln({"plugins", "list", "--json"}, ws.env());
  ASSERT_EQ(run.status.code, 0) << run.output;
  const Json listing = Json::parse(run.output);
  std::map<std::string, std::string> reasons;
  // Only the hostile directory counts: a built-in plugin (LibTorch takes seconds
  // to load on a busy machine) may outlive the short scan timeout set here.
  for (const auto& lib : listing["libraries"]) {
    const fs::path path = lib["path"].get<std::string>();
    if (lib["status"] == "error" && path.parent_path() == ws.plugins.path()) reasons[path.filename()] = lib["reason"];
  }
  ASSERT_EQ(reasons.size(), 6u) << run.output;
  EXPECT_NE(reasons["fixture_crash_on_load.so"].find("SIGSEGV"), std::string::npos);
  EXPECT_NE(reasons["fixture_hang_on_load.so"].find("hung while being scanned"), std::string::npos);
  EXPECT_NE(reasons["fixture_abi_major_2.so"].find("major versions must match"), std::string::npos);
  EXPECT_NE(reasons["fixture_not_a_plugin.so"].find("not a kiln plugin"), std::string::npos);
  EXPECT_NE(reasons["fixture_throw_on_load.so"].find("fixture throws from a static constructor"), std::string::npos);
  EXPECT_NE(reasons["garbage.so"].find("not a loadable library"), std::string::npos);
  // The built-in plugins beside the binary are listed too; the util ones must all be there.
  std::set<std::string> names;
  for (const auto& c : listing["components"])
    if (c["name"].get<std::string>().rfind("util.", 0) == 0) names.insert(c["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"util.echo", "util.fail", "util.flaky", "util.noop", "util.objective",
                                          "util.probe", "util.sleep"}));
}

TEST(Cli, PluginsListPrintsATableAndTheSkippedLibraries) {
  HostileWorkspace ws;
  const auto run = run_kiln({"plugins", "list"}, ws.env());
  ASSERT_EQ(run.status.code, 0) << run.output;
  EXPECT_NE(run.output.find("NAME"), std::string::npos);
  EXPECT_NE(run.output.find("util.sleep"), std::string::npos);
  EXPECT_NE(run.output.find("skipped " + (ws.plugins / "garbage.so").string()), std::string::npos) << run.output;
}

TEST(Cli, PluginsDescribeShowsParametersAndPorts) {
  const std::string cache = kiln::test::scan_cache().string();
  const auto run = run_kiln({"plugins", "describe", "util.echo", "--json"}, {{"KILN_CACHE_DIR", cache}});
  ASSERT_EQ(run.status.code, 0) << run.output;
  const Json manifest = Json::parse(run.output);
  EXPECT_EQ(manifest["name"], "util.echo");
  EXPECT_EQ(manifest["parameters"][0]["default"], "hello");
  EXPECT_EQ(manifest["outputs"][0]["type"], "Text");
  const auto text = run_kiln({"plugins", "describe", "util.fail"}, {{"KILN_CACHE_DIR", cache}});
  EXPECT_NE(text.output.find("exit_code (int, default 3, min 0, max 255)"), std::string::npos) << text.output;
}

TEST(Cli, UnknownComponentGetsASuggestion) {
  const auto run =
      run_kiln({"plugins", "describe", "util.ecoh"}, {{"KILN_CACHE_DIR", kiln::test::scan_cache().string()}});
  EXPECT_EQ(run.status.code, 1);
  EXPECT_NE(run.output.find("unknown component 'util.ecoh' (did you mean 'util.echo'?)"), std::string::npos)
      << run.output;
}

TEST(Cli, UnknownCommandsAndOptionsGetSuggestions) {
  auto run = run_kiln({"plugns", "list"});
  EXPECT_EQ(run.status.code, 2);
  EXPECT_NE(run.output.find("unknown command 'plugns' for 'kiln' (did you mean 'plugins'?)"), std::string::npos)
      << run.output;
  run = run_kiln({"plugins", "lst"});
  EXPECT_EQ(run.status.code, 2);
  EXPECT_NE(run.output.find("(did you mean 'list'?)"), std::string::npos) << run.output;
  run = run_kiln({"plugins", "list", "--jsn"});
  EXPECT_EQ(run.status.code, 2);
  EXPECT_NE(run.output.find("unknown option '--jsn' for 'kiln plugins list' (did you mean '--json'?)"),
            std::string::npos)
      << run.output;
  run = run_kiln({"plugins"});
  EXPECT_EQ(run.status.code, 2);
  EXPECT_NE(run.output.find("needs a command: list, describe"), std::string::npos) << run.output;
}

TEST(Cli, HelpIsAvailableEverywhere) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--help"},
                                                                {"plugins", "--help"},
                                                                {"plugins", "list", "--help"},
                                                                {"plugins", "describe", "--help"},
                                                                {"version", "--help"}}) {
    const auto run = run_kiln(args);
    EXPECT_EQ(run.status.code, 0) << args.back();
    EXPECT_NE(run.output.find("Usage:"), std::string::npos) << run.output;
  }
}

TEST(Cli, VersionNamesTheAbi) {
  const auto run = run_kiln({"version"});
  EXPECT_EQ(run.status.code, 0);
  EXPECT_EQ(run.output.rfind("kiln ", 0), 0u);
  EXPECT_NE(run.output.find("plugin ABI " + std::to_string(KILN_ABI_VERSION_MAJOR) + "."), std::string::npos);
}

namespace {

// A workspace with a pipeline file, for the run commands.
struct RunWorkspace {
  std::string write(const std::string& name, const std::string& steps) {
    const auto path = dir / name;
    kiln::test::write_text(path, "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: cli}\n" + steps);
    return path.string();
  }
  std::vector<std::pair<std::string, std::string>> env() const {
    return {{"KILN_CACHE_DIR", kiln::test::scan_cache().string()}, {"KILN_HOME", (dir / "home").string()}};
  }
  TempDir dir;
};

}  // namespace

TEST(RunCli, RunPrintsAJsonSummaryAndExitsZeroOnSuccess) {
  RunWorkspace ws;
  const auto file = ws.write("ok.yaml", "steps:\n  - {name: hi, component: util.echo, parameters: {message: cli}}\n");
  const auto run = run_kiln({"run", file, "--json"}, ws.env());
  ASSERT_EQ(run.status.code, 0) << run.output;
  const Json summary = Json::parse(run.output.substr(run.output.find('{')));
  EXPECT_EQ(summary["status"], "succeeded");
  EXPECT_EQ(summary["steps"]["hi"]["outputs"]["message"], "cli");
  EXPECT_TRUE(fs::exists(fs::path(summary["run_dir"].get<std::string>()) / "run.json"));
  EXPECT_EQ(fs::path(summary["run_dir"].get<std::string>()).parent_path(), ws.dir / "home/runs");
}

TEST(RunCli, PlainOutputNamesEachStepAndFailureExitsNonZero) {
  RunWorkspace ws;
  const auto file =
      ws.write("bad.yaml", "steps:\n  - {name: broken, component: util.fail, parameters: {mode: segfault}}\n");
  const auto run = run_kiln({"run", file, "--workdir", (ws.dir / "w").string()}, ws.env());
  EXPECT_EQ(run.status.code, 1) << run.output;
  EXPECT_NE(run.output.find("broken  failed"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("SIGSEGV"), std::string::npos) << run.output;
}

TEST(RunCli, ParamsOverrideDefaultsAndBadOnesAreRejected) {
  RunWorkspace ws;
  const auto file = ws.write("p.yaml", R"(parameters:
  word: {type: string, default: a}
  count: {type: int, default: 1, max: 5}
steps:
  - {name: e, component: util.echo, parameters: {message: "{{ params.word }}{{ params.count }}"}}
)");
  kiln::test::write_text(ws.dir / "params.yaml", "word: from-file\ncount: 2\n");
  auto run = run_kiln({"run", file, "--json", "--params-file", (ws.dir / "params.yaml").string(), "--param", "count=3"},
                      ws.env());
  ASSERT_EQ(run.status.code, 0) << run.output;
  EXPECT_EQ(Json::parse(run.output.substr(run.output.find('{')))["steps"]["e"]["outputs"]["message"], "from-file3");
  run = run_kiln({"run", file, "--param", "count=9"}, ws.env());
  EXPECT_EQ(run.status.code, 1);
  EXPECT_NE(run.output.find("--param:0:0: parameter 'count': 9 is above the maximum 5"), std::string::npos)
      << run.output;
  run = run_kiln({"run", file, "--param", "cuont=2"}, ws.env());
  EXPECT_NE(run.output.find("no parameter 'cuont' (did you mean 'count'?)"), std::string::npos) << run.output;
}

// The GPU pool comes from --gpus, else KILN_GPUS (both fake here: nothing
// touches a GPU); a step needing more than it holds is refused before anything runs.
TEST(RunCli, GpusComeFromTheFlagOrKilnGpusAndAStepNeedingMoreIsRefused) {
  RunWorkspace ws;
  const auto file = ws.write("g.yaml", R"(steps:
  - {name: pair, component: util.probe, resources: {gpus: 2}}
  - {name: trio, component: util.probe, resources: {gpus: 3}}
)");
  auto env = ws.env();
  env.emplace_back("KILN_GPUS", "4,5,6");
  auto run = run_kiln({"run", file, "--json"}, env);
  ASSERT_EQ(run.status.code, 0) << run.output;
  const Json summary = Json::parse(run.output.substr(run.output.find('{')));
  EXPECT_EQ(summary["steps"]["pair"]["outputs"]["cuda_visible_devices"].get<std::string>().size(), 3u);  // "A,B"
  run = run_kiln({"run", file, "--gpus", "2"}, env);
  EXPECT_EQ(run.status.code, 1) << run.output;
  EXPECT_NE(run.output.find(file + ":6:59: step 'trio' needs 3 GPUs, but this host has 2 for kiln (--gpus 2; "),
            std::string::npos)
      << run.output;
  EXPECT_EQ(run.output.find("pair"), std::string::npos) << run.output;  // nothing ran
  run = run_kiln({"run", file, "--gpus", "many"}, env);
  EXPECT_EQ(run.status.code, 2) << run.output;
  EXPECT_NE(run.output.find("--gpus: 'many' is not a number of GPUs"), std::string::npos) << run.output;
}

TEST(RunCli, ValidateReportsEveryProblemWithItsPosition) {
  RunWorkspace ws;
  const auto file = ws.write("v.yaml", R"(steps:
  - name: a
    component: util.ecoh
  - name: b
    component: util.echo
    parameters: {mesage: x}
    after: [c]
)");
  const auto run = run_kiln({"validate", file}, ws.env());
  EXPECT_EQ(run.status.code, 1);
  EXPECT_NE(run.output.find(file + ":6:16: unknown component 'util.ecoh' (did you mean 'util.echo'?)"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find(file + ":9:26: component 'util.echo' has no parameter 'mesage' (did you mean 'message'?)"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find(file + ":10:13: 'after' names unknown step 'c'"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("3 problems in " + file), std::string::npos) << run.output;
}

TEST(RunCli, ValidateRefusesAnAliasBombWithItsPosition) {
  // Nine levels of ten aliases each: 10^9 scalars from a 591-byte file.
  RunWorkspace ws;
  std::string steps = "x-laughs:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    const std::string prev(1, static_cast<char>(c - 1));
    steps += std::string("  ") + c + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) steps += (i ? ", *" : "*") + prev;
    steps += "]\n";
  }
  steps += "steps:\n  - {name: boom, component: util.echo, parameters: {message: *i}}\n";
  const auto file = ws.write("bomb.yaml", steps);
  const auto run = run_kiln({"validate", file}, ws.env());
  EXPECT_EQ(run.status.code, 1) << run.output;
  EXPECT_NE(run.output.find(file + ":4:1: unknown key 'x-laughs' in pipeline"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(file + ":13:6: alias expansion exceeds 200000 nodes"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("2 problems in " + file), std::string::npos) << run.output;
}

TEST(RunCli, RunsListShowAndLogsReadARunAfterTheFact) {
  RunWorkspace ws;
  const auto file =
      ws.write("l.yaml", "steps:\n  - {name: talk, component: util.echo, parameters: {message: remember me}}\n");
  ASSERT_EQ(run_kiln({"run", file}, ws.env()).status.code, 0);
  auto run = run_kiln({"runs", "list", "--json"}, ws.env());
  ASSERT_EQ(run.status.code, 0) << run.output;
  const Json runs = Json::parse(run.output);
  ASSERT_EQ(runs.size(), 1u);
  const std::string id = runs[0]["id"];
  EXPECT_EQ(runs[0]["status"], "succeeded");
  run = run_kiln({"runs", "show", id.substr(0, 12)}, ws.env());
  EXPECT_NE(run.output.find("status: succeeded"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("talk: succeeded"), std::string::npos) << run.output;
  run = run_kiln({"logs", "latest", "talk"}, ws.env());
  EXPECT_EQ(run.status.code, 0) << run.output;
  EXPECT_NE(run.output.find("[info] echo: remember me"), std::string::npos) << run.output;
  run = run_kiln({"logs", "latest", "tlak"}, ws.env());
  EXPECT_EQ(run.status.code, 1);
  EXPECT_NE(run.output.find("has no step 'tlak'"), std::string::npos) << run.output;
}

TEST(RunCli, InterruptCancelsTheRunCleanly) {
  RunWorkspace ws;
  const auto file = ws.write("c.yaml", R"(steps:
  - {name: long, component: util.sleep, parameters: {seconds: 60}}
finally:
  - {name: after, component: util.echo, parameters: {message: "{{ run.status }}"}}
)");
  kiln::host::Pipe output;
  auto env = ws.env();
  auto child = kiln::host::ChildProcess::spawn({{kiln::test::kiln_exe().string(), "run", file, "--grace", "1"},
                                                {{1, output.write_fd}, {2, output.write_fd}},
                                                {},
                                                env});
  output.close_write();
  // Wait (bounded: a minute, for a sanitizer build on a busy machine that
  // first scans every plugin) until the step is running, then press Ctrl-C.
  const auto runs = ws.dir / "home/runs";
  bool running = false;
  for (int i = 0; i < 1200 && !running; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(runs, ec)) {
      const auto text = kiln::test::read_text(entry.path() / "run.json");
      running = text.find("\"attempts\"") != std::string::npos && text.find("\"running\"") != std::string::npos;
    }
  }
  ASSERT_TRUE(running);
  ::kill(child.pid(), SIGINT);
  const auto status = child.wait();
  EXPECT_EQ(status.code, 130);
  const auto listing = run_kiln({"runs", "show", "latest", "--json"}, ws.env());
  const Json record = Json::parse(listing.output);
  EXPECT_EQ(record["status"], "cancelled");
  EXPECT_EQ(record["steps"]["long"]["status"], "cancelled");
  EXPECT_EQ(record["steps"]["after"]["outputs"]["message"], "cancelled");
}

TEST(RunCli, LogsFollowWaitsForTheStepToFinish) {
  RunWorkspace ws;
  const auto file = ws.write("f.yaml", R"(steps:
  - {name: wait, component: util.sleep, parameters: {seconds: 0.5}}
  - {name: talk, component: util.echo, parameters: {message: followed}, after: [wait]}
)");
  auto child = kiln::host::ChildProcess::spawn(
      {{kiln::test::kiln_exe().string(), "run", file}, {{1, ::open("/dev/null", O_WRONLY | O_CLOEXEC)}}, {}, ws.env()});
  // Bounded wait for the run record to appear: up to 30 s, since a sanitizer
  // build on a busy machine first scans the LibTorch plugin, which takes seconds.
  bool started = false;
  for (int i = 0; i < 1500 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(ws.dir / "home/runs", ec))
      started = started || fs::exists(entry.path() / "run.json");
  }
  ASSERT_TRUE(started);
  const auto logs = run_kiln({"logs", "latest", "talk", "--follow"}, ws.env(), std::chrono::seconds(30));
  EXPECT_EQ(logs.status.code, 0) << logs.output;
  EXPECT_NE(logs.output.find("[info] echo: followed"), std::string::npos) << logs.output;
  EXPECT_EQ(child.wait().code, 0);
}

// Runs `file` with --json and returns the new run's id ('latest' cannot tell
// apart two runs started within the same second).
std::string run_id_of(const std::string& file, const RunWorkspace& ws) {
  const auto run = run_kiln({"run", file, "--json"}, ws.env());
  EXPECT_EQ(run.status.code, 0) << run.output;
  const Json summary = Json::parse(run.output.substr(run.output.find('{')));
  return fs::path(summary["run_dir"].get<std::string>()).filename().string();
}

// Issue 7: `kiln trials` sorts a tuning step's trials by the objective, and a
// second run serves finished trials from the cache instead of running them.
TEST(RunCli, TrialsTableIsSortedAndARerunReusesFinishedTrials) {
  RunWorkspace ws;
  const auto file = ws.write("tune.yaml", R"(steps:
  - name: t
    component: util.objective
    parameters: {epochs: 2}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 0.9, grid_points: 4}}
  - {name: e, component: util.echo}
)");
  const std::string first = run_id_of(file, ws);
  auto run = run_kiln({"trials", first, "t", "--json"}, ws.env());
  ASSERT_EQ(run.status.code, 0) << run.output;
  const Json rows = Json::parse(run.output);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_DOUBLE_EQ(rows[0]["parameters"]["x"].get<double>(), 0.3);  // the best first
  EXPECT_DOUBLE_EQ(rows[3]["parameters"]["x"].get<double>(), 0.9);  // the worst last
  run = run_kiln({"trials", first, "t"}, ws.env());
  EXPECT_EQ(run.output.rfind("trial  status", 0), 0u) << run.output;
  run = run_kiln({"trials", first, "e"}, ws.env());
  EXPECT_EQ(run.status.code, 1);
  EXPECT_NE(run.output.find("step 'e' has no trials table (is it a tuning step?)"), std::string::npos) << run.output;

  run = run_kiln({"trials", run_id_of(file, ws), "t", "--json"}, ws.env());
  for (const Json& row : Json::parse(run.output)) EXPECT_EQ(row["status"], "cached") << row.dump();
}

// Issue 23: with two objectives, `kiln trials` lists the Pareto front first,
// each row marked '*' in the front column, with a column per objective; the
// marked rows are exactly the rows --json flags `pareto`.
TEST(RunCli, TrialsOfTwoObjectivesListTheParetoFrontFirst) {
  RunWorkspace ws;
  const auto file = ws.write("tune.yaml", R"(steps:
  - name: t
    component: util.objective
    parameters: {epochs: 1}
    tune:
      tuner: tune.random
      objectives: [{metric: loss, goal: minimize}, {metric: cost, goal: minimize}]
      space: {x: {type: uniform, low: -1.0, high: 1.0}, y: {type: int, low: -3, high: 5}}
      max_trials: 10
      seed: 3
)");
  const std::string id = run_id_of(file, ws);
  auto run = run_kiln({"trials", id, "t", "--json"}, ws.env());
  ASSERT_EQ(run.status.code, 0) << run.output;
  const Json rows = Json::parse(run.output);
  ASSERT_EQ(rows.size(), 10u);
  size_t front = 0;
  while (front < rows.size() && rows[front]["pareto"].get<bool>()) ++front;
  ASSERT_GE(front, 1u);
  for (size_t i = front; i < rows.size(); ++i) EXPECT_FALSE(rows[i]["pareto"].get<bool>()) << rows.dump();
  run = run_kiln({"trials", id, "t"}, ws.env());
  std::istringstream lines(run.output);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line.rfind("trial  status         front  loss          cost", 0), 0u) << run.output;
  for (size_t i = 0; i < rows.size() && std::getline(lines, line); ++i) {
    EXPECT_EQ(std::stoi(line), rows[i]["trial"].get<int>()) << line;
    EXPECT_EQ(line.substr(22, 1), i < front ? "*" : " ") << line;
  }
}

// A trial template's steps are cached one by one: a re-run serves every
// step of every trial from the cache, and the tuner still sees each curve.
TEST(RunCli, ARerunServesEveryStepOfATemplateTrialFromTheCache) {
  RunWorkspace ws;
  const auto file = ws.write("tune.yaml", R"(templates:
  fit-and-report:
    steps:
      - {name: fit, component: util.objective, parameters: {epochs: 2}}
      - {name: report, component: util.echo, after: fit}
steps:
  - name: t
    tune:
      trial: fit-and-report
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 0.9, grid_points: 4}}
)");
  const auto trials = [&](const std::string& id) {
    const auto run = run_kiln({"trials", id, "t", "--json"}, ws.env());
    EXPECT_EQ(run.status.code, 0) << run.output;
    return Json::parse(run.output);
  };
  const Json first = trials(run_id_of(file, ws));
  ASSERT_EQ(first.size(), 4u);
  for (const Json& row : first) EXPECT_EQ(row["status"], "succeeded") << row.dump();
  const Json second = trials(run_id_of(file, ws));
  ASSERT_EQ(second.size(), 4u);
  for (size_t i = 0; i < second.size(); ++i) {
    EXPECT_EQ(second[i]["status"], "cached") << second[i].dump();
    EXPECT_EQ(second[i]["curve"], first[i]["curve"]) << second[i].dump();  // replayed from the stored curve
  }
  EXPECT_DOUBLE_EQ(second[0]["parameters"]["x"].get<double>(), 0.3);
}

// The trials table is an artifact in the store like any step output: it has
// a digest, lineage, and a downstream step reads it under any executor.
TEST(RunCli, TheTrialsTableIsAStoredArtifactADownstreamStepReads) {
  for (const std::string executor : {"process", "inprocess"}) {
    RunWorkspace ws;
    const auto file = ws.write("tune.yaml", R"(steps:
  - name: t
    component: util.objective
    parameters: {epochs: 2}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 0.9, grid_points: 3}}
  - name: read
    component: util.probe
    inputs: {data: t.outputs.trials}
)");
    const auto run = run_kiln({"run", file, "--json", "--executor", executor}, ws.env());
    ASSERT_EQ(run.status.code, 0) << run.output;
    const Json summary = Json::parse(run.output.substr(run.output.find('{')));
    const Json record = Json::parse(kiln::test::read_text(fs::path(summary["run_dir"].get<std::string>()) / "run.json"));
    const std::string digest = record["steps"]["t"]["digests"]["trials"];
    const auto show = run_kiln({"artifacts", "show", digest}, ws.env());
    ASSERT_EQ(show.status.code, 0) << show.output;
    const Json artifact = Json::parse(show.output);
    EXPECT_EQ(artifact["type"], "TuningTrials");
    EXPECT_EQ(artifact["producer_unit"], "t");
    EXPECT_TRUE(artifact["present"].get<bool>());
    std::set<std::string> uses;
    for (const Json& use : artifact["used_by"])
      uses.insert(use["unit"].get<std::string>() + " " + use["role"].get<std::string>());
    EXPECT_EQ(uses, (std::set<std::string>{"t output", "read input"})) << artifact.dump(2);
    const Json table =
        Json::parse(kiln::test::read_text(fs::path(artifact["path"].get<std::string>()) / "trials.json"));
    EXPECT_EQ(table["trials"].size(), 3u);
    // `kiln trials` finds the table in the store.
    const std::string id = fs::path(summary["run_dir"].get<std::string>()).filename().string();
    const auto trials = run_kiln({"trials", id, "t", "--json"}, ws.env());
    ASSERT_EQ(trials.status.code, 0) << trials.output;
    EXPECT_EQ(Json::parse(trials.output).size(), 3u) << executor;
  }
}

// A cached trial hands its stored curve to the tuner, so a re-run of an ASHA
// search stops the same trials at the same rungs as the first run did.
TEST(RunCli, ARerunOfAnAshaSearchStopsTheSameTrials) {
  RunWorkspace ws;
  const auto file = ws.write("asha.yaml", R"(steps:
  - name: t
    component: util.objective
    parameters: {epochs: 9, epoch_seconds: 0.02}
    tune:
      tuner: tune.asha
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: -1.0, high: 1.0}, y: {type: int, low: 0, high: 4}}
      settings: {max_resource: 9}
      max_trials: 8
      parallel_trials: 1
      seed: 1
)");
  auto statuses = [&] {
    const auto trials = run_kiln({"trials", run_id_of(file, ws), "t", "--json"}, ws.env());
    std::map<int64_t, std::string> out;
    for (const Json& row : Json::parse(trials.output)) out[row["trial"].get<int64_t>()] = row["status"];
    return out;
  };
  const auto first = statuses();
  const auto second = statuses();
  ASSERT_EQ(first.size(), 8u);
  ASSERT_EQ(second.size(), 8u);
  int stopped = 0;
  for (const auto& [trial, status] : first) {
    stopped += status == "early-stopped";
    // Succeeded trials come back from the cache; stopped ones run and stop again.
    EXPECT_EQ(second.at(trial), status == "succeeded" ? "cached" : status) << trial;
  }
  EXPECT_GT(stopped, 0);
}

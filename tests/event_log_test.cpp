// The per-run event log (runs/<id>/events.jsonl, docs/events.md): gap-free
// sequence numbers, readers that follow a run from another thread or
// process and resume mid-run, whole lines only after a crash, numbering
// continued by a resume, and the events a UI needs (states, retries,
// metrics, progress, cache decisions with their reasons).
#include <gtest/gtest.h>
#include <kiln/host/engine.hpp>
#include <kiln/host/event_log.hpp>
#include <kiln/host/spec.hpp>

#include <fstream>
#include <set>
#include <thread>

#include "store_workspace.hpp"
#include "test_support.hpp"

using kiln::host::EventLogReader;
using kiln::host::EventLogWriter;
using kiln::host::Json;
using kiln::test::TempDir;
namespace fs = std::filesystem;
namespace ev = kiln::host::events;

namespace {

std::vector<Json> read_all(const fs::path& file) {
  EventLogReader reader(file);
  return reader.poll();
}

// Every line parses, numbering runs 1, 2, ... without a gap.
void expect_gap_free(const std::vector<Json>& events) {
  ASSERT_FALSE(events.empty());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i]["seq"].get<uint64_t>(), i + 1) << events[i].dump();
    EXPECT_EQ(events[i]["v"], kiln::host::kEventLogVersion);
    EXPECT_TRUE(events[i].contains("ts") && events[i].contains("type")) << events[i].dump();
  }
}

std::vector<Json> of_type(const std::vector<Json>& events, const std::string& type) {
  std::vector<Json> out;
  for (const auto& e : events)
    if (e["type"] == type) out.push_back(e);
  return out;
}

void append(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::app | std::ios::binary);
  out << text;
}

}  // namespace

TEST(EventLog, AReaderSeesOnlyWholeLinesAndContinuesWhereItStopped) {
  TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  EventLogReader reader(file);
  EXPECT_TRUE(reader.poll().empty());  // not written yet
  {
    EventLogWriter log(file);
    EXPECT_EQ(log.next_seq(), 1u);
    log.on_event(1, ev::RunStarted{"r1", "p", "p.yaml", "process", Json::object(), false, {"a"}, {}});
    log.on_event(2, ev::StepChanged{"a", kiln::host::StepStatus::running, "", nullptr, std::nullopt, true, nullptr});
    EXPECT_TRUE(reader.poll().empty()) << "nothing is visible before a flush";
    log.flush(false);
    const auto first = reader.poll();
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0]["type"], "run_started");
    EXPECT_EQ(first[0]["steps"], Json::array({"a"}));
    EXPECT_EQ(first[1]["status"], "running");
    log.on_event(3, ev::RunFinished{kiln::host::RunStatus::succeeded, "", 0.5});
  }  // the destructor flushes
  const auto second = reader.poll();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0]["seq"], 3);
  EXPECT_TRUE(reader.run_finished());
  EXPECT_TRUE(reader.poll().empty());
}

TEST(EventLog, APartialLastLineIsInvisibleAndTheNextWriterCutsItAndGoesOnNumbering) {
  TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  {
    EventLogWriter log(file);
    log.on_event(1, ev::RunStarted{"r1", "p", "p.yaml", "process", Json::object(), false, {}, {}});
    log.on_event(2, ev::CancelRequested{1});
  }
  append(file, R"({"v":1,"seq":3,"ts":1,"type":"run_fin)");  // a writer killed mid-line
  EventLogReader reader(file);
  EXPECT_EQ(reader.poll().size(), 2u);
  {
    EventLogWriter resumed(file);
    EXPECT_EQ(resumed.next_seq(), 3u);
    resumed.on_event(3, ev::RunStarted{"r1", "p", "p.yaml", "process", Json::object(), true, {}, {}});
  }
  const auto more = reader.poll();
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0]["resumed"], true);
  expect_gap_free(read_all(file));
}

TEST(EventLog, AWholeLineThatIsNotAnEventIsAnErrorNamingTheLine) {
  TempDir dir;
  const fs::path file = dir.path() / "events.jsonl";
  kiln::test::write_text(file, "{\"v\":1,\"seq\":1,\"type\":\"x\"}\nnot json\n");
  EventLogReader reader(file);
  try {
    reader.poll();
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("events.jsonl:2: not an event log line"), std::string::npos) << e.what();
  }
}

// A run followed live from another thread: one reader from the start, one
// that joins mid-run from the first's position; both see every event once,
// in order, and the log carries what a UI shows live.
TEST(EventLog, ReadersFollowARunLiveAndOneJoiningMidRunSeesEveryLaterEvent) {
  TempDir workspace;
  const std::string yaml = R"(apiVersion: kiln/v1
kind: Pipeline
metadata: {name: live}
steps:
  - {name: first, component: util.echo, parameters: {message: hi}}
  - name: loop
    component: util.sleep
    for_each: [1, 2, 3]
    parallelism: 1
    after: [first]
    parameters: {seconds: 0.15}
  - name: flaky
    component: util.flaky
    parameters: {failures: 1}
    retries: {limit: 2, backoff: 50ms}
  - {name: trial, component: util.objective, parameters: {epochs: 3}, after: [loop]}
)";
  const auto plan = kiln::host::plan_pipeline(kiln::host::parse_pipeline_text(yaml, "live.yaml"), kiln::test::util_catalog(), {});
  kiln::host::RunOptions options;
  options.executor = "process";
  options.jobs = 2;
  options.run_dir = workspace.path() / "run";
  options.run_id = "run";
  options.grace_seconds = 0.5;
  const fs::path file = options.run_dir / kiln::host::kEventLogName;
  std::map<std::string, std::unique_ptr<kiln::host::Executor>> executors;
  executors["process"] = kiln::host::make_process_executor(kiln::test::kiln_exe());
  kiln::host::Engine engine(plan, options, std::move(executors));
  Json record;
  std::thread runner([&] { record = engine.run(); });

  std::vector<Json> from_start, joined;
  uint64_t joined_at = 0;
  EventLogReader early(file);
  std::optional<EventLogReader> late;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && !(early.run_finished() && late && late->run_finished())) {
    for (auto& e : early.poll()) from_start.push_back(std::move(e));
    if (!late && of_type(from_start, "attempt_started").size() >= 2) {  // mid-run
      joined_at = early.next_seq();
      late.emplace(file, joined_at);
    }
    if (late)
      for (auto& e : late->poll()) joined.push_back(std::move(e));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  runner.join();
  ASSERT_EQ(record["status"], "succeeded") << record.dump(2);
  ASSERT_TRUE(late.has_value());
  expect_gap_free(from_start);
  EXPECT_EQ(from_start, read_all(file));
  ASSERT_FALSE(joined.empty());
  EXPECT_EQ(joined.front()["seq"].get<uint64_t>(), joined_at);
  EXPECT_EQ(joined, std::vector<Json>(from_start.begin() + static_cast<long>(joined_at - 1), from_start.end()));

  EXPECT_EQ(from_start.front()["type"], "run_started");
  EXPECT_EQ(from_start.back()["type"], "run_finished");
  EXPECT_EQ(from_start.back()["status"], "succeeded");
  std::set<std::string> finished_units;
  for (const auto& e : of_type(from_start, "unit_finished")) finished_units.insert(e["unit"].get<std::string>());
  EXPECT_EQ(finished_units, (std::set<std::string>{"first", "loop[0]", "loop[1]", "loop[2]", "flaky", "trial"}));
  const auto retries = of_type(from_start, "retry_scheduled");
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0]["unit"], "flaky");
  EXPECT_NE(retries[0]["message"].get<std::string>().find("flaky failure 1"), std::string::npos);
  const auto ended = of_type(from_start, "attempt_ended");
  EXPECT_EQ(ended.size(), 7u);  // six units, one of them twice
  const auto metrics = of_type(from_start, "metric");
  ASSERT_EQ(metrics.size(), 3u);  // one per epoch
  EXPECT_EQ(metrics[0]["unit"], "trial");
  EXPECT_EQ(metrics[0]["name"], "loss");
  EXPECT_EQ(metrics[2]["at"], 3);
  EXPECT_FALSE(of_type(from_start, "progress").empty());
  const auto loop = of_type(from_start, "step_changed");
  EXPECT_TRUE(std::any_of(loop.begin(), loop.end(),
                          [](const Json& e) { return e["step"] == "loop" && e.value("items", 0) == 3; }));
  // Each attempt's first event precedes its end; a unit's end follows its attempt's.
  for (const auto& unit : finished_units) {
    uint64_t started = 0, done = 0;
    for (const auto& e : from_start)
      if (e.value("unit", "") == unit) {
        if (e["type"] == "attempt_started" && started == 0) started = e["seq"];
        if (e["type"] == "unit_finished") done = e["seq"];
      }
    EXPECT_LT(started, done) << unit;
  }
}

// With a store, every unit's cache decision is in the log with its reason,
// and a rerun's hits are there too.
TEST(EventLog, CacheDecisionsAndTheirReasonsAreLogged) {
  kiln::test::StoreWorkspace ws;
  const std::string file = ws.pipeline("steps:\n  - {name: s, component: fx.step, parameters: {tag: s}}\n");
  const Json first = ws.run(file);
  const Json second = ws.run(file);
  const fs::path runs = ws.workspace() / "runs";
  const auto miss = of_type(read_all(runs / first["run_id"].get<std::string>() / "events.jsonl"), "cache_decided");
  ASSERT_EQ(miss.size(), 1u);
  EXPECT_EQ(miss[0]["cache"], "miss");
  EXPECT_EQ(miss[0]["reason"], "no earlier run of this step");
  const auto again = read_all(runs / second["run_id"].get<std::string>() / "events.jsonl");
  expect_gap_free(again);
  const auto hit = of_type(again, "cache_decided");
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0]["cache"], "hit");
  EXPECT_EQ(of_type(again, "unit_finished").at(0)["status"], "cached");
  EXPECT_TRUE(of_type(again, "attempt_started").empty());
}

// A host killed -9 leaves a log readable up to its last whole line; the
// resume goes on numbering after it, so the whole run reads gap-free.
TEST(EventLog, AKilledRunLeavesAReadableLogThatTheResumeContinues) {
  kiln::test::StoreWorkspace ws;
  const std::string file = ws.pipeline(
      "steps:\n"
      "  - {name: a, component: fx.step, parameters: {tag: a}}\n"
      "  - {name: b, component: fx.step, inputs: {data: a.outputs.data}, parameters: {tag: b}}\n"
      "  - {name: c, component: fx.step, inputs: {data: b.outputs.data}, parameters: {tag: c}}\n");
  const auto killed = ws.kiln({"run", file, "--json"}, {{"KILN_TEST_KILL_AT", "attempt-started:2"}});
  ASSERT_EQ(killed.status.signal, SIGKILL) << killed.output;
  fs::path run_dir;
  for (const auto& e : fs::directory_iterator(ws.workspace() / "runs")) run_dir = e.path();
  const auto before = read_all(run_dir / "events.jsonl");
  expect_gap_free(before);
  EXPECT_EQ(before.front()["type"], "run_started");
  EXPECT_TRUE(of_type(before, "run_finished").empty());

  const auto resumed = ws.kiln({"resume", run_dir.filename().string(), "--json"});
  ASSERT_EQ(resumed.status.code, 0) << resumed.output;
  const auto all = read_all(run_dir / "events.jsonl");
  expect_gap_free(all);
  const auto starts = of_type(all, "run_started");
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[1]["resumed"], true);
  EXPECT_EQ(all.back()["type"], "run_finished");
  EXPECT_EQ(all.back()["status"], "succeeded");
  // The resume keeps `a` (finished before the kill) and says so.
  bool kept_a = false;
  for (const auto& e : of_type(all, "unit_finished"))
    kept_a = kept_a || (e["unit"] == "a" && e.value("resumed", false));
  EXPECT_TRUE(kept_a);
}

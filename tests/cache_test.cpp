// Exact caching end to end, through `kiln run`: each kind of change reruns
// exactly the steps it affects; corrupt or missing cached artifacts are
// recomputed; several kiln processes share one workspace.
#include <gtest/gtest.h>
#include <kiln/host/store.hpp>

#include <fcntl.h>
#include <signal.h>

#include <algorithm>
#include <thread>

#include "store_workspace.hpp"

using kiln::host::Json;
using kiln::test::StoreWorkspace;
namespace fs = std::filesystem;

namespace {

// Two sources read files A and B; a1 and b1 transform them; join reads both.
// The sources read outside files, so they opt out of caching and always run.
std::string diamond(const StoreWorkspace& ws) {
  const std::string log = ws.path("log").string();
  return "parameters:\n  salt: {type: string, default: s}\nsteps:\n"
         "  - {name: read_a, component: fx.read, cache: false, parameters: {path: " +
         ws.path("A").string() + ", tag: read_a, log: " + log +
         "}}\n"
         "  - {name: read_b, component: fx.read, cache: false, parameters: {path: " +
         ws.path("B").string() + ", tag: read_b, log: " + log +
         "}}\n"
         "  - {name: a1, component: fx.step, inputs: {data: read_a.outputs.data}, parameters: {tag: a1, log: " +
         log +
         ", salt: '{{ params.salt }}'}}\n"
         "  - {name: b1, component: fx.step, inputs: {data: read_b.outputs.data}, parameters: {tag: b1, log: " +
         log +
         "}}\n"
         "  - {name: join, component: fx.step, inputs: {data: a1.outputs.data, extra: b1.outputs.data},"
         " parameters: {tag: join, log: " +
         log +
         "}}\n"
         "  - {name: hello, component: util.echo, parameters: {message: unrelated}}\n";
}

std::map<std::string, std::string> statuses(const Json& summary) {
  std::map<std::string, std::string> out;
  for (const auto& [name, step] : summary["steps"].items()) out[name] = step["status"];
  return out;
}

std::string miss(const Json& summary, const std::string& step) {
  return summary["steps"][step].value("cache_miss", "");
}

// Log lines written since `before` lines, sorted.
std::vector<std::string> ran_since(const StoreWorkspace& ws, size_t before) {
  auto lines = ws.log();
  std::vector<std::string> out(lines.begin() + static_cast<long>(std::min(before, lines.size())), lines.end());
  std::sort(out.begin(), out.end());
  return out;
}

struct CacheTest : ::testing::Test {
  CacheTest() {
    kiln::test::write_text(ws.path("A"), "alpha");
    kiln::test::write_text(ws.path("B"), "beta");
    file = ws.pipeline(diamond(ws));
    first = ws.run(file);
  }
  StoreWorkspace ws;
  std::string file;
  Json first;
};

}  // namespace

TEST_F(CacheTest, AnUnchangedRerunIsServedFromTheCache) {
  EXPECT_EQ(first["status"], "succeeded");
  EXPECT_EQ(ran_since(ws, 0), (std::vector<std::string>{"a1", "b1", "join", "read_a", "read_b"}));
  const size_t before = ws.log().size();
  const Json again = ws.run(file);
  EXPECT_EQ(again["status"], "succeeded");
  EXPECT_EQ(statuses(again), (std::map<std::string, std::string>{{"a1", "cached"},
                                                                 {"b1", "cached"},
                                                                 {"hello", "cached"},
                                                                 {"join", "cached"},
                                                                 {"read_a", "succeeded"},
                                                                 {"read_b", "succeeded"}}));
  EXPECT_EQ(ran_since(ws, before), (std::vector<std::string>{"read_a", "read_b"}));
  EXPECT_EQ(ws.output(again["run_id"], "join"), ws.output(first["run_id"], "join"));
  EXPECT_EQ(again["steps"]["a1"]["outputs"], first["steps"]["a1"]["outputs"]);  // output parameters too
}

TEST_F(CacheTest, AChangedParameterRerunsThatStepAndWhatReadsIt) {
  const size_t before = ws.log().size();
  const Json again = ws.run(file, {"--param", "salt=t"});
  EXPECT_EQ(ran_since(ws, before), (std::vector<std::string>{"a1", "join", "read_a", "read_b"}));
  EXPECT_EQ(statuses(again)["b1"], "cached");
  EXPECT_EQ(statuses(again)["hello"], "cached");
  EXPECT_EQ(miss(again, "a1"), "parameters changed (salt)");
  EXPECT_EQ(miss(again, "join"), "input 'data' changed");
  const auto show = ws.kiln({"runs", "show", again["run_id"]});
  EXPECT_NE(show.output.find("cache: miss (parameters changed (salt))"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("b1: cached"), std::string::npos) << show.output;
}

TEST_F(CacheTest, OneChangedByteOfAnInputFileRerunsOnlyItsBranch) {
  kiln::test::write_text(ws.path("B"), "betb");
  const size_t before = ws.log().size();
  const Json again = ws.run(file);
  EXPECT_EQ(ran_since(ws, before), (std::vector<std::string>{"b1", "join", "read_a", "read_b"}));
  EXPECT_EQ(statuses(again)["a1"], "cached");
  EXPECT_EQ(miss(again, "b1"), "input 'data' changed");
  EXPECT_EQ(miss(again, "join"), "input 'extra' changed");
  EXPECT_EQ(ws.output(again["run_id"], "join"), "alpha|a1s:v1betb|b1:v1|join:v1");
}

TEST_F(CacheTest, ARebuiltPluginRerunsItsStepsButNotOthers) {
  ws.use_plugin("v2");
  const size_t before = ws.log().size();
  const Json again = ws.run(file);
  EXPECT_EQ(ran_since(ws, before), (std::vector<std::string>{"a1", "b1", "join", "read_a", "read_b"}));
  EXPECT_EQ(statuses(again)["hello"], "cached");  // another plugin: untouched
  EXPECT_EQ(miss(again, "a1"), "plugin library changed");
  EXPECT_EQ(miss(again, "join"), "plugin library changed; inputs 'data', 'extra' changed");
  EXPECT_EQ(ws.output(again["run_id"], "join"), "alpha|a1s:v2beta|b1:v2|join:v2");
  ws.use_plugin("v1");  // back to the old code: the old entries hit again
  const size_t back = ws.log().size();
  ws.run(file);
  EXPECT_EQ(ran_since(ws, back), (std::vector<std::string>{"read_a", "read_b"}));
}

TEST_F(CacheTest, ACorruptOrMissingCachedArtifactIsRecomputedNotUsed) {
  kiln::host::Store store(ws.workspace());
  const auto digest_of = [&](const std::string& step) {
    const auto row =
        store.db.query_one("SELECT artifacts FROM steps WHERE run_id=? AND unit=?", {first["run_id"], step});
    return Json::parse((*row)["artifacts"].get<std::string>())["data"].get<std::string>();
  };
  const fs::path content = store.artifacts.path_of(digest_of("b1")) / "content";
  fs::permissions(content, fs::perms::owner_write, fs::perm_options::add);
  kiln::test::write_text(content, "tampered");
  const auto fsck = ws.kiln({"fsck"});
  EXPECT_EQ(fsck.status.code, 1) << fsck.output;
  EXPECT_NE(fsck.output.find("does not match its digest"), std::string::npos) << fsck.output;
  fs::remove_all(store.artifacts.path_of(digest_of("a1")));  // and one simply gone

  const size_t before = ws.log().size();
  const Json again = ws.run(file);
  EXPECT_EQ(ran_since(ws, before), (std::vector<std::string>{"a1", "b1", "read_a", "read_b"}));
  EXPECT_EQ(miss(again, "b1"), "the cached artifact was missing or corrupt");
  EXPECT_EQ(statuses(again)["join"], "cached");  // recomputed inputs have the same digests
  EXPECT_EQ(ws.output(again["run_id"], "join"), ws.output(first["run_id"], "join"));
  const auto clean = ws.kiln({"fsck"});
  EXPECT_EQ(clean.status.code, 0) << clean.output;
}

TEST_F(CacheTest, NoCacheAndCacheFalseRunSteps) {
  const size_t before = ws.log().size();
  const Json again = ws.run(file, {"--no-cache"});
  EXPECT_EQ(ran_since(ws, before), (std::vector<std::string>{"a1", "b1", "join", "read_a", "read_b"}));
  EXPECT_EQ(statuses(again)["hello"], "succeeded");
  const auto show = ws.kiln({"runs", "show", again["run_id"]});
  EXPECT_NE(show.output.find("cache: off (--no-cache)"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("cache: off (cache: false)"), std::string::npos) << show.output;
}

TEST_F(CacheTest, LineageWalksBackToTheSources) {
  const auto text = ws.kiln({"lineage", first["run_id"].get<std::string>() + "/join/data"});
  ASSERT_EQ(text.status.code, 0) << text.output;
  for (const char* expected : {"output 'data' of step join", "input 'extra':", "output 'data' of step b1",
                               "output 'data' of step read_a", "component fx.read", "\"tag\":\"read_b\""})
    EXPECT_NE(text.output.find(expected), std::string::npos) << expected << "\n" << text.output;
  const auto json = ws.kiln({"lineage", first["run_id"].get<std::string>() + "/join/data", "--json"});
  const Json tree = Json::parse(json.output);
  EXPECT_EQ(tree["inputs"]["data"]["inputs"]["data"]["producer"]["step"], "read_a");
  EXPECT_EQ(tree["inputs"]["extra"]["parameters"]["tag"], "b1");
  const auto list = ws.kiln({"artifacts", "list", "--json"});
  EXPECT_EQ(Json::parse(list.output).size(), 6u) << list.output;
  const auto exported = ws.kiln({"artifacts", "export", tree["digest"], ws.path("out").string()});
  ASSERT_EQ(exported.status.code, 0) << exported.output;
  EXPECT_EQ(kiln::test::read_text(ws.path("out") / "content"), "alpha|a1s:v1beta|b1:v1|join:v1");
}

TEST_F(CacheTest, GcRemovesOnlyUnreferencedArtifactsAndOnlyWhenAsked) {
  kiln::host::Store store(ws.workspace());
  kiln::test::write_text(ws.path("orphan") / "x", "left by a killed commit");
  const auto orphan = store.artifacts.commit(ws.path("orphan")).digest;
  const size_t stored = store.artifacts.list().size();
  const auto recent = ws.kiln({"gc", "--delete"});  // too young: a run may be about to record it
  EXPECT_NE(recent.output.find("1 unreferenced but stored in the last hour: kept"), std::string::npos) << recent.output;
  EXPECT_EQ(store.artifacts.list().size(), stored);
  const auto dry = ws.kiln({"gc", "--all"});
  EXPECT_NE(dry.output.find("would remove " + orphan), std::string::npos) << dry.output;
  EXPECT_EQ(store.artifacts.list().size(), stored);
  const auto real = ws.kiln({"gc", "--delete", "--all"});
  EXPECT_NE(real.output.find("1 removed"), std::string::npos) << real.output;
  EXPECT_EQ(store.artifacts.list().size(), stored - 1);
  EXPECT_EQ(ws.kiln({"fsck"}).status.code, 0);
}

TEST(CacheConcurrency, TwoRunsAndAReaderShareOneWorkspace) {
  StoreWorkspace ws;
  std::string body = "steps:\n";
  for (int i = 0; i < 8; ++i)
    body += "  - {name: s" + std::to_string(i) + ", component: fx.step, parameters: {tag: s" + std::to_string(i % 4) +
            "}}\n";  // pairs of steps produce the same bytes: concurrent commits of one digest
  const auto file = ws.pipeline(body);
  std::vector<kiln::host::CapturedRun> results(2);
  std::vector<std::thread> runs;
  for (int r = 0; r < 2; ++r)
    runs.emplace_back([&, r] {
      results[static_cast<size_t>(r)] = ws.kiln({"run", file, "--json", "--jobs", "2", "--no-cache"});
    });
  for (int i = 0; i < 5; ++i) {
    const auto list = ws.kiln({"runs", "list"});
    EXPECT_EQ(list.status.code, 0) << list.output;
    const auto artifacts = ws.kiln({"artifacts", "list"});
    EXPECT_EQ(artifacts.status.code, 0) << artifacts.output;
  }
  for (auto& t : runs) t.join();
  for (const auto& r : results) EXPECT_EQ(r.status.code, 0) << r.output;
  kiln::host::Store store(ws.workspace());
  EXPECT_EQ(store.db.query("SELECT id FROM runs WHERE status='succeeded'").size(), 2u);
  EXPECT_EQ(store.artifacts.list().size(), 4u);
  const auto fsck = ws.kiln({"fsck"});
  EXPECT_EQ(fsck.status.code, 0) << fsck.output;
  EXPECT_EQ(ws.run(file)["steps"]["s7"]["status"], "cached");
}

TEST(CacheExecutors, TheInprocessExecutorCachesAndRecordsMetricsToo) {
  StoreWorkspace ws;
  const auto file = ws.pipeline(
      "steps:\n  - {name: a, component: fx.step, parameters: {tag: a}}\n"
      "  - {name: b, component: fx.step, inputs: {data: a.outputs.data}, parameters: {tag: b}}\n");
  const Json first = ws.run(file, {"--executor", "inprocess"});
  EXPECT_EQ(statuses(first), (std::map<std::string, std::string>{{"a", "succeeded"}, {"b", "succeeded"}}));
  const Json again = ws.run(file, {"--executor", "inprocess"});
  EXPECT_EQ(statuses(again), (std::map<std::string, std::string>{{"a", "cached"}, {"b", "cached"}}));
  EXPECT_EQ(ws.output(again["run_id"], "b"), "|a:v1|b:v1");
  kiln::host::Store store(ws.workspace());
  const auto metrics =
      store.db.query("SELECT unit, name, value FROM metrics WHERE run_id=? ORDER BY unit", {first["run_id"]});
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_EQ(metrics[1]["unit"], "b");
  EXPECT_EQ(metrics[1]["name"], "bytes");
  EXPECT_EQ(metrics[1]["value"], 10.0);
}

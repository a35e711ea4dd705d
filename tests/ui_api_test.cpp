// kiln ui's JSON API and event streams (host/ui, docs/ui.md) over loopback,
// against a real workspace: runs made by the built kiln, and synthetic runs
// in a second workspace for the list's paging, sorting and filters (the
// expected pages are computed here from what was written, not by SQL).
// Every wait is bounded: socket timeouts, counted polls, a run that cannot
// end before the test cancels it.
#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/metadata_db.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/subprocess.hpp>
#include <kiln/ui/ui_server.hpp>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>

#include "access.hpp"
#include "query_string.hpp"
#include "raw_http_client.hpp"
#include "synthetic_runs.hpp"
#include "test_support.hpp"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;
using host::Json;
using namespace std::chrono_literals;

// ------------------------------------------------------------------ helpers

std::string request(const std::string& method, const std::string& target, uint16_t port,
                    const std::string& headers = "", const std::string& body = "") {
  std::string text = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n" + headers;
  if (!body.empty() || method == "POST") text += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return text + "\r\n" + body;
}

struct Answer {
  int status = 0;
  Json body;
  Reply reply;
};

Answer call(uint16_t port, const std::string& target, const std::string& headers = "",
            const std::string& method = "GET", const std::string& body = "") {
  Client c(port);
  c.send(request(method, target, port, headers, body));
  Answer a;
  a.reply = c.read_reply();
  a.status = a.reply.status;
  a.body = Json::parse(a.reply.body.empty() ? "null" : a.reply.body, nullptr, false);
  return a;
}

// The reason of an error answer ("" when there is none).
std::string reason(const Answer& a) {
  return a.body.is_object() ? a.body.value("error", "") : "";
}

struct SseMessage {
  std::string id, event, data;
  bool comment = false;  // a heartbeat
};

// The next message of a stream (a "retry:" alone is skipped); nullopt when
// the stream ends or nothing comes within the socket's timeout.
std::optional<SseMessage> next_message(Client& c) {
  for (;;) {
    const std::string block = c.read_until("\n\n");
    if (block.empty()) return std::nullopt;
    SseMessage m;
    bool any = false;
    size_t from = 0;
    while (from < block.size()) {
      const size_t end = block.find('\n', from);
      const std::string line = block.substr(from, end - from);
      from = end + 1;
      if (line.empty()) continue;
      if (line[0] == ':') {
        m.comment = any = true;
      } else if (line.rfind("id: ", 0) == 0) {
        m.id = line.substr(4);
        any = true;
      } else if (line.rfind("event: ", 0) == 0) {
        m.event = line.substr(7);
        any = true;
      } else if (line.rfind("data: ", 0) == 0) {
        m.data = line.substr(6);
        any = true;
      }
    }
    if (any) return m;
  }
}

// A pipeline of util steps: a plain step (whose message looks like HTML: it
// stays data), a two-item loop with a templated parameter, and a step
// reading the first one's text.
const char* kPipeline = R"(apiVersion: kiln/v1
kind: Pipeline
metadata: {name: uitest}
parameters:
  word: {type: string, default: item}
steps:
  - {name: hi, component: util.echo, parameters: {message: "<img src=x onerror=alert(1)>"}}
  - name: each
    component: util.echo
    for_each: [a, b]
    parameters: {message: "{{ params.word }} {{ item }}"}
  - name: tail
    component: util.echo
    parameters: {message: "{{ params.word }}s done"}
    inputs: {text: hi.outputs.text}
    after: [each]
)";

// One workspace with two runs of kPipeline (the second served from the
// cache), shared by the suite: kiln runs take seconds on a busy machine.
class UiApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_text(pipeline_file(), kPipeline);
    for (int i = 0; i < 2; ++i) {
      const auto run = run_kiln({"run", pipeline_file().string(), "--json", "--workdir", workspace().string()}, env());
      ASSERT_EQ(run.status.code, 0) << run.output;
      const Json summary = Json::parse(run.output.substr(run.output.find('{')));
      run_ids_.push_back(summary["run_id"].get<std::string>());
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
    run_ids_.clear();
  }
  static fs::path workspace() { return dir_->path() / "ws"; }
  static fs::path pipeline_file() { return dir_->path() / "uitest.yaml"; }
  static std::vector<std::pair<std::string, std::string>> env() {
    return {{"KILN_CACHE_DIR", kiln::test::scan_cache().string()}, {"KILN_HOME", (dir_->path() / "home").string()}};
  }

  void SetUp() override {
    ASSERT_EQ(run_ids_.size(), 2u);
    ui::UiOptions options;
    options.workspace = workspace();
    options.poll = 20ms;
    options.heartbeat = 200ms;
    server_ = std::make_unique<ui::UiServer>(options);
    server_->start();
  }
  uint16_t port() const { return server_->port(); }

  static TempDir* dir_;
  static std::vector<std::string> run_ids_;
  std::unique_ptr<ui::UiServer> server_;
};

TempDir* UiApi::dir_ = nullptr;
std::vector<std::string> UiApi::run_ids_;

// ---------------------------------------------------------------- the list

TEST(UiRunsList, PagesSortsAndFiltersOnTheServer) {
  TempDir dir;
  const auto runs = add_synthetic_runs(dir.path(), 240, 7);
  ui::UiOptions options;
  options.workspace = dir.path();
  ui::UiServer server(options);
  server.start();
  const uint16_t port = server.port();

  // Newest first by default; pages of 50 cover every run once, in order.
  auto by_start = runs;
  std::sort(by_start.begin(), by_start.end(), [](const auto& a, const auto& b) { return a.started_at > b.started_at; });
  std::vector<std::string> seen;
  for (int offset = 0; offset < 240; offset += 50) {
    const Answer a = call(port, "/api/v1/runs?limit=50&offset=" + std::to_string(offset));
    ASSERT_EQ(a.status, 200) << a.reply.body;
    EXPECT_EQ(a.body["total"], 240);
    EXPECT_EQ(a.body["runs"].size(), std::min<size_t>(50, 240 - offset));
    for (const auto& r : a.body["runs"]) seen.push_back(r["id"].get<std::string>());
  }
  ASSERT_EQ(seen.size(), 240u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], by_start[i].id) << i;

  // Past the end: no runs, the total still there.
  const Answer past = call(port, "/api/v1/runs?offset=1000");
  EXPECT_EQ(past.body["total"], 240);
  EXPECT_TRUE(past.body["runs"].empty());

  // Sorted by duration, shortest first.
  auto by_duration = runs;
  std::stable_sort(by_duration.begin(), by_duration.end(), [](const auto& a, const auto& b) {
    return a.duration_seconds != b.duration_seconds ? a.duration_seconds < b.duration_seconds : a.id < b.id;
  });
  const Answer shortest = call(port, "/api/v1/runs?sort=duration&order=asc&limit=10");
  ASSERT_EQ(shortest.body["runs"].size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(shortest.body["runs"][i]["id"], by_duration[i].id) << i;

  // Filters: status (two of them), pipeline, text, time; counted the same way here.
  const auto count = [&](auto keep) { return std::count_if(runs.begin(), runs.end(), keep); };
  Answer a = call(port, "/api/v1/runs?status=failed,cancelled&limit=500");
  EXPECT_EQ(a.body["total"], count([](const auto& r) { return r.status == "failed" || r.status == "cancelled"; }));
  for (const auto& r : a.body["runs"]) EXPECT_NE(r["status"], "succeeded");
  a = call(port, "/api/v1/runs?pipeline=pipe-3&limit=500");
  EXPECT_EQ(a.body["total"], count([](const auto& r) { return r.pipeline == "pipe-3"; }));
  EXPECT_GT(a.body["total"].get<int>(), 0);
  a = call(port, "/api/v1/runs?q=error+4&limit=500");  // '+' is a space
  EXPECT_EQ(a.body["total"], count([](const auto& r) { return r.message.find("error 4") != std::string::npos; }));
  EXPECT_GT(a.body["total"].get<int>(), 0);
  a = call(port, "/api/v1/runs?q=100_&limit=500");  // '_' is no wildcard
  EXPECT_EQ(a.body["total"], 0);
  const std::string since = by_start[100].started_at, until = by_start[20].started_at;
  a = call(port, "/api/v1/runs?since=" + since + "&until=" + until + "&limit=500");
  EXPECT_EQ(a.body["total"], count([&](const auto& r) { return r.started_at >= since && r.started_at < until; }));
  EXPECT_EQ(a.body["total"], 80);
  a = call(port, "/api/v1/runs?since=2026-05-20&pipeline=pipe-1&status=succeeded&limit=500");
  EXPECT_EQ(a.body["total"], count([](const auto& r) {
              return r.started_at >= "2026-05-20T00:00:00Z" && r.pipeline == "pipe-1" && r.status == "succeeded";
            }));
}

// A run still marked running shows as running while its host lives and as
// interrupted once it is gone (the rule of kiln runs list), in the list and
// in its filters.
TEST(UiRunsList, RunningRunsWhoseHostIsGoneShowAsInterrupted) {
  TempDir dir;
  add_synthetic_runs(dir.path(), 5);
  {
    host::MetadataDb db(dir.path() / "kiln.db");
    const host::HostIdentity me = host::current_host_identity();
    for (const auto& [id, process_start] : {std::pair<std::string, std::string>{"live-run", me.process_start},
                                            {"dead-run", me.process_start + "1"}})  // not this process: gone
      db.execute(
          "INSERT INTO runs (id, pipeline, spec_file, spec_text, parameters, executor, run_dir, status, started_at,"
          " host, pid, boot_id, process_start) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
          {id, "pipe-x", "x.yaml", "", "{}", "process", "/x", "running", "2026-07-01T00:00:00Z", me.host, me.pid,
           me.boot_id, process_start});
  }
  ui::UiOptions options;
  options.workspace = dir.path();
  ui::UiServer server(options);
  server.start();
  Answer a = call(server.port(), "/api/v1/runs?pipeline=pipe-x&sort=id&order=asc");
  ASSERT_EQ(a.body["runs"].size(), 2u) << a.reply.body;
  EXPECT_EQ(a.body["runs"][0]["id"], "dead-run");
  EXPECT_EQ(a.body["runs"][0]["status"], "interrupted");
  EXPECT_EQ(a.body["runs"][1]["status"], "running");
  a = call(server.port(), "/api/v1/runs?status=interrupted");
  ASSERT_EQ(a.body["total"], 1);
  EXPECT_EQ(a.body["runs"][0]["id"], "dead-run");
  a = call(server.port(), "/api/v1/runs?status=running");
  ASSERT_EQ(a.body["total"], 1);
  EXPECT_EQ(a.body["runs"][0]["id"], "live-run");
  a = call(server.port(), "/api/v1/runs?status=interrupted,running,failed&sort=status&order=desc");
  ASSERT_GE(a.body["total"].get<int>(), 2);
  EXPECT_EQ(a.body["runs"][0]["status"], "running");  // running > interrupted > failed
  EXPECT_EQ(a.body["runs"][1]["status"], "interrupted");
}


TEST(UiRunsList, ABadQueryValueIs400WithAJsonReasonNamingIt) {
  TempDir dir;
  add_synthetic_runs(dir.path(), 3);
  ui::UiOptions options;
  options.workspace = dir.path();
  ui::UiServer server(options);
  server.start();
  const std::vector<std::pair<std::string, std::string>> cases{
      {"limit=0", "'limit'"},
      {"limit=501", "'limit'"},
      {"limit=ten", "'limit'"},
      {"offset=-1", "'offset'"},
      {"sort=speed", "'sort'"},
      {"order=up", "'order'"},
      {"status=done", "'status'"},
      {"since=yesterday", "'since'"},
      {"until=2026-13-01T00:00:00", "'until'"},
      {"limt=5", "did you mean 'limit'"},
      {"limit=5&limit=6", "given twice"},
      {"q=%zz", "%-escape"},
      {"q=" + std::string(300, 'x'), "'q'"},
  };
  for (const auto& [query, expected] : cases) {
    const Answer a = call(server.port(), "/api/v1/runs?" + query);
    EXPECT_EQ(a.status, 400) << query << ": " << a.reply.body;
    EXPECT_EQ(header_of(a.reply, "content-type"), "application/json") << query;
    EXPECT_NE(reason(a).find(expected), std::string::npos) << query << ": " << a.reply.body;
  }
}

// ------------------------------------------------------------- run detail

TEST_F(UiApi, RunDetailHasStepsAttemptsDurationsAndTheCacheProducer) {
  const Answer first = call(port(), "/api/v1/runs/" + run_ids_[0]);
  ASSERT_EQ(first.status, 200) << first.reply.body;
  EXPECT_EQ(first.body["id"], run_ids_[0]);
  EXPECT_EQ(first.body["pipeline"], "uitest");
  EXPECT_EQ(first.body["status"], "succeeded");
  ASSERT_EQ(first.body["steps"].size(), 3u);
  const Json& hi = first.body["steps"][0];
  EXPECT_EQ(hi["name"], "hi");
  EXPECT_EQ(hi["status"], "succeeded");
  ASSERT_EQ(hi["attempts"].size(), 1u);
  EXPECT_EQ(hi["attempts"][0]["status"], "succeeded");
  EXPECT_GE(hi["duration_seconds"].get<double>(), 0.0);
  EXPECT_EQ(hi["duration_seconds"], hi["attempts"][0]["duration_seconds"]);
  EXPECT_EQ(hi["cache"]["status"], "miss");
  EXPECT_EQ(hi["outputs"]["message"], "<img src=x onerror=alert(1)>");  // data, as it was
  const Json& each = first.body["steps"][1];
  EXPECT_EQ(each["name"], "each");
  ASSERT_EQ(each["units"].size(), 2u);
  EXPECT_EQ(each["units"][0]["key"], "0");
  EXPECT_EQ(each["units"][1]["outputs"]["message"], "item b");

  // The second run was served from the cache: each hit names the first run.
  const Answer second = call(port(), "/api/v1/runs/" + run_ids_[1]);
  ASSERT_EQ(second.status, 200) << second.reply.body;
  const Json& cached = second.body["steps"][0];
  EXPECT_EQ(cached["status"], "cached");
  EXPECT_EQ(cached["cache"]["status"], "hit");
  EXPECT_EQ(cached["cache"]["producer"]["run"], run_ids_[0]);
  EXPECT_EQ(cached["cache"]["producer"]["unit"], "hi");
  EXPECT_EQ(second.body["steps"][1]["units"][1]["cache"]["producer"]["unit"], "each[1]");

  EXPECT_EQ(call(port(), "/api/v1/runs/no-such-run").status, 404);
  EXPECT_EQ(call(port(), "/api/v1/runs/" + run_ids_[0].substr(0, 10)).status, 404);  // no prefixes
  const Answer bad = call(port(), "/api/v1/runs/a%20b");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(reason(bad).find("not a run id"), std::string::npos);
}

// What each unit ran with: its parameters after templating (and the
// component's defaults), its inputs with the upstream unit, output and
// artifact digest they were wired to; for a unit that ran, and for a cache
// hit (which runs no attempt). The event log carries the same.
TEST_F(UiApi, RunDetailCarriesResolvedParametersAndInputs) {
  for (const std::string& id : run_ids_) {
    const Answer a = call(port(), "/api/v1/runs/" + id);
    ASSERT_EQ(a.status, 200) << a.reply.body;
    const Json& hi = a.body["steps"][0];
    ASSERT_TRUE(hi.contains("parameters")) << hi.dump();
    EXPECT_EQ(hi["parameters"]["message"], "<img src=x onerror=alert(1)>");
    EXPECT_EQ(hi["inputs"], Json::object());
    ASSERT_TRUE(hi["digests"].contains("text")) << hi.dump();
    const Json& units = a.body["steps"][1]["units"];
    ASSERT_EQ(units.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const Json& unit = units[i];
      const std::string item = i == 0 ? "a" : "b";
      EXPECT_EQ(unit["parameters"]["message"], "item " + item) << unit.dump();  // {{ params.word }} {{ item }}
      EXPECT_EQ(unit["inputs"], Json::object()) << unit.dump();
    }
    const Json& tail = a.body["steps"][2];
    EXPECT_EQ(tail["parameters"]["message"], "items done") << tail.dump();
    EXPECT_EQ(tail["inputs"], (Json{{"text", {{"step", "hi"}, {"output", "text"}, {"digest", hi["digests"]["text"]}}}}))
        << tail.dump();
  }
  const Answer first = call(port(), "/api/v1/runs/" + run_ids_[0]);
  const Answer second = call(port(), "/api/v1/runs/" + run_ids_[1]);
  EXPECT_EQ(second.body["steps"][1]["units"][0]["cache"]["status"], "hit");
  EXPECT_TRUE(second.body["steps"][1]["units"][0]["attempts"].empty());
  EXPECT_EQ(second.body["steps"][2]["cache"]["status"], "hit");
  EXPECT_EQ(first.body["steps"][2]["inputs"], second.body["steps"][2]["inputs"]);

  // In the event log: on attempt_started (a unit that ran), on a hit's cache_decided.
  for (size_t r = 0; r < 2; ++r) {
    std::ifstream in(workspace() / "runs" / run_ids_[r] / "events.jsonl");
    size_t carried = 0;
    for (std::string line; std::getline(in, line);) {
      const Json e = Json::parse(line);
      if (e["unit"] != "tail") continue;
      if (e["type"] == "attempt_started" || (e["type"] == "cache_decided" && e["cache"] == "hit")) {
        EXPECT_EQ(e["parameters"]["message"], "items done") << line;
        EXPECT_EQ(e["inputs"]["text"]["step"], "hi") << line;
        ++carried;
      }
    }
    EXPECT_EQ(carried, 1u) << run_ids_[r];
  }
}

TEST_F(UiApi, RunsListOfRealRuns) {
  const Answer a = call(port(), "/api/v1/runs?pipeline=uitest&sort=id&order=asc");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_EQ(a.body["total"], 2);
  std::vector<std::string> ids = run_ids_;
  std::sort(ids.begin(), ids.end());
  ASSERT_EQ(a.body["runs"].size(), 2u);
  EXPECT_EQ(a.body["runs"][0]["id"], ids[0]);
  EXPECT_EQ(a.body["runs"][1]["status"], "succeeded");
}

// ------------------------------------------------------------------- logs

TEST_F(UiApi, StepLogsAreReadByByteRangeOrRaw) {
  // A known stdout for hi's attempt (echo writes none of its own).
  const Answer detail = call(port(), "/api/v1/runs/" + run_ids_[0]);
  const fs::path attempt_dir =
      workspace() / "runs" / run_ids_[0] / detail.body["steps"][0]["attempts"][0]["dir"].get<std::string>();
  std::string content;
  for (int i = 0; content.size() < 200000; ++i) content += "line " + std::to_string(i) + "\n";
  write_text(attempt_dir / "stdout.log", content);
  const std::string base = "/api/v1/runs/" + run_ids_[0] + "/steps/hi/logs";

  Answer a = call(port(), base);  // the last 64 KiB
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_EQ(a.body["size"], content.size());
  EXPECT_EQ(a.body["offset"], content.size() - 65536);
  EXPECT_EQ(a.body["next_offset"], content.size());
  EXPECT_EQ(a.body["text"], content.substr(content.size() - 65536));
  EXPECT_EQ(a.body["attempt"], 1);
  EXPECT_EQ(a.body["finished"], true);

  a = call(port(), base + "?offset=10&limit=25");
  EXPECT_EQ(a.body["text"], content.substr(10, 25));
  EXPECT_EQ(a.body["next_offset"], 35);
  a = call(port(), base + "?offset=" + std::to_string(content.size()));  // at the end: nothing yet
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body["text"], "");
  a = call(port(), base + "?offset=" + std::to_string(content.size() + 1));
  EXPECT_EQ(a.status, 416);
  EXPECT_NE(reason(a).find("past the end"), std::string::npos);

  // The structured log (events.jsonl) of a loop item.
  a = call(port(), "/api/v1/runs/" + run_ids_[0] + "/steps/each%5B1%5D/logs?stream=events");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_NE(a.body["text"].get<std::string>().find("echo: item b"), std::string::npos) << a.body["text"];

  EXPECT_EQ(call(port(), "/api/v1/runs/" + run_ids_[0] + "/steps/each/logs").status, 400);  // a loop: name an item
  EXPECT_EQ(call(port(), "/api/v1/runs/" + run_ids_[0] + "/steps/nope/logs").status, 404);
  EXPECT_EQ(call(port(), base + "?attempt=2").status, 404);
  EXPECT_EQ(call(port(), base + "?stream=syslog").status, 400);
  EXPECT_EQ(call(port(), base + "?limit=2000000").status, 400);
  // A cache hit ran nothing: no logs to read.
  EXPECT_EQ(call(port(), "/api/v1/runs/" + run_ids_[1] + "/steps/hi/logs").status, 404);
  // The same logs raw (…/logs/raw): whole, or one Range (in this test: a
  // process of its own costs the suite's two kiln runs again).
  content.clear();
  for (int i = 0; content.size() < 5000; ++i) content += "warning " + std::to_string(i) + "\n";
  write_text(attempt_dir / "stderr.log", content);
  const std::string size = std::to_string(content.size());
  const std::string raw = "/api/v1/runs/" + run_ids_[0] + "/steps/hi/logs/raw?stream=stderr";

  a = call(port(), raw);  // whole
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_EQ(a.reply.body, content);
  EXPECT_EQ(header_of(a.reply, "content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(header_of(a.reply, "accept-ranges"), "bytes");
  EXPECT_EQ(header_of(a.reply, "content-disposition"), "attachment; filename=\"" + run_ids_[0] + "-hi-stderr.log\"");
  // The last 100 bytes (a tail's first read), then on from an offset (its next), then at the end: nothing new.
  a = call(port(), raw, "Range: bytes=-100\r\n");
  ASSERT_EQ(a.status, 206) << a.reply.body;
  EXPECT_EQ(a.reply.body, content.substr(content.size() - 100));
  EXPECT_EQ(header_of(a.reply, "content-range"),
            "bytes " + std::to_string(content.size() - 100) + "-" + std::to_string(content.size() - 1) + "/" + size);
  a = call(port(), raw, "Range: bytes=1000-\r\n");
  EXPECT_EQ(a.status, 206);
  EXPECT_EQ(a.reply.body, content.substr(1000));
  a = call(port(), raw, "Range: bytes=" + size + "-\r\n");
  EXPECT_EQ(a.status, 416);
  EXPECT_EQ(a.reply.body, "");
  EXPECT_EQ(header_of(a.reply, "content-range"), "bytes */" + size);
  EXPECT_EQ(call(port(), raw, "Range: bytes=0-1,5-6\r\n").reply.body, content);  // several ranges: ignored, all of it

  // A loop item's structured log; a cache hit ran nothing; a bad parameter names itself.
  a = call(port(), "/api/v1/runs/" + run_ids_[0] + "/steps/each%5B1%5D/logs/raw?stream=events");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_NE(a.reply.body.find("echo: item b"), std::string::npos) << a.reply.body;
  EXPECT_EQ(call(port(), "/api/v1/runs/" + run_ids_[1] + "/steps/hi/logs/raw").status, 404);
  a = call(port(), raw + "&offset=5");
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(reason(a).find("'offset'"), std::string::npos) << a.reply.body;

  // Over 32 MiB (a sparse file): not sent whole, but a range of it is.
  fs::resize_file(attempt_dir / "stderr.log", (33u << 20));
  a = call(port(), raw);
  EXPECT_EQ(a.status, 413);
  EXPECT_NE(reason(a).find("Range"), std::string::npos) << a.reply.body;
  EXPECT_EQ(call(port(), raw, "Range: bytes=0-33554432\r\n").status, 413);
  a = call(port(), raw, "Range: bytes=-10\r\n");
  EXPECT_EQ(a.status, 206);
  EXPECT_EQ(a.reply.body, std::string(10, '\0'));

  // Not written yet: an empty log (and any range of it is past its end).
  fs::remove(attempt_dir / "stderr.log");
  a = call(port(), raw);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.reply.body, "");
  a = call(port(), raw, "Range: bytes=0-\r\n");
  EXPECT_EQ(a.status, 416);
  EXPECT_EQ(header_of(a.reply, "content-range"), "bytes */0");
}

TEST_F(UiApi, LogPathsCannotLeaveTheWorkspace) {
  TempDir outside;
  write_text(outside / "secret.txt", "top secret\n");
  // '..' in any form is refused before anything is looked up.
  for (const std::string& target : std::vector<std::string>{
           "/api/v1/runs/" + run_ids_[0] + "/steps/../logs", "/api/v1/runs/" + run_ids_[0] + "/steps/%2e%2e/logs",
           "/api/v1/runs/..%2F..%2Fetc/steps/hi/logs", "/api/v1/runs/%2E%2E/steps/hi/logs"}) {
    const Answer a = call(port(), target);
    EXPECT_EQ(a.status, 400) << target << ": " << a.reply.body;
    EXPECT_FALSE(reason(a).empty()) << target;
  }
  // A run whose record names attempt directories outside it (a tampered
  // run.json), one through a symlinked directory, one a symlinked log file.
  const fs::path run = workspace() / "runs" / "tampered-run";
  fs::create_directories(run / "steps" / "linked");
  fs::create_directory_symlink(outside.path(), run / "steps" / "linked" / "attempt-1");
  fs::create_directories(run / "steps" / "file" / "attempt-1");
  fs::create_symlink(outside / "secret.txt", run / "steps" / "file" / "attempt-1" / "stdout.log");
  const auto attempt = [](const std::string& dir) {
    return Json{{"status", "succeeded"}, {"attempts", Json::array({{{"attempt", 1}, {"dir", dir}}})}};
  };
  write_text(run / "run.json", Json{{"id", "tampered-run"},
                                    {"status", "succeeded"},
                                    {"pipeline", {{"name", "x"}, {"file", "x.yaml"}}},
                                    {"steps",
                                     {{"up", attempt("../../../..")},
                                      {"abs", attempt(outside.path().string())},
                                      {"linked", attempt("steps/linked/attempt-1")},
                                      {"file", attempt("steps/file/attempt-1")}}}}
                                   .dump());
  for (const char* step : {"up", "abs", "linked", "file"}) {
    for (const char* route : {"/logs", "/logs/raw"}) {  // read by offset, or raw
      const Answer a = call(port(), std::string("/api/v1/runs/tampered-run/steps/") + step + route);
      EXPECT_TRUE(a.status == 403 || a.status == 404) << step << route << ": " << a.reply.body;
      EXPECT_EQ(a.reply.body.find("top secret"), std::string::npos) << step << route;
      EXPECT_FALSE(reason(a).empty()) << step << route;
    }
  }
  for (const char* route : {"/logs", "/logs/raw"}) {
    EXPECT_EQ(call(port(), std::string("/api/v1/runs/tampered-run/steps/linked") + route).status, 403) << route;
    EXPECT_EQ(call(port(), std::string("/api/v1/runs/tampered-run/steps/file") + route).status, 403) << route;
  }
  fs::remove_all(run);
}

// ----------------------------------------------------------------- events

TEST_F(UiApi, EventsStreamFromTheStartAndResumeFromLastEventId) {
  const std::string target = "/api/v1/runs/" + run_ids_[0] + "/events";
  const std::vector<Json> logged = [&] {
    std::vector<Json> out;
    std::ifstream in(workspace() / "runs" / run_ids_[0] / "events.jsonl");
    for (std::string line; std::getline(in, line);) out.push_back(Json::parse(line));
    return out;
  }();
  ASSERT_GT(logged.size(), 5u);

  Client c(port());
  c.send(request("GET", target, port()));
  const Reply head = c.read_head();
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(header_of(head, "content-type"), "text/event-stream");
  EXPECT_EQ(header_of(head, "cache-control"), "no-cache");
  EXPECT_EQ(c.read_until("\n\n"), "retry: 2000\n\n");
  for (const Json& expected : logged) {
    const auto m = next_message(c);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->id, std::to_string(expected["seq"].get<uint64_t>()));
    EXPECT_EQ(Json::parse(m->data), expected);
  }
  const auto end = next_message(c);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->event, "end");
  EXPECT_TRUE(c.closed_by_server());

  // Resumed after event 3 (Last-Event-ID, as a browser reconnects), or from 5 (?from=).
  Client resumed(port());
  resumed.send(request("GET", target, port(), "Last-Event-ID: 3\r\n"));
  ASSERT_EQ(resumed.read_head().status, 200);
  auto m = next_message(resumed);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id, "4");
  Client from(port());
  from.send(request("GET", target + "?from=5", port()));
  ASSERT_EQ(from.read_head().status, 200);
  m = next_message(from);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id, "5");

  // Nothing after the last event of a finished run: 204, so a browser stops reconnecting.
  const std::string last = std::to_string(logged.back()["seq"].get<uint64_t>());
  EXPECT_EQ(call(port(), target, "Last-Event-ID: " + last + "\r\n").status, 204);
  const Answer bad = call(port(), target, "Last-Event-ID: three\r\n");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(reason(bad).find("Last-Event-ID"), std::string::npos);
  EXPECT_EQ(call(port(), target + "?from=0").status, 400);
  EXPECT_EQ(call(port(), "/api/v1/runs/no-such-run/events").status, 404);
}

// A `kiln run` in another process: its events reach an open stream while
// it runs (it sleeps until the test cancels it, so it cannot end first),
// heartbeats keep the stream alive meanwhile, and the stream ends with the
// run's run_finished.
TEST_F(UiApi, LiveEventsFromAConcurrentKilnRun) {
  const fs::path file = dir_->path() / "sleepy.yaml";
  write_text(file, R"(apiVersion: kiln/v1
kind: Pipeline
metadata: {name: sleepy}
steps:
  - {name: first, component: util.echo, parameters: {message: hi}}
  - {name: nap, component: util.sleep, parameters: {seconds: 60}}
)");
  std::set<std::string> before;
  for (const auto& entry : fs::directory_iterator(workspace() / "runs")) before.insert(entry.path().filename());
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  host::ChildProcess::Options options;
  options.argv = {kiln_exe().string(), "run", file.string(), "--workdir", workspace().string(), "--json"};
  options.fds = {{1, null_fd}, {2, null_fd}};
  options.env = env();
  auto child = host::ChildProcess::spawn(options);
  ::close(null_fd);

  std::string id;
  ASSERT_TRUE(poll_until([&] {
    for (const auto& entry : fs::directory_iterator(workspace() / "runs"))
      if (!before.count(entry.path().filename()) && fs::exists(entry.path() / "run.json"))
        id = entry.path().filename();
    return !id.empty();
  }, 3000));

  Client c(port());
  c.send(request("GET", "/api/v1/runs/" + id + "/events", port()));
  ASSERT_EQ(c.read_head().status, 200);
  bool nap_started = false, heartbeat = false;
  for (int i = 0; i < 200 && !(nap_started && heartbeat); ++i) {
    const auto m = next_message(c);
    ASSERT_TRUE(m) << "the stream ended before nap started";
    if (m->comment) heartbeat = nap_started;  // one while nap sleeps
    if (!m->data.empty()) {
      const Json e = Json::parse(m->data);
      if (e["type"] == "attempt_started" && e["step"] == "nap") nap_started = true;
    }
  }
  ASSERT_TRUE(nap_started);
  EXPECT_TRUE(heartbeat);
  EXPECT_FALSE(child.try_wait()) << "kiln run ended before it was cancelled";
  ::kill(child.pid(), SIGINT);  // cancels the run: its last events follow
  std::string status;
  for (int i = 0; i < 200 && status.empty(); ++i) {
    const auto m = next_message(c);
    ASSERT_TRUE(m) << "the stream ended before run_finished";
    if (!m->data.empty() && Json::parse(m->data)["type"] == "run_finished")
      status = Json::parse(m->data)["status"];
  }
  EXPECT_EQ(status, "cancelled");
  const auto end = next_message(c);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->event, "end");
  EXPECT_TRUE(c.closed_by_server());
  child.wait();
  EXPECT_TRUE(poll_until([&] { return server_->open_streams() == 0; }));
}

TEST_F(UiApi, AStreamWhoseClientLeavesIsDropped) {
  // A run that never finishes: a record and an event log with no run_finished.
  const fs::path run = workspace() / "runs" / "open-run";
  write_text(run / "run.json", Json{{"id", "open-run"}, {"status", "running"}, {"steps", Json::object()}}.dump());
  write_text(run / "events.jsonl", "{\"v\":1,\"seq\":1,\"ts\":1,\"type\":\"run_started\"}\n");
  {
    Client c(port());
    c.send(request("GET", "/api/v1/runs/open-run/events", port()));
    ASSERT_EQ(c.read_head().status, 200);
    ASSERT_TRUE(next_message(c));
    EXPECT_TRUE(poll_until([&] { return server_->open_streams() == 1; })) << server_->open_streams();
  }  // the client goes away
  EXPECT_TRUE(poll_until([&] { return server_->open_streams() == 0; })) << server_->open_streams();
  fs::remove_all(run);
}

// --------------------------------------------------------------- security

TEST_F(UiApi, ALoopbackServerAnswersOnlyLoopbackHostNames) {
  Client c(port());
  c.send("GET /api/v1/runs HTTP/1.1\r\nHost: evil.example:80\r\n\r\n");
  const Reply r = c.read_reply();
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("loopback"), std::string::npos) << r.body;
  Client local(port());
  local.send("GET /api/v1/runs HTTP/1.1\r\nHost: localhost:" + std::to_string(port()) + "\r\n\r\n");
  EXPECT_EQ(local.read_reply().status, 200);  // Without a token there is nothing to sign in to, and asking needs a loopback name too.
  EXPECT_EQ(call(port(), "/api/v1/session").body, (Json{{"token_required", false}, {"signed_in", true}}));
  Client other(port());
  other.send("GET /api/v1/session HTTP/1.1\r\nHost: evil.example:80\r\n\r\n");
  EXPECT_EQ(other.read_reply().status, 403);
}

TEST_F(UiApi, UnknownEndpointsAndMethods) {
  Answer a = call(port(), "/api/v1/nothing");
  EXPECT_EQ(a.status, 404);
  EXPECT_FALSE(reason(a).empty());
  a = call(port(), "/api/v1/runs", "", "DELETE");
  EXPECT_EQ(a.status, 405);
  EXPECT_EQ(header_of(a.reply, "allow"), "GET, POST");  // POST starts a run
  a = call(port(), "/api/v1/runs/" + run_ids_[0] + "?x=1");
  EXPECT_EQ(a.status, 400);
  EXPECT_NE(reason(a).find("takes none"), std::string::npos);
}

TEST(UiAccess, AnAddressOtherThanLoopbackNeedsAToken) {
  TempDir dir;
  ui::UiOptions options;
  options.workspace = dir.path();
  options.host = "0.0.0.0";
  try {
    ui::check_options(options);
    ADD_FAILURE() << "0.0.0.0 without a token was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--token-file"), std::string::npos) << e.what();
  }
  for (const char* loopback : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"})
    EXPECT_TRUE(ui::is_loopback_host(loopback)) << loopback;
  for (const char* other : {"0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "", "127.0.0.1.example.com"})
    EXPECT_FALSE(ui::is_loopback_host(other)) << other;
}

TEST(UiAccess, WithATokenEveryRequestCarriesIt) {
  TempDir dir;
  add_synthetic_runs(dir.path(), 2);
  const std::string token = "s3cret-token-0123456789";
  write_text(dir / "token", token + "\n");
  ui::UiOptions options;
  options.workspace = dir.path();
  options.host = "0.0.0.0";  // not loopback: the token is what guards it
  options.token = ui::read_token_file(dir / "token");
  EXPECT_EQ(options.token, token);
  ui::UiServer server(options);
  server.start();
  const uint16_t port = server.port();

  Answer a = call(port, "/api/v1/runs");
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(header_of(a.reply, "www-authenticate"), "Bearer");
  EXPECT_FALSE(reason(a).empty());
  EXPECT_EQ(call(port, "/api/v1/runs", "Authorization: Bearer wrong-token-0123456789\r\n").status, 401);
  a = call(port, "/api/v1/runs", "Authorization: Bearer " + token + "\r\n");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body["total"], 2);

  // Login: the token in an HttpOnly, SameSite=Strict cookie, which then suffices.
  EXPECT_EQ(call(port, "/api/v1/login", "", "POST", R"({"token": "wrong"})").status, 401);
  EXPECT_EQ(call(port, "/api/v1/login", "", "POST", "not json").status, 400);
  a = call(port, "/api/v1/login", "", "POST", Json{{"token", token}}.dump());
  ASSERT_EQ(a.status, 200) << a.reply.body;
  const std::string cookie = header_of(a.reply, "set-cookie");
  EXPECT_EQ(cookie.rfind("kiln_token=" + token + ";", 0), 0u) << cookie;
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  EXPECT_EQ(call(port, "/api/v1/runs", "Cookie: other=1; kiln_token=" + token + "\r\n").status, 200);
  EXPECT_EQ(call(port, "/api/v1/runs", "Cookie: kiln_token=nope\r\n").status, 401);

  // A state-changing request from another site's page is refused (CSRF).
  a = call(port, "/api/v1/login", "Origin: http://evil.example\r\n", "POST", Json{{"token", token}}.dump());
  EXPECT_EQ(a.status, 403);
  EXPECT_NE(reason(a).find("cross-origin"), std::string::npos);
  a = call(port, "/api/v1/login", "Origin: http://127.0.0.1:" + std::to_string(port) + "\r\n", "POST",
           Json{{"token", token}}.dump());
  EXPECT_EQ(a.status, 200);

  // The session: whether a token is needed and whether this request carries it (asked without one).
  a = call(port, "/api/v1/session");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_EQ(a.body, (Json{{"token_required", true}, {"signed_in", false}}));
  EXPECT_EQ(call(port, "/api/v1/session", "Cookie: kiln_token=" + token + "\r\n").body["signed_in"], true);
  EXPECT_EQ(call(port, "/api/v1/session", "Authorization: Bearer " + token + "\r\n").body["signed_in"], true);
  EXPECT_EQ(call(port, "/api/v1/session", "Cookie: kiln_token=wrong-token-0123456789\r\n").body["signed_in"], false);
  // Signing out clears the cookie (a cookie the browser then drops); another site cannot sign one out.
  a = call(port, "/api/v1/logout", "Cookie: kiln_token=" + token + "\r\n", "POST");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_EQ(a.body["signed_in"], false);
  const std::string cleared = header_of(a.reply, "set-cookie");
  EXPECT_EQ(cleared.rfind("kiln_token=;", 0), 0u) << cleared;
  EXPECT_NE(cleared.find("Max-Age=0"), std::string::npos) << cleared;
  EXPECT_EQ(call(port, "/api/v1/logout", "Origin: http://evil.example\r\n", "POST").status, 403);
}

TEST(UiAccess, BadTokenFilesAreRefusedNamingTheFile) {
  TempDir dir;
  write_text(dir / "short", "abc\n");
  write_text(dir / "spaces", "0123456789 0123456789\n");
  for (const char* name : {"short", "spaces", "missing"}) {
    try {
      ui::read_token_file(dir / name);
      ADD_FAILURE() << name << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

TEST(UiAccess, KilnUiRefusesToServeOffLoopbackWithoutAToken) {
  TempDir dir;
  auto run = run_kiln({"ui", "--workdir", dir.path().string(), "--host", "0.0.0.0", "--port", "0"}, {}, 30s);
  EXPECT_EQ(run.status.code, 2) << run.output;
  EXPECT_NE(run.output.find("--token-file"), std::string::npos) << run.output;
  write_text(dir / "token", "short\n");
  run = run_kiln({"ui", "--workdir", dir.path().string(), "--host", "0.0.0.0", "--token-file", (dir / "token").string()},
                 {}, 30s);
  EXPECT_EQ(run.status.code, 2) << run.output;
  EXPECT_NE(run.output.find((dir / "token").string()), std::string::npos) << run.output;
  run = run_kiln({"ui", "--workdir", (dir / "missing").string()}, {}, 30s);
  EXPECT_EQ(run.status.code, 2) << run.output;
  EXPECT_NE(run.output.find("is not a directory"), std::string::npos) << run.output;
}

// ------------------------------------------------------ request targets

TEST(UiTargets, PercentDecodingAndItsRefusals) {
  EXPECT_EQ(ui::percent_decode("a%41%2fb+c", false), "aA/b+c");
  EXPECT_EQ(ui::percent_decode("a+b%20c", true), "a b c");
  for (const char* bad : {"%", "%4", "%zz", "a%0", "%00"}) EXPECT_THROW(ui::percent_decode(bad, true), ui::ApiError) << bad;
  const ui::Target t = ui::parse_target("/api//v1/runs/%41b?x=1&y=&z&q=a%26b");
  EXPECT_EQ(t.segments, (std::vector<std::string>{"api", "v1", "runs", "Ab"}));
  EXPECT_EQ(t.query.text("x"), "1");
  EXPECT_EQ(t.query.text("y"), std::nullopt);  // empty counts as not given
  EXPECT_EQ(t.query.text("q"), "a&b");
  EXPECT_EQ(ui::cookie_value("a=1; kiln_token=xyz; b=2", "kiln_token"), "xyz");
  EXPECT_EQ(ui::cookie_value("kiln_token_x=1;kiln_token=2", "kiln_token"), "2");
  EXPECT_EQ(ui::cookie_value("a=1", "kiln_token"), std::nullopt);
}

// Random targets, weighted toward the bytes that matter ('/', '%', '.', hex
// digits): each is refused with 400 or decoded into segments that keep the
// promises (the same promise fuzz/ui_target_fuzz.cpp checks under libFuzzer).
TEST(UiTargets, RandomTargetsAreRefusedOrSafe) {
  std::mt19937 random(20261205);
  const std::string alphabet = "/%.?&=+aF0129%/..";
  int refused = 0, parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string url;
    const size_t length = random() % 40;
    for (size_t j = 0; j < length; ++j)
      url += random() % 8 == 0 ? static_cast<char>(random() % 256) : alphabet[random() % alphabet.size()];
    try {
      const ui::Target t = ui::parse_target(url);
      ++parsed;
      EXPECT_LE(t.segments.size(), ui::kMaxSegments);
      for (const auto& s : t.segments) {
        EXPECT_FALSE(s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos ||
                     s.find('\0') != std::string::npos)
            << url;
      }
    } catch (const ui::ApiError& e) {
      ++refused;
      EXPECT_EQ(e.status(), 400) << url;
    }
  }
  EXPECT_GT(refused, 100);
  EXPECT_GT(parsed, 100);
}

// ---------------------------------------------------------------- OpenAPI

// Every route the server answers is in docs/api/openapi.yaml, and every
// operation there is a route the server answers.
TEST(UiOpenApi, TheFileAndTheServersRoutesAgree) {
  const YAML::Node doc = YAML::LoadFile(std::string(KILN_TEST_SOURCE_DIR) + "/docs/api/openapi.yaml");
  ASSERT_EQ(doc["openapi"].as<std::string>().substr(0, 2), "3.");
  std::set<std::pair<std::string, std::string>> documented, served;
  for (const auto& path : doc["paths"]) {
    for (const auto& operation : path.second) {
      std::string method = operation.first.as<std::string>();
      if (method == "parameters" || method == "summary" || method == "description") continue;
      std::transform(method.begin(), method.end(), method.begin(), [](unsigned char c) { return std::toupper(c); });
      documented.emplace(method, path.first.as<std::string>());
      EXPECT_TRUE(operation.second["responses"]) << method << " " << path.first.as<std::string>();
    }
  }
  for (const auto& route : ui::api_routes()) served.emplace(route.method, route.path);
  EXPECT_EQ(documented, served);
  EXPECT_GE(served.size(), 5u);
}

}  // namespace
}  // namespace kiln::test

// kiln ui's API beyond reading runs (host/ui: run_control_api, pipelines_api,
// plugins_api, artifacts_api, metrics_api, models_api), over loopback,
// against real `kiln run` processes of util pipelines that the server itself
// starts detached: start one and watch it finish, refuse bad parameters with
// their places, cancel a sleeping run, kill -9 a run and resume it, rerun
// with edited parameters; artifacts, previews and lineage (and paths that
// try to leave the workspace); metrics, trials, comparison, plugins, models.
// Every wait is a bounded poll; nothing asserts on time.
#include <kiln/host/files.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/metadata_db.hpp>
#include <kiln/ui/ui_server.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>

#include "raw_http_client.hpp"
#include "run_request.hpp"
#include "test_support.hpp"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;
using host::Json;

struct ApiAnswer {
  int status = 0;
  Json body;
  Reply reply;
  std::string error() const { return body.is_object() ? body.value("error", "") : ""; }
};

ApiAnswer api(uint16_t port, const std::string& method, const std::string& target, const std::string& body = "",
              const std::string& headers = "") {
  Client c(port);
  c.send(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n" + headers +
         (method == "POST" ? "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"
                           : "") +
         "\r\n" + body);
  ApiAnswer a;
  a.reply = c.read_reply();
  a.status = a.reply.status;
  a.body = Json::parse(a.reply.body.empty() ? "null" : a.reply.body, nullptr, false);
  return a;
}

ApiAnswer post(uint16_t port, const std::string& target, const Json& body) {
  return api(port, "POST", target, body.dump());
}

// The pipelines the server offers: util steps with typed parameters.
const char* kGreet = R"yaml(apiVersion: kiln/v1
kind: Pipeline
metadata: {name: greet, description: one greeting and a loop}
parameters:
  message: {type: string, default: hello, description: what to say}
  count: {type: int, default: 2, min: 1, max: 5}
  mode: {type: string, default: quick, choices: [quick, thorough]}
steps:
  - {name: hi, component: util.echo, parameters: {message: "{{ params.message }} ({{ params.mode }})"}}
  - name: each
    component: util.echo
    for_each: [a, b]
    parameters: {message: "{{ item }}"}
    inputs: {text: hi.outputs.text}
)yaml";

// A run that waits: one step sleeping `seconds` between two echoes.
std::string sleeper(double seconds) {
  return "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: sleeper}\nsteps:\n"
         "  - {name: first, component: util.echo, parameters: {message: before}}\n"
         "  - {name: nap, component: util.sleep, parameters: {seconds: " +
         std::to_string(seconds) +
         "}, after: [first]}\n"
         "  - {name: last, component: util.echo, parameters: {message: after}, after: [nap]}\n";
}

const char* kTuning = R"(apiVersion: kiln/v1
kind: Pipeline
metadata: {name: tuning}
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 3, epoch_seconds: 0.2}
    parallelism: 1
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 0.9, grid_points: 3}}
)";

class UiControl : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // The runs the server starts inherit this process's environment.
    setenv("KILN_CACHE_DIR", kiln::test::scan_cache().c_str(), 1);
    setenv("KILN_HOME", (dir_->path() / "home").c_str(), 1);
    fs::create_directories(workspace());
    write_text(pipelines() / "greet.yaml", kGreet);
    write_text(pipelines() / "nested" / "tuning.yaml", kTuning);
    write_text(pipelines() / "nested" / "templates.yaml", "apiVersion: kiln/v1\nkind: Templates\ntemplates: {}\n");
    // samples/hello as a user would offer it (with its imported templates).
    fs::create_directories(pipelines() / "hello");
    for (const char* name : {"pipeline.yaml", "templates.yaml"})
      fs::copy_file(fs::path(KILN_TEST_SOURCE_DIR) / "samples" / "hello" / name, pipelines() / "hello" / name);
    write_text(pipelines() / "broken.yaml", "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: broken}\nsteps: 3\n");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path workspace() { return dir_->path() / "ws"; }
  static fs::path pipelines() { return dir_->path() / "pipelines"; }
  static fs::path models() { return dir_->path() / "models"; }

  void SetUp() override {
    fs::create_directories(models());
    ui::UiOptions options;
    options.workspace = workspace();
    options.pipelines = pipelines();
    options.models = models();
    options.kiln = kiln_exe();
    options.plugin_dirs = {util_plugin().parent_path()};
    server_ = std::make_unique<ui::UiServer>(options);
    server_->start();
  }
  uint16_t port() const { return server_->port(); }

  // The run's status as GET /api/v1/runs/{id} says ("" before the run has a record).
  std::string status_of(const std::string& id) {
    const ApiAnswer a = api(port(), "GET", "/api/v1/runs/" + id);
    return a.status == 200 ? a.body.value("status", "") : "";
  }
  // The run's status in the metadata database (the runs list): the run writes
  // it in its group commit, a moment after its run.json.
  std::string recorded_status(const std::string& id) {
    const ApiAnswer a = api(port(), "GET", "/api/v1/runs?q=" + id);
    return a.status == 200 && a.body["runs"].size() == 1 ? a.body["runs"][0].value("status", "") : "";
  }
  // Waits (bounded) for the run to reach `status`, in its record and in the database.
  bool reaches(const std::string& id, const std::string& status, int tries = 6000) {
    return poll_until([&] { return status_of(id) == status && recorded_status(id) == status; }, tries);
  }
  // Files in the launches directory (each start writes some).
  static size_t launches() {
    std::error_code ec;
    size_t n = 0;
    for (fs::directory_iterator it(workspace() / "ui" / "launches", ec), end; !ec && it != end; it.increment(ec)) ++n;
    return n;
  }
  // Starts a run through the API and answers its id.
  std::string start(const Json& body) {
    const ApiAnswer a = post(port(), "/api/v1/runs", body);
    EXPECT_EQ(a.status, 202) << a.reply.body;
    return a.body.value("id", "");
  }

  static TempDir* dir_;
  std::unique_ptr<ui::UiServer> server_;
};

TempDir* UiControl::dir_ = nullptr;

// ------------------------------------------------------------ pipelines

TEST_F(UiControl, ListsThePipelineFilesWithTheirTypedParameters) {
  const ApiAnswer a = api(port(), "GET", "/api/v1/pipelines");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  std::map<std::string, Json> by_file;
  for (const auto& p : a.body["pipelines"]) by_file[p["file"].get<std::string>()] = p;
  // Template files are not pipelines; a broken file is listed with its problems.
  EXPECT_EQ(by_file.size(), 4u) << a.reply.body;
  EXPECT_TRUE(by_file.count("hello/pipeline.yaml"));
  ASSERT_TRUE(by_file.count("greet.yaml"));
  ASSERT_TRUE(by_file.count("nested/tuning.yaml"));
  ASSERT_TRUE(by_file.count("broken.yaml"));
  EXPECT_FALSE(by_file["broken.yaml"]["problems"].empty());
  const Json greet = by_file["greet.yaml"];
  EXPECT_EQ(greet["name"], "greet");
  ASSERT_EQ(greet["parameters"].size(), 3u);
  const Json count = greet["parameters"][1];
  EXPECT_EQ(count["name"], "count");
  EXPECT_EQ(count["type"], "int");
  EXPECT_EQ(count["default"], 2);
  EXPECT_EQ(count["min"], 1);
  EXPECT_EQ(count["max"], 5);
  EXPECT_EQ(greet["parameters"][2]["choices"], Json::array({"quick", "thorough"}));
  EXPECT_EQ(greet["parameters"][0]["description"], "what to say");

  const ApiAnswer detail = api(port(), "GET", "/api/v1/pipelines/greet");
  ASSERT_EQ(detail.status, 200) << detail.reply.body;
  EXPECT_TRUE(detail.body["valid"].get<bool>()) << detail.reply.body;
  EXPECT_EQ(detail.body["text"], kGreet);
  EXPECT_EQ(detail.body["step_list"].size(), 2u);
  EXPECT_TRUE(detail.body["step_list"][1]["loop"].get<bool>());
  EXPECT_EQ(api(port(), "GET", "/api/v1/pipelines/nope").status, 404);
}

TEST_F(UiControl, StartsARunThatOutlivesTheServerAndFinishes) {
  const ApiAnswer a = post(port(), "/api/v1/runs", Json{{"pipeline", "greet"}, {"params", {{"message", "hey"}, {"count", "3"}}}});
  ASSERT_EQ(a.status, 202) << a.reply.body;
  const std::string id = a.body["id"];
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(a.body["pipeline"], "greet");
  // Its own session: neither the server's signals nor its terminal reach it.
  const pid_t pid = a.body["pid"].get<int>();
  const pid_t session = getsid(pid);
  if (session != -1) {  // -1: it has finished already
    EXPECT_NE(session, getsid(0));
  }
  // The server stops at once; the run goes on and a new server sees it finish.
  server_->stop(std::chrono::milliseconds(0));
  SetUp();
  ASSERT_TRUE(reaches(id, "succeeded")) << status_of(id) << "\n"
                                        << read_text(workspace() / "ui" / "launches" / (id + ".log"));
  const ApiAnswer run = api(port(), "GET", "/api/v1/runs/" + id);
  EXPECT_EQ(run.body["parameters"]["message"], "hey");
  EXPECT_EQ(run.body["parameters"]["count"], 3);  // "3" from a form, typed by the declaration
  const ApiAnswer launch = api(port(), "GET", "/api/v1/launches/" + id);
  ASSERT_EQ(launch.status, 200) << launch.reply.body;
  EXPECT_TRUE(launch.body["recorded"].get<bool>());
  EXPECT_NE(launch.body["text"].get<std::string>().find(id), std::string::npos) << launch.reply.body;
  EXPECT_EQ(api(port(), "GET", "/api/v1/launches/never-started").status, 404);
  // The run's events arrive through the API as for any run.
  EXPECT_EQ(api(port(), "GET", "/api/v1/runs/" + id + "/steps/hi/logs").status, 200);
}

// samples/hello started from the API and followed on its event stream to the end.
TEST_F(UiControl, StartsSamplesHelloAndFollowsItsEventsToTheEnd) {
  const ApiAnswer a =
      post(port(), "/api/v1/runs", Json{{"pipeline", "hello"}, {"params", {{"mode", "thorough"}, {"pause", "0.1"}}}});
  ASSERT_EQ(a.status, 202) << a.reply.body;
  const std::string id = a.body["id"];
  // The stream may be asked for before the run has written its record.
  ASSERT_TRUE(poll_until([&] { return api(port(), "GET", "/api/v1/runs/" + id).status == 200; }));
  Client c(port());
  c.send("GET " + a.body["events"].get<std::string>() + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  ASSERT_EQ(c.read_head().status, 200);
  std::set<std::string> finished_steps;
  bool ended = false;
  for (int i = 0; i < 2000 && !ended; ++i) {
    const std::string block = c.read_until("\n\n");
    if (block.empty()) break;
    ended = block.find("event: end") != std::string::npos;
    const size_t data = block.find("data: ");
    if (data == std::string::npos) continue;
    const Json event = Json::parse(block.substr(data + 6, block.find('\n', data) - data - 6), nullptr, false);
    if (event.value("type", "") == "step_changed" && event.value("status", "") == "succeeded")
      finished_steps.insert(event.value("step", ""));
  }
  EXPECT_TRUE(ended);
  for (const char* step : {"greet", "per-name", "thorough-check", "summary", "report"})
    EXPECT_TRUE(finished_steps.count(step)) << step;
  ASSERT_TRUE(reaches(id, "succeeded")) << status_of(id);
  EXPECT_EQ(api(port(), "GET", "/api/v1/runs/" + id).body["parameters"]["pause"], 0.1);
}

TEST_F(UiControl, RefusesBadParametersWithTheirPlacesBeforeStarting) {
  const size_t runs_before = api(port(), "GET", "/api/v1/runs").body.value("total", 0);
  const size_t launches_before = launches();
  const ApiAnswer a =
      post(port(), "/api/v1/runs", Json{{"pipeline", "greet"}, {"params", {{"count", 9}, {"mode", "slow"}}}});
  ASSERT_EQ(a.status, 400) << a.reply.body;
  ASSERT_EQ(a.body["problems"].size(), 2u) << a.reply.body;
  std::map<std::string, Json> by_field;
  for (const auto& p : a.body["problems"]) by_field[p.value("field", "")] = p;
  ASSERT_TRUE(by_field.count("params.count")) << a.reply.body;
  ASSERT_TRUE(by_field.count("params.mode")) << a.reply.body;
  // At the parameter's declaration: greet.yaml line 6 (count), line 7 (mode).
  EXPECT_EQ(by_field["params.count"]["line"], 6);
  EXPECT_EQ(by_field["params.mode"]["line"], 7);
  EXPECT_NE(by_field["params.count"]["file"].get<std::string>().find("greet.yaml"), std::string::npos);
  EXPECT_NE(by_field["params.count"]["message"].get<std::string>().find("maximum"), std::string::npos);
  // Text that is no int.
  const ApiAnswer text = post(port(), "/api/v1/runs", Json{{"pipeline", "greet"}, {"params", {{"count", "many"}}}});
  EXPECT_EQ(text.status, 400) << text.reply.body;
  EXPECT_EQ(text.body["problems"][0]["field"], "params.count");
  // An unknown parameter.
  EXPECT_EQ(post(port(), "/api/v1/runs", Json{{"pipeline", "greet"}, {"params", {{"colour", "red"}}}}).status, 400);
  // Nothing started.
  EXPECT_EQ(api(port(), "GET", "/api/v1/runs").body.value("total", 0), runs_before);
  EXPECT_EQ(launches(), launches_before);
}

TEST_F(UiControl, ValidatesUploadedPipelinesAndRefusesMalformedBodies) {
  // A problem in an uploaded text is at its line and column, under its name.
  const ApiAnswer bad = post(port(), "/api/v1/runs",
                             Json{{"yaml", "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: up}\nsteps:\n"
                                           "  - {name: a, component: util.nosuch}\n"},
                                  {"file_name", "mine.yaml"}});
  ASSERT_EQ(bad.status, 400) << bad.reply.body;
  ASSERT_FALSE(bad.body["problems"].empty());
  EXPECT_EQ(bad.body["problems"][0]["file"], "mine.yaml");
  EXPECT_EQ(bad.body["problems"][0]["line"], 5);
  EXPECT_GT(bad.body["problems"][0]["column"].get<int>(), 0);
  // Imports would read the server's files.
  const ApiAnswer imports = post(
      port(), "/api/v1/runs",
      Json{{"yaml", "apiVersion: kiln/v1\nkind: Pipeline\nimports: [/etc/passwd]\nmetadata: {name: up}\nsteps: []\n"}});
  EXPECT_EQ(imports.status, 400);
  EXPECT_NE(imports.error().find("cannot import"), std::string::npos) << imports.reply.body;
  // Broken YAML that names imports is refused before the parser could follow them.
  const ApiAnswer broken = post(port(), "/api/v1/runs",
                                Json{{"yaml", "kind: Pipeline\nimports: [/etc/passwd]\nsteps: [\n  - {a: b\n"}});
  EXPECT_EQ(broken.status, 400) << broken.reply.body;
  EXPECT_EQ(broken.reply.body.find("root:"), std::string::npos);
  // Too large, both or neither source, unknown fields, not JSON, a path as a name.
  EXPECT_EQ(post(port(), "/api/v1/runs", Json{{"yaml", std::string(300 << 10, '#')}}).status, 413);
  EXPECT_EQ(post(port(), "/api/v1/runs", Json{{"yaml", "x"}, {"pipeline", "greet"}}).status, 400);
  EXPECT_EQ(post(port(), "/api/v1/runs", Json::object()).status, 400);
  EXPECT_EQ(post(port(), "/api/v1/runs", Json{{"pipeline", "greet"}, {"colour", 1}}).status, 400);
  EXPECT_EQ(api(port(), "POST", "/api/v1/runs", "{not json").status, 400);
  EXPECT_EQ(post(port(), "/api/v1/runs", Json{{"yaml", "x"}, {"file_name", "../x.yaml"}}).status, 400);
  EXPECT_EQ(post(port(), "/api/v1/runs", Json{{"pipeline", "greet"}, {"params", "count=3"}}).status, 400);
  // Every refusal says why.
  EXPECT_FALSE(post(port(), "/api/v1/runs", Json::object()).error().empty());
  // Another site's page cannot start runs.
  const ApiAnswer foreign =
      api(port(), "POST", "/api/v1/runs", Json{{"pipeline", "greet"}}.dump(), "Origin: http://evil.example\r\n");
  EXPECT_EQ(foreign.status, 403);
  EXPECT_NE(foreign.error().find("cross-origin"), std::string::npos);
}

// With a token (any host other than loopback needs one), starting and
// cancelling runs need it too.
TEST_F(UiControl, StartingAndCancellingNeedTheToken) {
  ui::UiOptions options;
  options.workspace = workspace();
  options.pipelines = pipelines();
  options.kiln = kiln_exe();
  options.plugin_dirs = {util_plugin().parent_path()};
  options.token = "a-token-of-sufficient-length";
  ui::UiServer guarded(options);
  guarded.start();
  const std::string body = Json{{"pipeline", "greet"}}.dump();
  for (const std::string target : {"/api/v1/runs", "/api/v1/runs/x/cancel", "/api/v1/runs/x/resume",
                                   "/api/v1/runs/x/rerun"}) {
    EXPECT_EQ(api(guarded.port(), "POST", target, body).status, 401) << target;
    EXPECT_EQ(api(guarded.port(), "POST", target, body, "Authorization: Bearer wrong-token-of-some-length\r\n").status,
              401)
        << target;
  }
  EXPECT_EQ(api(guarded.port(), "GET", "/api/v1/pipelines").status, 401);
  const ApiAnswer bad = api(guarded.port(), "POST", "/api/v1/runs", Json{{"pipeline", "greet"}, {"params", {{"count", 0}}}}.dump(),
                            "Authorization: Bearer a-token-of-sufficient-length\r\n");
  EXPECT_EQ(bad.status, 400) << bad.reply.body;  // past the door: validated
}

// `kiln run --run-id`: the id kiln ui names a run by before it starts.
TEST_F(UiControl, KilnRunTakesTheRunIdItIsGiven) {
  const auto ok = run_kiln({"run", (pipelines() / "greet.yaml").string(), "--run-id", "my-run.1", "--workdir",
                            workspace().string(), "--json"});
  ASSERT_EQ(ok.status.code, 0) << ok.output;
  EXPECT_TRUE(fs::is_regular_file(workspace() / "runs" / "my-run.1" / "run.json"));
  const auto again = run_kiln({"run", (pipelines() / "greet.yaml").string(), "--run-id", "my-run.1", "--workdir",
                               workspace().string()});
  EXPECT_NE(again.status.code, 0);
  EXPECT_NE(again.output.find("exists"), std::string::npos) << again.output;
  for (const std::string bad : {"../escape", ".hidden", "a/b", ""}) {
    const auto refused = run_kiln({"run", (pipelines() / "greet.yaml").string(), "--run-id", bad, "--workdir",
                                   workspace().string()});
    EXPECT_NE(refused.status.code, 0) << bad;
    EXPECT_NE(refused.output.find("run id"), std::string::npos) << bad << ": " << refused.output;
  }
  EXPECT_FALSE(fs::exists(workspace() / "escape"));
}

// ------------------------------------------------------- cancel, resume, rerun

TEST_F(UiControl, CancelsASleepingRun) {
  const std::string id = start(Json{{"yaml", sleeper(60)}});
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(poll_until([&] {
    const ApiAnswer a = api(port(), "GET", "/api/v1/runs/" + id);
    if (a.status != 200) return false;
    for (const auto& s : a.body["steps"])
      if (s["name"] == "nap" && s["status"] == "running") return true;
    return false;
  })) << status_of(id);
  // Not from another origin.
  EXPECT_EQ(api(port(), "POST", "/api/v1/runs/" + id + "/cancel", "", "Origin: http://evil.example\r\n").status, 403);
  const ApiAnswer cancel = post(port(), "/api/v1/runs/" + id + "/cancel", Json::object());
  ASSERT_EQ(cancel.status, 202) << cancel.reply.body;
  EXPECT_EQ(cancel.body["signal"], "SIGTERM");
  ASSERT_TRUE(reaches(id, "cancelled")) << status_of(id);
  // Twice: nothing left to cancel.
  const ApiAnswer again = post(port(), "/api/v1/runs/" + id + "/cancel", Json::object());
  EXPECT_EQ(again.status, 409);
  EXPECT_FALSE(again.error().empty());
  EXPECT_EQ(post(port(), "/api/v1/runs/no-such-run/cancel", Json::object()).status, 404);
  EXPECT_EQ(post(port(), "/api/v1/runs/..%2Fx/cancel", Json::object()).status, 400);
}

TEST_F(UiControl, ResumesARunWhoseProcessWasKilled) {
  const ApiAnswer a = post(port(), "/api/v1/runs", Json{{"yaml", sleeper(1.5)}});
  ASSERT_EQ(a.status, 202) << a.reply.body;
  const std::string id = a.body["id"];
  const pid_t pid = a.body["pid"].get<int>();
  // Killed (kill -9) while its first step is done and the sleep runs.
  ASSERT_TRUE(poll_until([&] {
    const ApiAnswer r = api(port(), "GET", "/api/v1/runs/" + id);
    if (r.status != 200) return false;
    for (const auto& s : r.body["steps"])
      if (s["name"] == "nap" && s["status"] == "running") return true;
    return false;
  }));
  // It still runs: resuming now is refused.
  EXPECT_EQ(post(port(), "/api/v1/runs/" + id + "/resume", Json::object()).status, 409);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(reaches(id, "interrupted")) << status_of(id);
  // A cancel finds no process: the pid is never signalled again.
  EXPECT_EQ(post(port(), "/api/v1/runs/" + id + "/cancel", Json::object()).status, 409);
  const ApiAnswer resume = post(port(), "/api/v1/runs/" + id + "/resume", Json::object());
  ASSERT_EQ(resume.status, 202) << resume.reply.body;
  EXPECT_EQ(resume.body["id"], id);
  ASSERT_TRUE(reaches(id, "succeeded")) << status_of(id) << "\n"
                                        << read_text(workspace() / "ui" / "launches" / (id + ".log"));
  const ApiAnswer run = api(port(), "GET", "/api/v1/runs/" + id);
  for (const auto& s : run.body["steps"])  // the first kept from before the kill
    EXPECT_TRUE(s["status"] == "succeeded" || (s["name"] == "first" && s["status"] == "cached")) << run.reply.body;
  EXPECT_EQ(post(port(), "/api/v1/runs/" + id + "/resume", Json::object()).status, 409);  // succeeded
}

TEST_F(UiControl, RerunsWithEditedParametersAndComparesTheRuns) {
  const std::string first = start(Json{{"pipeline", "greet"}, {"params", {{"message", "one"}}}});
  ASSERT_TRUE(reaches(first, "succeeded")) << status_of(first);
  EXPECT_EQ(post(port(), "/api/v1/runs/" + first + "/rerun", Json{{"params", {{"count", 99}}}}).status, 400);
  const ApiAnswer rerun = post(port(), "/api/v1/runs/" + first + "/rerun", Json{{"params", {{"message", "two"}}}});
  ASSERT_EQ(rerun.status, 202) << rerun.reply.body;
  const std::string second = rerun.body["id"];
  EXPECT_NE(second, first);
  EXPECT_EQ(rerun.body["rerun_of"], first);
  ASSERT_TRUE(reaches(second, "succeeded")) << status_of(second);
  const ApiAnswer run = api(port(), "GET", "/api/v1/runs/" + second);
  EXPECT_EQ(run.body["parameters"]["message"], "two");
  EXPECT_EQ(run.body["parameters"]["mode"], "quick");

  // Only the parameter that differs, with each run's value.
  const ApiAnswer compare = api(port(), "GET", "/api/v1/compare?runs=" + first + "," + second);
  ASSERT_EQ(compare.status, 200) << compare.reply.body;
  EXPECT_EQ(compare.body["parameters"], (Json{{"message", {"one", "two"}}})) << compare.reply.body;
  EXPECT_EQ(compare.body["parameters_compared"], 3);
  EXPECT_EQ(compare.body["runs"][1]["id"], second);
  EXPECT_EQ(api(port(), "GET", "/api/v1/compare?runs=" + first).status, 400);
  EXPECT_EQ(api(port(), "GET", "/api/v1/compare?runs=" + first + "," + first).status, 400);
  EXPECT_EQ(api(port(), "GET", "/api/v1/compare").status, 400);
  EXPECT_EQ(api(port(), "GET", "/api/v1/compare?runs=" + first + ",nope").status, 404);
}

// ------------------------------------------------------------- artifacts

// A stored artifact made by hand (a digest-shaped name): its files given.
fs::path fake_artifact(const fs::path& workspace, const std::string& digest) {
  const fs::path dir = workspace / "artifacts" / "sha256" / digest.substr(0, 2) / digest;
  fs::create_directories(dir);
  return dir;
}

TEST_F(UiControl, ShowsArtifactsTheirLineageAndPreviews) {
  const std::string id = start(Json{{"pipeline", "greet"}, {"params", {{"message", "<b>lineage</b>"}}}});
  ASSERT_TRUE(reaches(id, "succeeded")) << status_of(id);
  const ApiAnswer graph = api(port(), "GET", "/api/v1/runs/" + id + "/lineage");
  ASSERT_EQ(graph.status, 200) << graph.reply.body;
  // hi wrote one artifact that both loop items read.
  std::string hi_output;
  size_t reads = 0;
  for (const auto& e : graph.body["edges"]) {
    if (e["from"] == "step:" + id + "/hi") hi_output = e["to"];
  }
  ASSERT_FALSE(hi_output.empty()) << graph.reply.body;
  for (const auto& e : graph.body["edges"]) reads += e["from"] == hi_output;
  EXPECT_EQ(reads, 2u);
  const std::string digest = hi_output.substr(std::string("artifact:").size());

  const ApiAnswer info = api(port(), "GET", "/api/v1/artifacts/" + digest);
  ASSERT_EQ(info.status, 200) << info.reply.body;
  EXPECT_EQ(info.body["producer"]["run"], id);
  EXPECT_EQ(info.body["producer"]["step"], "hi");
  EXPECT_EQ(info.body["producer"]["output"], "text");
  EXPECT_GE(info.body["consumers"].size(), 2u);
  ASSERT_EQ(info.body["files"].size(), 1u);
  const std::string file = info.body["files"][0]["path"];

  // The text, as data (never as markup), and the bytes as an attachment.
  const ApiAnswer preview = api(port(), "GET", "/api/v1/artifacts/" + digest + "/preview");
  ASSERT_EQ(preview.status, 200) << preview.reply.body;
  EXPECT_EQ(preview.body["kind"], "text");
  EXPECT_EQ(preview.body["text"], "<b>lineage</b> (quick)");
  const ApiAnswer content = api(port(), "GET", "/api/v1/artifacts/" + digest + "/content?file=" + file);
  ASSERT_EQ(content.status, 200);
  EXPECT_EQ(content.reply.body, "<b>lineage</b> (quick)");
  EXPECT_EQ(header_of(content.reply, "content-type"), "application/octet-stream");
  EXPECT_NE(header_of(content.reply, "content-disposition").find("attachment"), std::string::npos);
  EXPECT_EQ(header_of(content.reply, "accept-ranges"), "bytes");
  // A part of it (Range), the end of it, and past its end.
  const std::string url = "/api/v1/artifacts/" + digest + "/content?file=" + file;
  const ApiAnswer part = api(port(), "GET", url, "", "Range: bytes=3-9\r\n");
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.reply.body, "lineage");
  EXPECT_EQ(header_of(part.reply, "content-range"), "bytes 3-9/22");
  const ApiAnswer tail = api(port(), "GET", url, "", "Range: bytes=-7\r\n");
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.reply.body, "(quick)");
  const ApiAnswer past = api(port(), "GET", url, "", "Range: bytes=22-\r\n");
  EXPECT_EQ(past.status, 416);
  EXPECT_EQ(past.reply.body, "");
  EXPECT_EQ(header_of(past.reply, "content-range"), "bytes */22");
  EXPECT_EQ(api(port(), "GET", url, "", "Range: bytes=0-1,4-5\r\n").reply.body, "<b>lineage</b> (quick)");  // ignored

  // Upstream of a loop item's output: the item, hi's output, hi.
  std::string item_output;
  for (const auto& e : graph.body["edges"])
    if (e["from"] == "step:" + id + "/each[0]") item_output = e["to"];
  const ApiAnswer up = api(port(), "GET", "/api/v1/artifacts/" + item_output.substr(9) + "/lineage?direction=upstream");
  ASSERT_EQ(up.status, 200) << up.reply.body;
  std::set<std::string> ids;
  for (const auto& n : up.body["nodes"]) ids.insert(n["id"].get<std::string>());
  EXPECT_TRUE(ids.count("step:" + id + "/hi")) << up.reply.body;
  EXPECT_TRUE(ids.count(hi_output));
  EXPECT_FALSE(ids.count("step:" + id + "/each[1]"));  // a sibling, not an ancestor
  const ApiAnswer down = api(port(), "GET", "/api/v1/artifacts/" + digest + "/lineage?direction=downstream&depth=1");
  ids.clear();
  for (const auto& n : down.body["nodes"]) ids.insert(n["id"].get<std::string>());
  EXPECT_TRUE(ids.count("step:" + id + "/each[1]")) << down.reply.body;

  // Refusals.
  EXPECT_EQ(api(port(), "GET", "/api/v1/artifacts/xyz").status, 400);
  EXPECT_EQ(api(port(), "GET", "/api/v1/artifacts/" + std::string(64, 'a')).status, 404);
  EXPECT_EQ(api(port(), "GET", "/api/v1/artifacts/" + digest + "/lineage?depth=0").status, 400);
  EXPECT_EQ(api(port(), "GET", "/api/v1/runs/nope/lineage").status, 404);
}

TEST_F(UiControl, PreviewsTextJsonCsvMetricsAndImages) {
  const std::string digest(64, 'b');
  const fs::path dir = fake_artifact(workspace(), digest);
  write_text(dir / "metrics.json", R"({"accuracy": 0.93, "loss": 0.21})");
  write_text(dir / "config.json", R"({"layers": [64, 32], "name": "mlp"})");
  std::string csv = "a,b,\"c,d\"\n";
  for (int i = 0; i < 50; ++i) csv += std::to_string(i) + "," + std::to_string(i * i) + ",\"x\"\"y\"\n";
  write_text(dir / "data" / "table.csv", csv);
  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
  write_text(dir / "plot.png", png);
  write_text(dir / "fake.png", "<svg onload=alert(1)>");
  write_text(dir / "blob.bin", std::string("\0\1\2\3", 4));
  const std::string base = "/api/v1/artifacts/" + digest;

  const ApiAnswer metrics = api(port(), "GET", base + "/preview?file=metrics.json");
  ASSERT_EQ(metrics.status, 200) << metrics.reply.body;
  EXPECT_EQ(metrics.body["kind"], "metrics");
  EXPECT_EQ(metrics.body["metrics"], (Json::array({{{"name", "accuracy"}, {"value", 0.93}}, {{"name", "loss"}, {"value", 0.21}}})));
  const ApiAnswer json = api(port(), "GET", base + "/preview?file=config.json");
  EXPECT_EQ(json.body["kind"], "json");
  EXPECT_EQ(json.body["value"]["layers"], Json::array({64, 32}));
  const ApiAnswer table = api(port(), "GET", base + "/preview?file=data/table.csv&rows=5");
  ASSERT_EQ(table.status, 200) << table.reply.body;
  EXPECT_EQ(table.body["kind"], "csv");
  EXPECT_EQ(table.body["header"], Json::array({"a", "b", "c,d"}));
  ASSERT_EQ(table.body["rows"].size(), 5u);
  EXPECT_EQ(table.body["rows"][3], Json::array({"3", "9", "x\"y"}));
  EXPECT_TRUE(table.body["truncated"].get<bool>());
  const ApiAnswer image = api(port(), "GET", base + "/preview?file=plot.png");
  ASSERT_EQ(image.status, 200);
  EXPECT_EQ(header_of(image.reply, "content-type"), "image/png");
  EXPECT_EQ(image.reply.body, png);
  EXPECT_EQ(api(port(), "GET", base + "/preview?file=fake.png").status, 415);  // not served as an image
  EXPECT_EQ(api(port(), "GET", base + "/preview?file=blob.bin").body["kind"], "binary");
  EXPECT_EQ(api(port(), "GET", base + "/preview?rows=0&file=metrics.json").status, 400);
  // Several files: name one.
  const ApiAnswer which = api(port(), "GET", base + "/content");
  EXPECT_EQ(which.status, 400);
  EXPECT_NE(which.error().find("?file="), std::string::npos);
  const ApiAnswer info = api(port(), "GET", base);
  ASSERT_EQ(info.status, 200) << info.reply.body;
  EXPECT_EQ(info.body["files"].size(), 6u);
  EXPECT_FALSE(info.body.contains("producer"));  // not in the database
}

TEST_F(UiControl, ArtifactPathsCannotLeaveTheArtifact) {
  const std::string digest(64, 'c');
  const fs::path dir = fake_artifact(workspace(), digest);
  write_text(dir / "ok.txt", "fine");
  write_text(dir_->path() / "secret.txt", "secret");
  fs::create_symlink(dir_->path() / "secret.txt", dir / "leak.txt");
  fs::create_directories(dir / "sub");
  fs::create_directory_symlink(dir_->path(), dir / "sub" / "out");
  const std::string base = "/api/v1/artifacts/" + digest;
  EXPECT_EQ(api(port(), "GET", base + "/content?file=ok.txt").reply.body, "fine");
  for (const std::string file :
       {"..%2F..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd", "leak.txt", "sub%2Fout%2Fsecret.txt", "sub/../ok.txt"}) {
    for (const std::string route : {"/content", "/preview"}) {
      const ApiAnswer a = api(port(), "GET", base + route + "?file=" + file);
      EXPECT_TRUE(a.status == 400 || a.status == 403) << route << " " << file << ": " << a.status << " " << a.reply.body;
      EXPECT_EQ(a.reply.body.find("secret\""), std::string::npos);
      EXPECT_NE(a.reply.body, "secret");
    }
  }
  // The symlinked file is not even listed.
  const ApiAnswer info = api(port(), "GET", base);
  for (const auto& f : info.body["files"]) EXPECT_NE(f["path"], "leak.txt");
  // A digest directory that is itself a link out of the store.
  const std::string linked(64, 'd');
  fs::create_directories(workspace() / "artifacts" / "sha256" / "dd");
  fs::create_directory_symlink(dir_->path(), workspace() / "artifacts" / "sha256" / "dd" / linked);
  EXPECT_EQ(api(port(), "GET", "/api/v1/artifacts/" + linked + "/content?file=secret.txt").status, 404);
}

// ----------------------------------------------------- metrics and trials

// Population-based training, slow enough to be seen running: 4 members, 2
// rounds of 2 epochs (util.objective's drifting toy).
const char* kPbt = R"(apiVersion: kiln/v1
kind: Pipeline
metadata: {name: pbt}
steps:
  - name: t
    component: util.objective
    parameters: {drift: 0.08, epochs: 2, epoch_seconds: 0.15}
    tune:
      tuner: tune.pbt
      objective: {metric: loss, goal: minimize}
      space: {x: {type: log_uniform, low: 0.5, high: 10.0}}
      settings: {population: 4, interval: 2}
      max_trials: 8
      parallel_trials: 2
      seed: 3
)";

TEST_F(UiControl, APbtTrialsLineageIsItsOwnFieldWhileTheStepRunsAndAfter) {
  const std::string id = start(Json{{"yaml", kPbt}});
  ASSERT_FALSE(id.empty());
  // While the step runs (the run's record): the directive is the lineage, not a parameter.
  bool seen_live = false;
  poll_until([&] {
    const ApiAnswer a = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/trials");
    if (a.status == 200 && a.body["source"] == "run record" && !a.body["trials"].empty()) {
      for (const auto& t : a.body["trials"]) {
        EXPECT_FALSE(t["parameters"].contains("kiln.pbt")) << t.dump();
        EXPECT_TRUE(t.contains("pbt")) << t.dump();
        if (!t.contains("pbt")) continue;
        EXPECT_EQ(t["pbt"]["member"], t["trial"].get<int64_t>() % 4) << t.dump();
        EXPECT_EQ(t["pbt"]["round"], t["trial"].get<int64_t>() / 4) << t.dump();
      }
      EXPECT_EQ(a.body["objectives"], (Json::array({{{"metric", "loss"}, {"goal", "minimize"}}})));
      seen_live = true;
    }
    return seen_live || status_of(id) == "succeeded";
  });
  EXPECT_TRUE(seen_live);
  ASSERT_TRUE(reaches(id, "succeeded")) << status_of(id);
  const ApiAnswer a = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/trials");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_EQ(a.body["source"], "trials.json");
  ASSERT_EQ(a.body["trials"].size(), 8u);
  for (const auto& t : a.body["trials"]) {
    const int64_t round = t["trial"].get<int64_t>() / 4;
    EXPECT_EQ(t["pbt"]["round"], round) << t.dump();
    EXPECT_EQ(t["pbt"]["from"].is_null(), round == 0) << t.dump();  // round 1 continues a round-0 checkpoint
    EXPECT_FALSE(t["parameters"].contains("kiln.pbt")) << t.dump();
  }
}

TEST_F(UiControl, SeveralObjectivesAreListedAndEachIsATrialsValue) {
  const std::string id = start(Json{{"yaml", R"(apiVersion: kiln/v1
kind: Pipeline
metadata: {name: front}
steps:
  - name: t
    component: util.objective
    parameters: {epochs: 2, epoch_seconds: 0.15}
    tune:
      tuner: tune.random
      objectives: [{metric: loss, goal: minimize}, {metric: cost, goal: minimize}]
      space: {x: {type: uniform, low: -1.0, high: 1.0}, y: {type: int, low: -3, high: 5}}
      max_trials: 6
      parallel_trials: 2
      seed: 3
)"}});
  ASSERT_FALSE(id.empty());
  const Json both = Json::array({{{"metric", "loss"}, {"goal", "minimize"}}, {{"metric", "cost"}, {"goal", "minimize"}}});
  // Live, the succeeded trials no other succeeded trial dominates (both
  // minimized) are marked as they come, before the step's table exists.
  const auto front_of = [](const Json& trials) {
    std::set<int64_t> front;
    for (const auto& a : trials) {
      if (a["status"] != "succeeded") continue;
      bool dominated = false;
      for (const auto& b : trials)
        dominated = dominated || (b["status"] == "succeeded" && b["loss"] <= a["loss"] && b["cost"] <= a["cost"] &&
                                  (b["loss"] < a["loss"] || b["cost"] < a["cost"]));
      if (!dominated) front.insert(a["trial"].get<int64_t>());
    }
    return front;
  };
  bool seen_live = false, seen_live_front = false;
  poll_until([&] {
    const ApiAnswer a = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/trials");
    if (a.status == 200 && a.body["source"] == "run record" && !a.body["trials"].empty()) {
      EXPECT_EQ(a.body["objectives"], both);
      std::set<int64_t> marked;
      for (const auto& t : a.body["trials"]) {
        EXPECT_TRUE(t.contains("loss") && t.contains("cost")) << t.dump();
        if (t.value("pareto", false)) marked.insert(t["trial"].get<int64_t>());
      }
      EXPECT_EQ(marked, front_of(a.body["trials"])) << a.body["trials"].dump();
      seen_live = true;
      seen_live_front = seen_live_front || !marked.empty();
    }
    return seen_live_front || status_of(id) == "succeeded";
  });
  EXPECT_TRUE(seen_live);
  EXPECT_TRUE(seen_live_front) << "no front was marked while the step ran";
  ASSERT_TRUE(reaches(id, "succeeded")) << status_of(id);
  const ApiAnswer a = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/trials");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_EQ(a.body["objectives"], both);
  size_t front = 0;
  for (const auto& t : a.body["trials"]) {
    EXPECT_TRUE(t["cost"].is_number()) << t.dump();
    front += t["pareto"].get<bool>();
  }
  EXPECT_GE(front, 1u);
}

TEST_F(UiControl, ShowsTrialsFromTheFirstOnAndTheMetricSeries) {
  const std::string id = start(Json{{"pipeline", "tuning"}});
  ASSERT_FALSE(id.empty());
  // While the step runs: the trials the run has recorded so far.
  bool seen_live = false;
  poll_until([&] {
    const ApiAnswer a = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/trials");
    if (a.status == 200 && a.body["source"] == "run record" && !a.body["trials"].empty()) {
      EXPECT_EQ(a.body["objective"]["metric"], "loss");
      seen_live = true;
    }
    return seen_live || status_of(id) == "succeeded";
  });
  EXPECT_TRUE(seen_live);
  ASSERT_TRUE(reaches(id, "succeeded")) << status_of(id);

  const ApiAnswer a = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/trials");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  EXPECT_EQ(a.body["source"], "trials.json");
  EXPECT_EQ(a.body["objective"], (Json{{"metric", "loss"}, {"goal", "minimize"}}));
  ASSERT_EQ(a.body["trials"].size(), 3u);
  // The best is the lowest loss, and only it is marked.
  int64_t lowest = -1;
  double value = 1e300;
  size_t marked = 0;
  for (const auto& t : a.body["trials"]) {
    EXPECT_EQ(t["epochs"], 3) << t.dump();
    EXPECT_EQ(t["status"], "succeeded");
    EXPECT_FALSE(t["early_stopped"].get<bool>());
    EXPECT_TRUE(t["parameters"].contains("x"));
    if (t["loss"].get<double>() < value) {
      value = t["loss"].get<double>();
      lowest = t["trial"].get<int64_t>();
    }
    marked += t["best"].get<bool>();
  }
  EXPECT_EQ(marked, 1u);
  EXPECT_EQ(a.body["best_trial"], lowest);

  // Each trial's unit in the run's detail ran with its suggestion over the
  // step's own parameters.
  const ApiAnswer detail = api(port(), "GET", "/api/v1/runs/" + id);
  ASSERT_EQ(detail.status, 200);
  const Json units = detail.body["steps"][0]["units"];
  ASSERT_EQ(units.size(), 3u) << detail.reply.body;
  for (const auto& t : a.body["trials"]) {
    const std::string key = std::to_string(t["trial"].get<int64_t>());
    const auto unit = std::find_if(units.begin(), units.end(), [&](const Json& u) { return u["key"] == key; });
    ASSERT_NE(unit, units.end()) << key;
    EXPECT_EQ((*unit)["parameters"]["x"], t["parameters"]["x"]) << unit->dump();
    EXPECT_EQ((*unit)["parameters"]["epochs"], 3) << unit->dump();
    EXPECT_EQ((*unit)["parameters"]["epoch_seconds"], 0.2) << unit->dump();
  }

  // Each trial's loss, epoch by epoch; the last point is the trial's objective.
  const ApiAnswer m = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/metrics");
  ASSERT_EQ(m.status, 200) << m.reply.body;
  ASSERT_EQ(m.body["units"].size(), 3u) << m.reply.body;
  for (const auto& t : a.body["trials"]) {
    const std::string unit = "t[" + std::to_string(t["trial"].get<int64_t>()) + "]";
    const Json series = m.body["units"][unit]["loss"];
    ASSERT_EQ(series.size(), 3u) << m.reply.body;
    EXPECT_EQ(series[0][0], 1);
    EXPECT_DOUBLE_EQ(series[2][1].get<double>(), t["loss"].get<double>());
  }
  // One unit, and only what is new after a cursor.
  const ApiAnswer one = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t%5B0%5D/metrics?name=loss");
  EXPECT_EQ(one.body["units"].size(), 1u);
  const ApiAnswer after = api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/metrics?after=" +
                                                 std::to_string(m.body["cursor"].get<int64_t>()));
  EXPECT_TRUE(after.body["units"].empty());
  EXPECT_EQ(api(port(), "GET", "/api/v1/runs/" + id + "/steps/nope/trials").status, 404);
  EXPECT_EQ(api(port(), "GET", "/api/v1/runs/" + id + "/steps/t/metrics?colour=1").status, 400);
}

// ------------------------------------------------------- plugins and models

TEST_F(UiControl, ShowsTheCatalog) {
  const ApiAnswer a = api(port(), "GET", "/api/v1/plugins");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  Json echo;
  for (const auto& c : a.body["components"])
    if (c["name"] == "util.echo") echo = c;
  ASSERT_TRUE(echo.is_object()) << a.reply.body;
  EXPECT_FALSE(echo["version"].get<std::string>().empty());
  EXPECT_NE(echo["library"].get<std::string>().find("util"), std::string::npos);
  bool message = false;
  for (const auto& p : echo["parameters"]) message = message || p["name"] == "message";
  EXPECT_TRUE(message);
  EXPECT_FALSE(echo["outputs"].empty());
  const ApiAnswer one = api(port(), "GET", "/api/v1/plugins?name=util.sleep");
  ASSERT_EQ(one.body["components"].size(), 1u);
  EXPECT_EQ(api(port(), "GET", "/api/v1/plugins?name=util.nosuch").status, 404);
}

TEST_F(UiControl, ShowsTheModelRepositoryWithSources) {
  write_text(models() / "digits" / "config.json", R"({"max_batch_size": 8})");
  write_text(models() / "digits" / "1" / "model.json", R"({"task": "classification"})");
  write_text(models() / "digits" / "2" / "model.json", R"({"task": "classification", "classes": 10})");
  write_text(models() / "digits" / "junk" / "x", "not a version");
  // Version 2 was published by a run's serve.publish step, from a Model artifact.
  const std::string run = "20260101-000000-pub-0000000000000001", model(64, 'e');
  {
    host::MetadataDb db(workspace() / "kiln.db");
    db.execute("INSERT INTO runs (id, pipeline, spec_file, spec_text, parameters, executor, run_dir, status,"
               " started_at, host, pid, boot_id, process_start) VALUES (?, 'pub', 'p.yaml', '', '{}', 'process', '',"
               " 'succeeded', '2026-01-01T00:00:00Z', 'h', 1, 'b', '1')",
               {run});
    db.execute("INSERT INTO steps (run_id, unit, step, item_index, status, component, outputs) VALUES"
               " (?, 'publish', 'publish', -1, 'succeeded', 'serve.publish', ?)",
               {run, Json{{"path", (models() / "digits" / "2").string()}, {"version", 2}}.dump()});
    db.execute("INSERT INTO lineage (run_id, unit, role, name, digest) VALUES (?, 'publish', 'input', 'model', ?)",
               {run, model});
  }
  const ApiAnswer a = api(port(), "GET", "/api/v1/models");
  ASSERT_EQ(a.status, 200) << a.reply.body;
  ASSERT_EQ(a.body["models"].size(), 1u);
  const Json digits = a.body["models"][0];
  EXPECT_EQ(digits["name"], "digits");
  EXPECT_EQ(digits["config"]["max_batch_size"], 8);
  ASSERT_EQ(digits["versions"].size(), 2u);
  EXPECT_EQ(digits["versions"][0]["version"], 2);  // newest first
  EXPECT_EQ(digits["versions"][0]["model"]["classes"], 10);
  EXPECT_EQ(digits["versions"][0]["source"], (Json{{"run", run}, {"step", "publish"}, {"artifact", model}}));
  EXPECT_TRUE(digits["versions"][1]["source"].is_null());
  EXPECT_EQ(api(port(), "GET", "/api/v1/models?repo=/etc").status, 400);  // only --models is read
}

// The inference form's proxy refuses what it must not send on, each with its
// reason, before reaching for kiln serve (tests/ml/torch/serve_test.cpp sends
// real requests to a real kiln serve through it).
TEST_F(UiControl, TheInferenceProxyRefusesBadRequestsWithTheirReasons) {
  const std::string request = R"({"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP32", "data": [0]}]})";
  const std::vector<std::tuple<std::string, std::string, int, std::string>> cases{
      {"/api/v1/models/digits/infer", request, 400, "'port' is missing"},
      {"/api/v1/models/digits/infer?port=0", request, 400, "'port'"},
      {"/api/v1/models/digits/infer?port=70000", request, 400, "'port'"},
      {"/api/v1/models/digits/infer?port=80&host=example.com", request, 400, "'host'"},  // no other host
      {"/api/v1/models/digits/infer?port=80&version=0", request, 400, "'version'"},
      {"/api/v1/models/a%20b/infer?port=80", request, 400, "not a model name"},
      {"/api/v1/models/digits/infer?port=80", "not json", 400, "JSON object"},
      {"/api/v1/models/digits/infer?port=80", "[1, 2]", 400, "JSON object"},
      {"/api/v1/models/digits/infer?port=80", "{\"x\": \"" + std::string(300 << 10, 'a') + "\"}", 413, "at most"},
  };
  for (const auto& [target, body, status, reason] : cases) {
    const ApiAnswer a = api(port(), "POST", target, body);
    EXPECT_EQ(a.status, status) << target << ": " << a.reply.body.substr(0, 300);
    EXPECT_NE(a.error().find(reason), std::string::npos) << target << ": " << a.reply.body.substr(0, 300);
  }
  // Another site's page cannot use it (CSRF), and it is a POST only.
  EXPECT_EQ(api(port(), "POST", "/api/v1/models/digits/infer?port=80", request, "Origin: http://evil.example\r\n").status,
            403);
  EXPECT_EQ(api(port(), "GET", "/api/v1/models/digits/infer?port=80").status, 405);
  // Nobody listening on the port: a 502 that says so.
  int free_port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
    free_port = ntohs(address.sin_port);
    ::close(fd);  // bound, never listening: nothing answers there
  }
  const ApiAnswer a = api(port(), "POST", "/api/v1/models/digits/infer?port=" + std::to_string(free_port), request);
  EXPECT_EQ(a.status, 502) << a.reply.body;
  EXPECT_NE(a.error().find("no answer from kiln serve at http://127.0.0.1:" + std::to_string(free_port) +
                           "/v2/models/digits/infer"),
            std::string::npos)
      << a.reply.body;
}

}  // namespace
}  // namespace kiln::test

namespace kiln::test {
namespace {

// The run-start body parser under random bytes (what fuzz/ui_run_body_fuzz.cpp
// checks under libFuzzer): seeds mutated byte by byte, each parsed to a
// request within its limits or refused with a 400/413.
TEST(UiRunBody, RandomBodiesAreRefusedOrSafe) {
  const std::vector<std::string> seeds{
      R"({"pipeline": "hello", "params": {"mode": "thorough", "pause": "0.5"}})",
      R"({"yaml": "apiVersion: kiln/v1\nkind: Pipeline\nsteps: []\n", "file_name": "a.yaml", "no_cache": true})",
      R"({"params": {"names": ["ada", {"x": [1, 2, null]}]}})", "[1, 2]", "{}", ""};
  std::mt19937 random(18);
  size_t accepted = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body = seeds[random() % seeds.size()];
    const int edits = 1 + static_cast<int>(random() % 8);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = random() % body.size();
      switch (random() % 3) {
        case 0: body[at] = static_cast<char>(random() % 256); break;
        case 1: body.erase(at, 1); break;
        default: body.insert(at, 1, "{}[]\",:\\u0 ay/"[random() % 14]);
      }
    }
    try {
      const ui::StartRequest r = ui::parse_start_request(body);
      ASSERT_NE(r.pipeline.empty(), r.yaml.empty()) << body;
      ASSERT_LE(r.yaml.size(), ui::kMaxUploadBytes);
      ASSERT_EQ(r.file_name.find('/'), std::string::npos) << body;
      ASSERT_TRUE(r.params.is_object()) << body;
      ++accepted;
    } catch (const ui::ApiError& e) {
      ASSERT_TRUE(e.status() == 400 || e.status() == 413) << body;
      ASSERT_FALSE(std::string(e.what()).empty());
      ++refused;
    }
  }
  EXPECT_GT(accepted, 0u);
  EXPECT_GT(refused, 0u);
}

}  // namespace
}  // namespace kiln::test

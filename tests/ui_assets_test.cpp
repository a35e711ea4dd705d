// kiln ui's web assets (host/ui/static_assets.cpp, the embedded copy made
// by host/ui/embed) and the workspace's run-level event stream
// (host/ui/runs_feed.cpp), over loopback. The browser tests
// (tests/ui_browser) check what the views do with them.
#include <kiln/host/host_identity.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/metadata_db.hpp>
#include <kiln/ui/ui_server.hpp>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <map>
#include <set>
#include <thread>

#include "embedded_assets.hpp"
#include "raw_http_client.hpp"
#include "static_assets.hpp"
#include "synthetic_runs.hpp"
#include "test_support.hpp"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;
using host::Json;
using namespace std::chrono_literals;

// The budget for every UI asset together, gzipped.
constexpr size_t kAssetBudgetBytes = 150 * 1024;

std::string gunzip(const std::string& data) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  char chunk[16384];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(chunk, sizeof chunk - z.avail_out);
  }
  inflateEnd(&z);
  EXPECT_EQ(rc, Z_STREAM_END);
  return out;
}

Reply get(uint16_t port, const std::string& target, const std::string& headers = "",
          const std::string& method = "GET") {
  Client c(port);
  c.send(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
         (method == "POST" ? "Content-Length: 0\r\n" : "") + "\r\n");
  return c.read_reply();
}

std::string embedded(const std::string& path) {
  for (size_t i = 0; i < ui::kEmbeddedAssetCount; ++i)
    if (path == ui::kEmbeddedAssets[i].path)
      return std::string(reinterpret_cast<const char*>(ui::kEmbeddedAssets[i].data), ui::kEmbeddedAssets[i].size);
  ADD_FAILURE() << path << " is not embedded";
  return "";
}

class UiAssets : public ::testing::Test {
 protected:
  void start(const fs::path& ui_dir = {}) {
    ui::UiOptions options;
    options.workspace = dir_.path();
    options.ui_dir = ui_dir;
    options.poll = 20ms;
    options.heartbeat = 60s;
    server_ = std::make_unique<ui::UiServer>(options);
    server_->start();
  }
  uint16_t port() const { return server_->port(); }

  TempDir dir_;
  std::unique_ptr<ui::UiServer> server_;
};

TEST(UiEmbedded, AllAssetsFitTheBudgetAndUnzipToTheirBytes) {
  size_t total = 0;
  std::set<std::string> paths;
  for (size_t i = 0; i < ui::kEmbeddedAssetCount; ++i) {
    const ui::EmbeddedAsset& a = ui::kEmbeddedAssets[i];
    paths.insert(a.path);
    total += std::min(a.gzip_size, a.size);  // what a gzip-accepting browser downloads
    const std::string raw(reinterpret_cast<const char*>(a.data), a.size);
    EXPECT_EQ(gunzip(std::string(reinterpret_cast<const char*>(a.gzip), a.gzip_size)), raw) << a.path;
    EXPECT_EQ(std::string(a.etag).size(), 18u) << a.path;
    EXPECT_NE(std::string(a.content_type), "") << a.path;
  }
  EXPECT_LE(total, kAssetBudgetBytes) << "the UI's assets are " << total << " bytes gzipped";
  for (const char* needed : {"/index.html", "/app.js", "/style.css", "/vendor/dagre.esm.js", "/vendor/uPlot.esm.js"})
    EXPECT_TRUE(paths.count(needed)) << needed;
}

TEST(UiEmbedded, NoPageHasInlineScriptOrStyleOrHandlers) {
  // The Content-Security-Policy forbids inline script: a page that needed it would break.
  for (size_t i = 0; i < ui::kEmbeddedAssetCount; ++i) {
    const std::string path = ui::kEmbeddedAssets[i].path;
    if (path.size() < 5 || path.substr(path.size() - 5) != ".html") continue;
    const std::string html = embedded(path);
    size_t at = 0;
    while ((at = html.find("<script", at)) != std::string::npos) {
      const size_t end = html.find('>', at);
      EXPECT_NE(html.substr(at, end - at).find(" src="), std::string::npos) << path << ": an inline script";
      at = end;
    }
    EXPECT_EQ(html.find("<style"), std::string::npos) << path;
    EXPECT_EQ(html.find(" onclick="), std::string::npos) << path;
    EXPECT_EQ(html.find(" onload="), std::string::npos) << path;
  }
}

TEST(UiEmbedded, AcceptEncodingIsRead) {
  EXPECT_TRUE(ui::accepts_gzip("gzip"));
  EXPECT_TRUE(ui::accepts_gzip("deflate, gzip;q=1.0, br"));
  EXPECT_TRUE(ui::accepts_gzip("*"));
  EXPECT_TRUE(ui::accepts_gzip("GZIP; q=0.5"));
  EXPECT_FALSE(ui::accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(ui::accepts_gzip("gzip; q=0.000"));
  EXPECT_FALSE(ui::accepts_gzip("identity"));
  EXPECT_FALSE(ui::accepts_gzip("xgzip, gzipx"));
  EXPECT_FALSE(ui::accepts_gzip(""));
}

TEST_F(UiAssets, ServesTheIndexWithItsSecurityHeaders) {
  start();
  for (const std::string target : {"/", "/index.html"}) {
    const Reply r = get(port(), target);
    ASSERT_EQ(r.status, 200) << target;
    EXPECT_EQ(header_of(r, "content-type"), "text/html; charset=utf-8");
    EXPECT_EQ(r.body, embedded("/index.html"));
    const std::string csp = header_of(r, "content-security-policy");
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
    EXPECT_EQ(header_of(r, "x-content-type-options"), "nosniff");
    EXPECT_EQ(header_of(r, "cache-control"), "no-cache");
    EXPECT_EQ(header_of(r, "content-encoding"), "");
  }
}

TEST_F(UiAssets, GzipWhenAcceptedAndNotModifiedByETag) {
  start();
  const Reply plain = get(port(), "/vendor/uPlot.esm.js");
  ASSERT_EQ(plain.status, 200);
  EXPECT_EQ(header_of(plain, "content-type"), "text/javascript; charset=utf-8");
  const Reply zipped = get(port(), "/vendor/uPlot.esm.js", "Accept-Encoding: gzip, deflate, br\r\n");
  ASSERT_EQ(zipped.status, 200);
  EXPECT_EQ(header_of(zipped, "content-encoding"), "gzip");
  EXPECT_EQ(header_of(zipped, "vary"), "Accept-Encoding");
  EXPECT_LT(zipped.body.size(), plain.body.size() / 2);
  EXPECT_EQ(gunzip(zipped.body), plain.body);
  EXPECT_EQ(header_of(get(port(), "/app.js", "Accept-Encoding: gzip;q=0\r\n"), "content-encoding"), "");

  const std::string etag = header_of(plain, "etag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(header_of(zipped, "etag"), etag);
  const Reply again = get(port(), "/vendor/uPlot.esm.js", "If-None-Match: \"0000000000000000\", " + etag + "\r\n");
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(get(port(), "/vendor/uPlot.esm.js", "If-None-Match: \"0000000000000000\"\r\n").status, 200);
  EXPECT_EQ(header_of(get(port(), "/style.css"), "content-type"), "text/css; charset=utf-8");
}

TEST_F(UiAssets, HeadAnswersTheHeadOfGetWithoutTheBody) {
  start();
  Client c(port());
  // HEAD then GET on one connection: had the HEAD's answer carried a body, the GET's would be read wrong.
  c.send("HEAD /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const Reply head = c.read_head();
  ASSERT_EQ(head.status, 200);
  const Reply body = c.read_reply();
  ASSERT_EQ(body.status, 200);
  EXPECT_EQ(body.body, embedded("/app.js"));
  EXPECT_EQ(header_of(head, "content-length"), std::to_string(body.body.size()));
  EXPECT_EQ(header_of(head, "etag"), header_of(body, "etag"));
  EXPECT_EQ(header_of(head, "content-type"), "text/javascript; charset=utf-8");
  Client missing(port());
  missing.send("HEAD /nope.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(missing.read_head().status, 404);
}

TEST_F(UiAssets, UnknownFilesAndMethodsAreRefused) {
  start();
  EXPECT_EQ(get(port(), "/nope.js").status, 404);
  EXPECT_EQ(get(port(), "/vendor/VENDOR.json").status, 404);  // not embedded
  EXPECT_EQ(get(port(), "/app.exe").status, 404);
  EXPECT_EQ(get(port(), "/%2e%2e/CMakeLists.txt").status, 400);
  EXPECT_EQ(get(port(), "/a%2fb.js").status, 400);
  const Reply post = get(port(), "/index.html", "", "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(header_of(post, "allow"), "GET, HEAD");
  EXPECT_EQ(get(port(), "/api/nothing").status, 404);  // the API's namespace is not the UI's
}

TEST_F(UiAssets, UiDirServesFilesAsTheyAreNowAndNothingOutside) {
  const fs::path web = dir_.path() / "web";
  fs::create_directories(web / "views");
  write_text(web / "index.html", "<!doctype html><p>dev</p>");
  write_text(web / "views" / "a.js", "export const a = 1;\n");
  write_text(dir_.path() / "secret.js", "secret");
  fs::create_symlink(dir_.path() / "secret.js", web / "leak.js");
  start(web);
  Reply r = get(port(), "/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<!doctype html><p>dev</p>");
  EXPECT_NE(header_of(r, "content-security-policy"), "");
  r = get(port(), "/views/a.js");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(header_of(r, "content-type"), "text/javascript; charset=utf-8");
  const std::string etag = header_of(r, "etag");
  write_text(web / "views" / "a.js", "export const a = 2;\n");  // edited: served at once, a new ETag
  r = get(port(), "/views/a.js", "If-None-Match: " + etag + "\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "export const a = 2;\n");
  EXPECT_EQ(get(port(), "/leak.js").status, 404);  // a link out of the directory
  EXPECT_EQ(get(port(), "/views").status, 404);
  EXPECT_EQ(get(port(), "/missing.css").status, 404);
}

TEST(UiOptionsCheck, UiDirNeedsAnIndex) {
  TempDir dir;
  ui::UiOptions options;
  options.workspace = dir.path();
  options.ui_dir = dir.path();
  EXPECT_THROW(ui::check_options(options), std::invalid_argument);
  write_text(dir.path() / "index.html", "x");
  EXPECT_NO_THROW(ui::check_options(options));
}

// ------------------------------------------------- GET /api/v1/events

// Sets a run's status from another connection, as a `kiln run` process would.
void set_status(const fs::path& workspace, const std::string& run, const std::string& status) {
  host::MetadataDb db(workspace / "kiln.db");
  db.execute("UPDATE runs SET status = ? WHERE id = ?", {status, run});
}

struct Message {
  std::string id;
  Json data;
};

// The next data message of a stream (comments and retry: skipped); nullopt at the end or the timeout.
std::optional<Message> next_data(Client& c) {
  for (;;) {
    const std::string block = c.read_until("\n\n");
    if (block.empty()) return std::nullopt;
    Message m;
    bool data = false;
    size_t from = 0;
    while (from < block.size()) {
      const size_t end = block.find('\n', from);
      const std::string line = block.substr(from, end - from);
      from = end + 1;
      if (line.rfind("id: ", 0) == 0) m.id = line.substr(4);
      if (line.rfind("data: ", 0) == 0) {
        m.data = Json::parse(line.substr(6));
        data = true;
      }
    }
    if (data) return m;
  }
}

TEST_F(UiAssets, WorkspaceEventsTellNewRunsAndStatusChanges) {
  start();  // an empty workspace: no database yet
  Client c(port());
  c.send("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const Reply head = c.read_head();
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(header_of(head, "content-type"), "text/event-stream");
  c.set_receive_timeout(10s);

  const auto runs = add_synthetic_runs(dir_.path(), 3, 5);
  std::map<std::string, std::string> seen;
  std::set<std::string> ids;
  while (seen.size() < runs.size()) {
    const auto m = next_data(c);
    ASSERT_TRUE(m) << "only " << seen.size() << " runs were announced";
    EXPECT_EQ(m->data["type"], "run_changed");
    EXPECT_TRUE(ids.insert(m->id).second) << "a repeated id " << m->id;
    seen[m->data["run"].get<std::string>()] = m->data["status"].get<std::string>();
  }
  for (const auto& r : runs) EXPECT_EQ(seen[r.id], r.status) << r.id;

  // A status changed by another connection (as a kiln run process would): one event, that run only.
  set_status(dir_.path(), runs[0].id, "running");
  auto m = next_data(c);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data["run"], runs[0].id);
  EXPECT_EQ(m->data["status"], "running");
  set_status(dir_.path(), runs[0].id, "failed");
  m = next_data(c);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data["run"], runs[0].id);
  EXPECT_EQ(m->data["status"], "failed");
  EXPECT_EQ(server_->open_streams(), 1u);
}

TEST_F(UiAssets, WorkspaceEventsStartFromNowOnAnExistingWorkspace) {
  const auto before = add_synthetic_runs(dir_.path(), 4, 9);
  start();
  Client c(port());
  c.send("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  ASSERT_EQ(c.read_head().status, 200);
  c.set_receive_timeout(10s);
  std::this_thread::sleep_for(200ms);  // the feed has looked at the database once
  set_status(dir_.path(), before[2].id, "running");  // as `kiln resume` does
  auto m = next_data(c);  // the old runs are not replayed: the first message is the change
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data["run"], before[2].id);
  EXPECT_EQ(m->data["status"], "running");
  set_status(dir_.path(), before[2].id, "succeeded");
  m = next_data(c);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data["run"], before[2].id);
  EXPECT_EQ(m->data["status"], "succeeded");
}

TEST_F(UiAssets, WorkspaceEventsReportARunWhoseProcessDiedAsInterrupted) {
  const auto runs = add_synthetic_runs(dir_.path(), 2, 5);
  start();
  Client c(port());
  c.send("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  ASSERT_EQ(c.read_head().status, 200);
  c.set_receive_timeout(10s);
  // A process that stands for a `kiln run`: the run records its identity, as kiln run does.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  // Killed on every way out: a child left in pause() would hold ctest's output pipe open until its timeout.
  struct KillOnExit {
    pid_t pid;
    ~KillOnExit() {
      if (::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    }
  } const reaper{child};
  std::string started;
  ASSERT_TRUE(poll_until([&] { return !(started = host::process_start_time(child)).empty(); }));
  const host::HostIdentity me = host::current_host_identity();
  {
    host::MetadataDb db(dir_.path() / "kiln.db");
    db.execute("UPDATE runs SET status='running', host=?, pid=?, boot_id=?, process_start=? WHERE id=?",
               {me.host, static_cast<int64_t>(child), me.boot_id, started, runs[1].id});
  }
  auto m = next_data(c);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data["run"], runs[1].id);
  EXPECT_EQ(m->data["status"], "running");
  // It dies without a word to the database: the feed still says so.
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  // Under load the feed may repeat the run's last state before its next check finds the process gone.
  for (int i = 0; i < 5; ++i) {
    m = next_data(c);
    ASSERT_TRUE(m);
    ASSERT_EQ(m->data["run"], runs[1].id) << m->data.dump();
    if (m->data["status"] != "running") break;
  }
  EXPECT_EQ(m->data["status"], "interrupted") << m->data.dump();
  // Once: another commit does not send it again, and the run is still compared.
  set_status(dir_.path(), runs[0].id, "running");  // on another host (synthetic-host): its process is not looked at
  m = next_data(c);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data["run"], runs[0].id);
  EXPECT_EQ(m->data["status"], "running");
}

}  // namespace
}  // namespace kiln::test

// Helpers shared by kiln's test suites.
#pragma once

#include <kiln/host/catalog.hpp>
#include <kiln/host/invoke.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/run_events.hpp>
#include <kiln/host/step_context.hpp>
#include <kiln/host/subprocess.hpp>

#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#define KILN_TEST_KILN_EXE (::kiln::test::configured::kiln_exe)
#define KILN_TEST_UTIL_PLUGIN (::kiln::test::configured::util_plugin)
#define KILN_TEST_GREETER_PLUGIN (::kiln::test::configured::greeter_plugin)
#define KILN_TEST_FIXTURE_DIR (::kiln::test::configured::fixture_dir)
#define KILN_TEST_SOURCE_DIR (::kiln::test::configured::source_dir)

namespace kiln::test {

// Paths of this build, set by tests/CMakeLists.txt in one generated file
// (configured_paths.cpp) rather than as -D flags on every test file: a flag
// naming the checkout made every test file miss ccache in every other
// checkout (git worktrees), and these pointers are constant-initialized, so
// tests may read them in their own static initializers.
namespace configured {
extern const char* const kiln_exe;        // bin/kiln
extern const char* const util_plugin;     // kiln_util.so
extern const char* const greeter_plugin;  // samples' sample_greeter.so
extern const char* const fixture_dir;     // the test plugins' directory
extern const char* const source_dir;      // the checkout
extern const char* const scan_cache_dir;  // build/test-scan-cache
}  // namespace configured

// A fresh directory under the system temp dir, removed with its content.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Paths of what the build produced.
std::filesystem::path kiln_exe();
// The plugin manifest cache every test process shares (KILN_CACHE_DIR, a
// LibraryScanner's cache_dir): entries are keyed by the library's content
// digest, so sharing is sound, and a test process that finds them loads no
// library to learn its components. Without it each process scanned every
// built plugin afresh, LibTorch's included: ~10 s per process under ASan.
// Tests of the cache itself, or of libraries that fail to load, keep their own.
std::filesystem::path scan_cache();
std::filesystem::path util_plugin();
std::filesystem::path fixture(const std::string& name);  // e.g. "fixture_good"

// A pipeline planned against the built plugins (util.*, tune.*): `body` is
// what follows the pipeline's header (parameters, options, steps, finally).
host::Plan plan_text(const std::string& body);

// Runs `kiln args...` with extra environment, capturing its output.
host::CapturedRun run_kiln(const std::vector<std::string>& args,
                           const std::vector<std::pair<std::string, std::string>>& env = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(60));

void write_text(const std::filesystem::path& path, const std::string& text);

// Whether `done` turns true, asked every 10 ms, at most `tries` times (a
// bounded wait that asserts nothing on time).
bool poll_until(const std::function<bool()>& done, int tries = 1000);

// Whether process `pid` has ended: gone, or a zombie that whoever adopted it
// has yet to reap.
bool process_ended(pid_t pid);

// Whether `tool` is on PATH; why runc cannot run containers here ("" when it can).
bool on_path(const std::string& tool);
std::string cannot_run_containers();
// The catalog of the util plugin's directory: scanned once per test process
// (through scan_cache()), shared by every test.
const host::PluginCatalog& util_catalog();
// Whether skipping is forbidden: scripts/test.sh (CI) sets KILN_TEST_NO_SKIPS=1.
bool skips_forbidden();
std::string read_text(const std::filesystem::path& path);

// Records every event a step reports.
class RecordingSink : public host::StepEventSink {
 public:
  struct Metric {
    std::string name;
    double value;
    int64_t step;
  };
  void on_log(KilnLogLevel level, const std::string& message) override;
  void on_metric(const std::string& name, double value, int64_t step) override;
  void on_progress(double fraction, const std::string& message) override;
  void on_output_parameter(const std::string& name, const host::Json& value) override;
  void on_output_metadata(const std::string& name, const host::Json& metadata) override;

  std::mutex mutex;
  std::vector<std::pair<KilnLogLevel, std::string>> logs;
  std::vector<Metric> metrics;
  std::vector<double> progress;
  host::Json output_parameters = host::Json::object();
  host::Json output_metadata = host::Json::object();
};

// Runs component `name` of the plugin library at `library` in this process,
// through the real ABI: parameters resolved against its manifest (problems
// fail the test), outputs under dir/out, scratch under dir/tmp, checkpoints
// under dir/checkpoint.
host::StepOutcome invoke_component(const std::filesystem::path& library, const std::string& name,
                                   const host::Json& params, const std::filesystem::path& dir, RecordingSink& sink,
                                   std::map<std::string, host::InputArtifact> inputs = {});

// Hands a run's events to a callback in their event-log JSON form
// (docs/events.md), on the engine's thread.
class JsonEventObserver : public host::RunObserver {
 public:
  explicit JsonEventObserver(std::function<void(const host::Json&)> f) : f_(std::move(f)) {}
  void on_event(uint64_t seq, const host::RunEvent& event) override {
    host::Json json = host::to_json(event);
    json["seq"] = seq;
    f_(json);
  }

 private:
  std::function<void(const host::Json&)> f_;
};

}  // namespace kiln::test

// Skips the current test saying `reason` (streamed: KILN_TEST_SKIP("no " << x)),
// or fails it when skips are forbidden: what a test cannot check on a
// developer's machine must not pass unchecked in CI.
#define KILN_TEST_SKIP(reason)                                                               \
  do {                                                                                       \
    if (::kiln::test::skips_forbidden())                                                     \
      GTEST_FAIL() << reason << " (and KILN_TEST_NO_SKIPS=1 forbids skipping: see tests/README.md)"; \
    else                                                                                     \
      GTEST_SKIP() << reason;                                                                \
  } while (false)

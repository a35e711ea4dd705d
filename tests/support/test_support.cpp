#include "test_support.hpp"

#include <gtest/gtest.h>
#include <kiln/host/manifest.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/scanner.hpp>
#include <kiln/host/spec.hpp>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace kiln::test {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "kiln-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path kiln_exe() {
  return KILN_TEST_KILN_EXE;
}
fs::path util_plugin() {
  return KILN_TEST_UTIL_PLUGIN;
}
fs::path scan_cache() {
  return configured::scan_cache_dir;
}
host::Plan plan_text(const std::string& body) {
  const auto& catalog = util_catalog();
  const std::string yaml = "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: p}\n" + body;
  return host::plan_pipeline(host::parse_pipeline_text(yaml, "p.yaml"), catalog, host::Json::object());
}

fs::path fixture(const std::string& name) {
  return fs::path(KILN_TEST_FIXTURE_DIR) / (name + ".so");
}

host::CapturedRun run_kiln(const std::vector<std::string>& args,
                           const std::vector<std::pair<std::string, std::string>>& env,
                           std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{kiln_exe().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return host::run_captured({argv, {}, {}, env}, timeout);
}

void write_text(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path);
  out << text;
}

bool poll_until(const std::function<bool()>& done, int tries) {
  for (int i = 0; i < tries; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

bool process_ended(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && stat.compare(paren + 1, 3, " Z ") == 0;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void RecordingSink::on_log(KilnLogLevel level, const std::string& message) {
  const std::lock_guard<std::mutex> lock(mutex);
  logs.emplace_back(level, message);
}

void RecordingSink::on_metric(const std::string& name, double value, int64_t step) {
  const std::lock_guard<std::mutex> lock(mutex);
  metrics.push_back({name, value, step});
}

void RecordingSink::on_progress(double fraction, const std::string&) {
  const std::lock_guard<std::mutex> lock(mutex);
  progress.push_back(fraction);
}

void RecordingSink::on_output_parameter(const std::string& name, const host::Json& value) {
  const std::lock_guard<std::mutex> lock(mutex);
  output_parameters[name] = value;
}

void RecordingSink::on_output_metadata(const std::string& name, const host::Json& metadata) {
  const std::lock_guard<std::mutex> lock(mutex);
  output_metadata[name] = metadata;
}

host::StepOutcome invoke_component(const fs::path& library, const std::string& name, const host::Json& params,
                                   const fs::path& dir, RecordingSink& sink,
                                   std::map<std::string, host::InputArtifact> inputs) {
  const auto loaded = host::PluginLibrary::load(library);
  const auto* component = loaded->find(name);
  if (component == nullptr) throw std::runtime_error(library.string() + " lacks " + name);
  std::vector<std::string> problems;
  host::StepInvocation invocation;
  invocation.parameters = host::resolve_parameters(component->manifest, params, problems);
  EXPECT_TRUE(problems.empty()) << problems.front();
  invocation.inputs = std::move(inputs);
  invocation.output_dir = dir / "out";
  invocation.temp_dir = dir / "tmp";
  invocation.checkpoint_dir = dir / "checkpoint";
  const std::atomic<bool> not_cancelled{false};
  return host::invoke_component(*component, invocation, sink, not_cancelled);
}

bool on_path(const std::string& tool) {
  return host::run_with_result_channel({"/bin/sh", "-c", "command -v " + tool}, std::chrono::seconds(5))
      .status.success();
}

const host::PluginCatalog& util_catalog() {
  static const auto catalog = host::PluginCatalog::discover(
      host::LibraryScanner({kiln_exe(), scan_cache(), std::chrono::seconds(20)}), {util_plugin().parent_path()});
  return catalog;
}

bool skips_forbidden() {
  const char* value = std::getenv("KILN_TEST_NO_SKIPS");
  return value != nullptr && std::string(value) == "1";
}

std::string cannot_run_containers() {
  if (!on_path("runc")) return "runc is not installed (apt-get install runc)";
  if (::geteuid() != 0) return "runc needs root to create containers here";
  return "";
}

}  // namespace kiln::test

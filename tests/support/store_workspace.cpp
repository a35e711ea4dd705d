#include "store_workspace.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace kiln::test {
namespace fs = std::filesystem;

StoreWorkspace::StoreWorkspace() {
  fs::create_directories(dir_ / "plugins");
  use_plugin("v1");
}

void StoreWorkspace::use_plugin(const std::string& variant) {
  // Replaced by a rename, as an install would, never rewritten in place.
  fs::copy_file(fixture("fixture_store_" + variant), dir_ / "plugins" / "fx.so.new",
                fs::copy_options::overwrite_existing);
  fs::rename(dir_ / "plugins" / "fx.so.new", dir_ / "plugins" / "fx.so");
}

std::vector<std::pair<std::string, std::string>> StoreWorkspace::env() const {
  return {{"KILN_PLUGIN_PATH", (dir_ / "plugins").string()},
          {"KILN_CACHE_DIR", scan_cache().string()},
          {"KILN_HOME", workspace().string()}};
}

std::string StoreWorkspace::pipeline(const std::string& body) const {
  static int count = 0;
  const auto file = dir_ / ("p" + std::to_string(++count) + ".yaml");
  write_text(file, "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: store}\n" + body);
  return file.string();
}

host::CapturedRun StoreWorkspace::kiln(std::vector<std::string> args,
                                       const std::vector<std::pair<std::string, std::string>>& extra_env) const {
  auto environment = env();
  environment.insert(environment.end(), extra_env.begin(), extra_env.end());
  return run_kiln(args, environment);
}

host::Json StoreWorkspace::run(const std::string& file, const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"run", file, "--json", "--jobs", "2"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto result = kiln(argv);
  EXPECT_EQ(result.status.code, 0) << result.output;
  return summary_of(result.output);
}

std::vector<std::string> StoreWorkspace::log() const {
  std::ifstream in(dir_ / "log");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string StoreWorkspace::output(const std::string& run, const std::string& step, const std::string& output) const {
  host::Store store(workspace());
  const auto row = store.db.query_one("SELECT artifacts FROM steps WHERE run_id=? AND unit=?", {run, step});
  if (!row) return "<no step " + step + ">";
  const auto artifacts = host::Json::parse((*row)["artifacts"].get<std::string>());
  return read_text(store.artifacts.path_of(artifacts.at(output).get<std::string>()) / "content");
}

host::Json summary_of(const std::string& output) {
  const auto brace = output.rfind("\n{");
  try {
    return host::Json::parse(brace == std::string::npos ? output : output.substr(brace + 1));
  } catch (const std::exception&) {
    ADD_FAILURE() << "no JSON summary in:\n" << output;
    return host::Json::object();
  }
}

}  // namespace kiln::test

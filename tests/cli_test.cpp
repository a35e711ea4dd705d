// The `kiln` command line, run as a user runs it.
#include <gtest/gtest.h>
#include <kiln/host/json.hpp>

#include "test_support.hpp"

using kiln::host::Json;
using kiln::test::fixture;
using kiln::test::run_kiln;
using kiln::test::TempDir;
namespace fs = std::filesystem;

namespace {

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
            {"KILN_SCAN_TIMEOUT_MS", "1000"},
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
  for (const auto& lib : listing["libraries"])
    if (lib["status"] == "error") reasons[fs::path(lib["path"].get<std::string>()).filename()] = lib["reason"];
  ASSERT_EQ(reasons.size(), 6u) << run.output;
  EXPECT_NE(reasons["fixture_crash_on_load.so"].find("SIGSEGV"), std::string::npos);
  EXPECT_NE(reasons["fixture_hang_on_load.so"].find("hung while being scanned"), std::string::npos);
  EXPECT_NE(reasons["fixture_abi_major_2.so"].find("major versions must match"), std::string::npos);
  EXPECT_NE(reasons["fixture_not_a_plugin.so"].find("not a kiln plugin"), std::string::npos);
  EXPECT_NE(reasons["fixture_throw_on_load.so"].find("fixture throws from a static constructor"), std::string::npos);
  EXPECT_NE(reasons["garbage.so"].find("not a loadable library"), std::string::npos);
  std::set<std::string> names;
  for (const auto& c : listing["components"]) names.insert(c["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"util.echo", "util.fail", "util.noop", "util.sleep"}));
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
  TempDir cache;
  const auto run =
      run_kiln({"plugins", "describe", "util.echo", "--json"}, {{"KILN_CACHE_DIR", cache.path().string()}});
  ASSERT_EQ(run.status.code, 0) << run.output;
  const Json manifest = Json::parse(run.output);
  EXPECT_EQ(manifest["name"], "util.echo");
  EXPECT_EQ(manifest["parameters"][0]["default"], "hello");
  EXPECT_EQ(manifest["outputs"][0]["type"], "Text");
  const auto text = run_kiln({"plugins", "describe", "util.fail"}, {{"KILN_CACHE_DIR", cache.path().string()}});
  EXPECT_NE(text.output.find("exit_code (int, default 3, min 0, max 255)"), std::string::npos) << text.output;
}

TEST(Cli, UnknownComponentGetsASuggestion) {
  TempDir cache;
  const auto run = run_kiln({"plugins", "describe", "util.ecoh"}, {{"KILN_CACHE_DIR", cache.path().string()}});
  EXPECT_EQ(run.status.code, 1);
  EXPECT_NE(run.output.find("unknown component 'util.ecoh' (did you mean 'util.echo'?)"), std::string::npos)
      << run.output;
}

TEST(Cli, UnknownCommandsAndOptionsGetSuggestions) {
  auto run = run_kiln({"plugin", "list"});
  EXPECT_EQ(run.status.code, 2);
  EXPECT_NE(run.output.find("unknown command 'plugin' for 'kiln' (did you mean 'plugins'?)"), std::string::npos)
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

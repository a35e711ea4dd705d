// The installable SDK and `kiln plugin new`: install kiln's SDK and CLI to a
// temporary prefix, scaffold a plugin project, build it out of tree against
// that prefix, run its GoogleTest, pack it, and run its pipeline with kiln.
#include <gtest/gtest.h>

#include <test_support.hpp>

namespace kiln {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

host::CapturedRun run(const std::vector<std::string>& argv,
                      const std::vector<std::pair<std::string, std::string>>& env = {}) {
  return host::run_captured({argv, {}, {}, env}, std::chrono::minutes(8));
}

TEST(Scaffold, NewPluginBuildsOutOfTreeAgainstTheInstalledSdk) {
  const TempDir tmp;
  const fs::path prefix = tmp / "prefix", project = tmp / "acme-scaler";
  const std::vector<std::pair<std::string, std::string>> env{{"XDG_DATA_HOME", (tmp / "data").string()},
                                                             {"KILN_CACHE_DIR", (tmp / "cache").string()}};
  for (const char* component : {"sdk", "cli"}) {
    const auto install = run(
        {KILN_TEST_CMAKE, "--install", KILN_TEST_BINARY_DIR, "--prefix", prefix.string(), "--component", component});
    ASSERT_TRUE(install.status.success()) << install.output;
  }
  ASSERT_TRUE(fs::exists(prefix / "lib" / "cmake" / "Kiln" / "KilnConfig.cmake"));
  const std::string kiln = (prefix / "bin" / "kiln").string();

  auto step = run({kiln, "plugin", "new", "acme.scaler", "--kind", "data", "--dir", project.string()}, env);
  ASSERT_TRUE(step.status.success()) << step.output;
  for (const char* file : {"CMakeLists.txt", "src/acme_scaler.cpp", "test/acme_scaler_test.cpp", "pipeline.yaml",
                           "kiln-package.json", "README.md"})
    EXPECT_TRUE(fs::exists(project / file)) << file;
  step = run({kiln, "plugin", "new", "acme.scaler", "--dir", project.string()}, env);
  EXPECT_FALSE(step.status.success()) << "scaffolding over a non-empty dir must fail";

  step = run({KILN_TEST_CMAKE, "-S", project.string(), "-B", (project / "build").string(), "-G", "Ninja",
              "-DCMAKE_PREFIX_PATH=" + prefix.string()});
  ASSERT_TRUE(step.status.success()) << step.output;
  step = run({KILN_TEST_CMAKE, "--build", (project / "build").string(), "-j2"});
  ASSERT_TRUE(step.status.success()) << step.output;
  step = run({KILN_TEST_CTEST, "--test-dir", (project / "build").string(), "--output-on-failure"}, env);
  ASSERT_TRUE(step.status.success()) << step.output;

  auto with_plugins = env;
  with_plugins.emplace_back("KILN_PLUGIN_PATH", (project / "build" / "plugins").string());
  step = run({kiln, "run", (project / "pipeline.yaml").string(), "--workdir", (tmp / "work").string()}, with_plugins);
  ASSERT_TRUE(step.status.success()) << step.output;
  EXPECT_NE(step.output.find("succeeded"), std::string::npos) << step.output;

  ASSERT_TRUE(run({kiln, "keys", "generate"}, env).status.success());
  step = run({kiln, "plugin", "pack", project.string(), "--out", tmp.path().string()}, env);
  ASSERT_TRUE(step.status.success()) << step.output;
  EXPECT_TRUE(fs::exists(tmp / "acme.scaler-0.1.0.kpkg"));
}

}  // namespace
}  // namespace kiln

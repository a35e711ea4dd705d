// The shipped samples through the real CLI: the digits pipeline trains the
// same model, to the same test accuracy, under the process and the container
// executors (the container's environment must not change a single float).
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace fs = std::filesystem;
using kiln::host::Json;
using kiln::test::TempDir;

namespace {

// Runs samples/digits with `executor` in a workspace of its own; the run record.
Json run_digits(const fs::path& workdir, const std::string& executor) {
  const std::string pipeline = std::string(KILN_TEST_SOURCE_DIR) + "/samples/digits/pipeline.yaml";
  const auto run =
      kiln::test::run_kiln({"run", pipeline, "--workdir", workdir.string(), "--executor", executor, "--param",
                            "epochs=15", "--param", "model_repo=" + (workdir / "models").string()},
                           {}, std::chrono::minutes(5));
  EXPECT_TRUE(run.status.success()) << run.output;
  for (const auto& entry : fs::directory_iterator(workdir / "runs"))
    return Json::parse(kiln::test::read_text(entry.path() / "run.json"));
  return Json::object();
}

}  // namespace

TEST(DigitsSample, TheContainerExecutorTrainsTheSameModelAsTheProcessExecutor) {
  const std::string why = kiln::test::cannot_run_containers();
  if (!why.empty()) GTEST_SKIP() << "no containers: " << why;
  const TempDir process_dir, container_dir;
  const Json process = run_digits(process_dir.path(), "process");
  const Json container = run_digits(container_dir.path(), "container");
  ASSERT_EQ(process.value("status", ""), "succeeded");
  ASSERT_EQ(container.value("status", ""), "succeeded");
  EXPECT_EQ(container["steps"]["train"]["attempts"].back()["executor"], "container");
  const double accuracy = process["steps"]["evaluate"]["outputs"]["accuracy"];
  EXPECT_GT(accuracy, 0.9);  // 15 epochs: well trained, not yet the sample's full 0.97+
  EXPECT_EQ(container["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), accuracy);
  // Content-addressed: equal digests mean byte-identical weights.
  const auto digest = [](const Json& run) {
    return fs::path(run["steps"]["train"]["artifacts"]["model"].get<std::string>()).filename();
  };
  EXPECT_EQ(digest(container), digest(process));
  // The publish step ran in a process (it writes outside the store) and published version 1.
  EXPECT_EQ(container["steps"]["publish"]["attempts"].back()["executor"], "process");
  EXPECT_TRUE(fs::exists(container_dir.path() / "models" / "digits" / "1" / "model.json"));
}

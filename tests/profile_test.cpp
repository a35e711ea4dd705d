// The workspace configuration (kiln.yaml): profiles parsed, problems at
// file:line:col, and `kiln run --profile` choosing executor, jobs and workspace.
#include <gtest/gtest.h>
#include <kiln/host/profile.hpp>

#include "store_workspace.hpp"
#include "test_support.hpp"

using kiln::host::Json;
namespace fs = std::filesystem;

namespace {

std::string errors_of(const std::string& text) {
  try {
    kiln::host::parse_workspace_config_text(text, "/cfg/kiln.yaml");
  } catch (const kiln::host::SpecError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Profile, AllFieldsAreRead) {
  const auto config = kiln::host::parse_workspace_config_text(R"(apiVersion: kiln/v1
kind: Workspace
default_profile: dev
profiles:
  dev: {executor: process, jobs: 2, workdir: .kiln-dev}
  prod:
    executor: slurm
    jobs: 64
    workdir: /shared/kiln
    cache: false
    grace: 30s
    slurm: {partition: gpu, account: ml, extra_args: [--exclusive]}
    container: {image: "oci:/images/layout:v1", network: host, mounts: [data]}
)",
                                                              "/cfg/kiln.yaml");
  EXPECT_EQ(config.default_profile, "dev");
  const auto& dev = config.profile("dev");
  EXPECT_EQ(dev.executor, "process");
  EXPECT_EQ(dev.jobs, 2);
  EXPECT_EQ(dev.workdir, "/cfg/.kiln-dev");
  const auto& prod = config.profile("prod");
  EXPECT_EQ(prod.executor, "slurm");
  EXPECT_EQ(prod.cache, false);
  EXPECT_EQ(prod.grace_seconds, 30.0);
  EXPECT_EQ(prod.slurm.partition, "gpu");
  EXPECT_EQ(prod.slurm.extra_args, std::vector<std::string>{"--exclusive"});
  EXPECT_EQ(prod.container_image, "oci:/images/layout:v1");
  EXPECT_EQ(prod.container_network, "host");
  EXPECT_EQ(prod.container_mounts, std::vector<std::string>{"/cfg/data"});
}

TEST(Profile, ProblemsAreReportedAtFileLineAndColumn) {
  const std::string text = errors_of(R"(apiVersion: kiln/v1
kind: Workspace
default_profile: prd
profiles:
  dev: {executor: proces, jobs: 0, cache: maybe}
  prod: {slurm: {partition: gpu, acount: x}, grace: soon, colour: red}
)");
  EXPECT_NE(text.find("/cfg/kiln.yaml:3:18: 'default_profile' names 'prd'"), std::string::npos) << text;
  EXPECT_NE(text.find("/cfg/kiln.yaml:5:19: unknown executor 'proces'"), std::string::npos) << text;
  EXPECT_NE(text.find("/cfg/kiln.yaml:5:33: 'profiles.dev.jobs' must be a whole number"), std::string::npos) << text;
  EXPECT_NE(text.find("/cfg/kiln.yaml:5:43: 'profiles.dev.cache' must be true or false"), std::string::npos) << text;
  EXPECT_NE(text.find("/cfg/kiln.yaml:6:34: unknown key 'acount' in profiles.prod.slurm (did you mean 'account'?)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("/cfg/kiln.yaml:6:53: 'profiles.prod.grace' must be a duration"), std::string::npos) << text;
  EXPECT_NE(text.find("/cfg/kiln.yaml:6:59: unknown key 'colour' in profile 'prod'"), std::string::npos) << text;
  EXPECT_NE(errors_of("kind: Workspace\nprofiles: {}\n").find("apiVersion: kiln/v1"), std::string::npos);
  EXPECT_NE(errors_of("apiVersion: kiln/v1\nkind: Workspace\nprofiles: [a\n").find("YAML syntax error"),
            std::string::npos);
}

TEST(Profile, AnUnknownProfileNamesTheOnesThereAre) {
  const auto config = kiln::host::parse_workspace_config_text(
      "apiVersion: kiln/v1\nkind: Workspace\nprofiles: {dev: {}, ci: {jobs: 2}}\n", "/cfg/kiln.yaml");
  try {
    config.profile("prod");
    FAIL() << "no error";
  } catch (const kiln::host::SpecError& e) {
    EXPECT_NE(std::string(e.what()).find("no profile named 'prod' (profiles here: ci, dev)"), std::string::npos)
        << e.what();
  }
}

// `kiln run --profile` takes executor, jobs and workspace from the profile; a flag wins over it.
TEST(Profile, KilnRunUsesTheChosenProfile) {
  kiln::test::TempDir dir;
  kiln::test::write_text(dir / "p.yaml", "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n"
                                         "steps:\n  - {name: a, component: util.echo}\n");
  kiln::test::write_text(dir / "kiln.yaml", R"(apiVersion: kiln/v1
kind: Workspace
default_profile: dev
profiles:
  dev: {executor: process, jobs: 3, workdir: ws-dev}
  debug: {executor: inprocess, jobs: 1, workdir: ws-debug, cache: false}
)");
  const std::vector<std::pair<std::string, std::string>> env{
      {"KILN_PLUGIN_PATH", kiln::test::util_plugin().parent_path().string()}};
  const auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"run", (dir / "p.yaml").string(), "--json", "--config", (dir / "kiln.yaml").string()});
    const auto r = kiln::test::run_kiln(args, env);
    EXPECT_EQ(r.status.code, 0) << r.output;
    return kiln::test::summary_of(r.output);
  };
  const Json dev = run({});
  EXPECT_EQ(fs::path(dev["run_dir"].get<std::string>()).parent_path().parent_path(), dir / "ws-dev");
  const Json record = Json::parse(kiln::test::read_text(fs::path(dev["run_dir"].get<std::string>()) / "run.json"));
  EXPECT_EQ(record["steps"]["a"]["attempts"][0]["executor"], "process");

  const Json debug = run({"--profile", "debug"});
  const fs::path debug_dir = debug["run_dir"].get<std::string>();
  EXPECT_EQ(debug_dir.parent_path().parent_path(), dir / "ws-debug");
  EXPECT_EQ(Json::parse(kiln::test::read_text(debug_dir / "run.json"))["steps"]["a"]["attempts"][0]["executor"],
            "inprocess");

  const Json flag = run({"--profile", "debug", "--executor", "process"});  // the flag wins
  EXPECT_EQ(Json::parse(kiln::test::read_text(fs::path(flag["run_dir"].get<std::string>()) / "run.json"))["steps"]["a"]
                ["attempts"][0]["executor"],
            "process");

  const auto unknown = kiln::test::run_kiln(
      {"run", (dir / "p.yaml").string(), "--config", (dir / "kiln.yaml").string(), "--profile", "prod"}, env);
  EXPECT_NE(unknown.status.code, 0);
  EXPECT_NE(unknown.output.find("kiln.yaml:1:1: no profile named 'prod' (profiles here: debug, dev)"),
            std::string::npos)
      << unknown.output;
}

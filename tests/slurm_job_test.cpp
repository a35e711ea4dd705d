// The Slurm executor's pure parts (no cluster): what an attempt asks of
// sbatch, the job script, squeue's and sbatch's answers, end states →
// failure classes; and the `slurm:` / `resources.gpus` fields of a spec.
#include <gtest/gtest.h>
#include <kiln/host/spec.hpp>

#include <algorithm>

#include "slurm_job.hpp"
#include "test_support.hpp"

using kiln::host::SlurmOptions;
using kiln::host::StepLaunch;

namespace {

bool has(const std::vector<std::string>& args, const std::string& arg) {
  return std::find(args.begin(), args.end(), arg) != args.end();
}

StepLaunch launch_of(const std::string& step) {
  StepLaunch launch;
  launch.step = step;
  launch.attempt_dir = "/shared/ws/runs/r/steps/train/attempt-1";
  return launch;
}

std::vector<kiln::host::Diagnostic> spec_errors(const std::string& steps) {
  try {
    kiln::host::parse_pipeline_text("apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n" + steps, "p.yaml");
  } catch (const kiln::host::SpecError& e) {
    return e.diagnostics();
  }
  return {};
}

std::string all_of(const std::vector<kiln::host::Diagnostic>& diagnostics) {
  std::string text;
  for (const auto& d : diagnostics) text += d.str() + "\n";
  return text;
}

}  // namespace

TEST(SlurmJob, ResourcesBecomeCpusMemGresAndATimeLimitAboveKilnsOwn) {
  StepLaunch launch = launch_of("train");
  launch.container.cpus = 1.5;
  launch.container.memory_bytes = int64_t{3} << 29;  // 1.5 GiB
  launch.container.gpus = 2;
  launch.timeout_seconds = 600;
  launch.grace_seconds = 10;
  const auto args = kiln::host::sbatch_arguments(launch, {});
  EXPECT_TRUE(has(args, "--parsable"));
  EXPECT_TRUE(has(args, "--cpus-per-task=2"));  // whole cores, rounded up
  EXPECT_TRUE(has(args, "--mem=1536M"));
  EXPECT_TRUE(has(args, "--gres=gpu:2"));
  EXPECT_TRUE(has(args, "--time=12"));  // 600 s + 10 s grace + 60 s margin = 11.2 min, rounded up
  EXPECT_TRUE(has(args, "--output=/shared/ws/runs/r/steps/train/attempt-1/stdout.log"));
  EXPECT_TRUE(has(args, "--error=/shared/ws/runs/r/steps/train/attempt-1/stderr.log"));
  EXPECT_TRUE(has(args, "--job-name=kiln:train"));
}

TEST(SlurmJob, NoResourcesAskForNothingButOneTask) {
  const auto args = kiln::host::sbatch_arguments(launch_of("a b,c"), {});
  EXPECT_TRUE(has(args, "--job-name=kiln:a_b_c"));
  EXPECT_TRUE(has(args, "--ntasks=1"));
  for (const auto& arg : args) {
    EXPECT_NE(arg.rfind("--mem", 0), 0u) << arg;
    EXPECT_NE(arg.rfind("--time", 0), 0u) << arg;
    EXPECT_NE(arg.rfind("--gres", 0), 0u) << arg;
  }
}

TEST(SlurmJob, TheStepsOptionsWinOverTheRunsAndExtraArgumentsAdd) {
  SlurmOptions run;
  run.partition = "batch";
  run.account = "ml";
  run.extra_args = {"--nice=10"};
  StepLaunch launch = launch_of("s");
  launch.slurm.partition = "gpu";
  launch.slurm.qos = "high";
  launch.slurm.extra_args = {"--exclusive"};
  const auto args = kiln::host::sbatch_arguments(launch, run);
  EXPECT_TRUE(has(args, "--partition=gpu"));
  EXPECT_FALSE(has(args, "--partition=batch"));
  EXPECT_TRUE(has(args, "--account=ml"));
  EXPECT_TRUE(has(args, "--qos=high"));
  EXPECT_TRUE(has(args, "--nice=10"));
  EXPECT_TRUE(has(args, "--exclusive"));
  EXPECT_EQ(kiln::host::slurm_options_from_json(kiln::host::slurm_options_json(run)).sbatch_args(), run.sbatch_args());
}

TEST(SlurmJob, TheScriptQuotesEveryPathForTheShell) {
  const std::string script = kiln::host::slurm_job_script("/opt/k'ln/kiln", "/ws/a b/request.json", "/ws/a b/c.jsonl");
  EXPECT_EQ(script.rfind("#!/bin/sh\n", 0), 0u);
  EXPECT_NE(script.find("exec 3>>'/ws/a b/c.jsonl'"), std::string::npos) << script;
  EXPECT_NE(script.find("exec '/opt/k'\\''ln/kiln' step --request '/ws/a b/request.json'"), std::string::npos)
      << script;
}

TEST(SlurmJob, SbatchAndSqueueAnswersAreRead) {
  EXPECT_EQ(kiln::host::parse_sbatch_job_id("42\n"), "42");
  EXPECT_EQ(kiln::host::parse_sbatch_job_id("sbatch: warning: something\n417;cluster\n"), "417");
  EXPECT_FALSE(kiln::host::parse_sbatch_job_id("sbatch: error: Batch job submission failed\n"));
  const auto states = kiln::host::parse_squeue_states("12 RUNNING\n13 OUT_OF_MEMORY\nslurm_load_jobs error: x\n");
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states.at("13"), "OUT_OF_MEMORY");
  EXPECT_FALSE(kiln::host::slurm_state_final("RUNNING"));
  EXPECT_FALSE(kiln::host::slurm_state_final("COMPLETING"));
  EXPECT_TRUE(kiln::host::slurm_state_final("PREEMPTED"));
}

TEST(SlurmJob, EndStatesMapToFailureClasses) {
  StepLaunch launch = launch_of("s");
  launch.container.memory_bytes = 64 << 20;
  const auto end = [&](const std::string& state, bool by_kiln = false) {
    return kiln::host::slurm_end("7", state, by_kiln, launch);
  };
  EXPECT_EQ(end("OUT_OF_MEMORY").failure_class, "out_of_memory");
  EXPECT_NE(end("OUT_OF_MEMORY").message.find("limit 64M"), std::string::npos);
  EXPECT_EQ(end("TIMEOUT").failure_class, "timeout");
  EXPECT_EQ(end("NODE_FAIL").failure_class, "lost");
  EXPECT_EQ(end("PREEMPTED").failure_class, "lost");
  EXPECT_EQ(end("FAILED").failure_class, "crash");
  EXPECT_NE(end("FAILED").message.find("shared"), std::string::npos);
  EXPECT_NE(end("CANCELLED").message.find("outside kiln"), std::string::npos);
  EXPECT_EQ(end("CANCELLED", true).message.find("outside kiln"), std::string::npos);
}

TEST(SlurmJob, ASpecCarriesSlurmOptionsGpusAndTheSlurmExecutor) {
  const auto spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
metadata: {name: t}
steps:
  - name: train
    component: util.echo
    executor: slurm
    resources: {gpus: 1, memory: 2Gi}
    slurm: {partition: gpu, account: ml, qos: high, constraint: a100, extra_args: [--exclusive]}
)",
                                                    "p.yaml");
  const auto& step = spec.steps.at(0);
  EXPECT_EQ(step.executor, "slurm");
  EXPECT_EQ(step.container.gpus, 1);
  EXPECT_EQ(step.slurm.partition, "gpu");
  EXPECT_EQ(step.slurm.constraint, "a100");
  EXPECT_EQ(step.slurm.extra_args, std::vector<std::string>{"--exclusive"});
}

TEST(SlurmJob, BadSlurmOptionsAreReportedAtTheirPlace) {
  const auto errors = spec_errors(R"(steps:
  - name: a
    component: util.echo
    slurm: {partiton: gpu, qos: "two words", extra_args: [--output=x, exclusive]}
)");
  const std::string text = all_of(errors);
  EXPECT_NE(text.find("p.yaml:7:13: unknown key 'partiton' in slurm (did you mean 'partition'?)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("p.yaml:7:33: 'slurm.qos' must be one name without spaces"), std::string::npos) << text;
  EXPECT_NE(text.find("p.yaml:7:59: 'slurm.extra_args' cannot set --output"), std::string::npos) << text;
  EXPECT_NE(text.find("p.yaml:7:71: each of 'slurm.extra_args' must be one sbatch option"), std::string::npos) << text;
  EXPECT_NE(all_of(spec_errors("steps:\n  - {name: a, component: util.echo, executor: slurmm}\n")).find("slurm"),
            std::string::npos);
}

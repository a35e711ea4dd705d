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
    return kiln::host::slurm_end("Slurm job 7", state, by_kiln, launch);
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
  EXPECT_EQ(end("ALLOCATION_GONE").failure_class, "lost");
  EXPECT_NE(end("TIMEOUT").message.find("Slurm job 7"), std::string::npos);
}

// Allocation mode: salloc's and scontrol's answers, srun's arguments, and srun's messages → end states.
TEST(SlurmJob, AllocationAnswersAreRead) {
  EXPECT_EQ(kiln::host::parse_salloc_job_id("salloc: Granted job allocation 61\n"), "61");
  EXPECT_EQ(kiln::host::parse_salloc_job_id("salloc: Pending job allocation 62\nsalloc: job 62 queued\n"), "62");
  EXPECT_FALSE(kiln::host::parse_salloc_job_id("salloc: error: Job submit/allocate failed: Invalid partition\n"));
  const auto held = kiln::host::parse_allocation_tres(
      "JobId=61 JobName=kiln:allocation ReqTRES=cpu=1,mem=100M TRES=cpu=4,mem=3013M,node=1,billing=4 x=y");
  EXPECT_EQ(held.cpus, 4);
  EXPECT_EQ(held.memory_bytes, int64_t{3013} << 20);
  EXPECT_EQ(kiln::host::parse_allocation_tres("AllocTRES=cpu=2,mem=2G").memory_bytes, int64_t{2} << 30);
  EXPECT_FALSE(kiln::host::parse_allocation_tres("no such job").memory_bytes);
}

TEST(SlurmJob, AnAttemptRunsInTheAllocationUnlessItAsksForMoreOrElsewhere) {
  kiln::host::SlurmAllocation allocation{"61", 2, int64_t{1} << 30};
  StepLaunch launch = launch_of("s");
  EXPECT_TRUE(kiln::host::fits_allocation(launch, {}, allocation));
  launch.container.cpus = 2.0;
  launch.container.memory_bytes = int64_t{512} << 20;
  EXPECT_TRUE(kiln::host::fits_allocation(launch, {}, allocation));
  launch.container.cpus = 3.0;
  EXPECT_FALSE(kiln::host::fits_allocation(launch, {}, allocation));
  launch = launch_of("s");
  launch.container.memory_bytes = int64_t{2} << 30;
  EXPECT_FALSE(kiln::host::fits_allocation(launch, {}, allocation));
  launch = launch_of("s");
  launch.container.gpus = 1;
  EXPECT_FALSE(kiln::host::fits_allocation(launch, {}, allocation));
  launch = launch_of("s");
  launch.slurm.partition = "gpu";
  EXPECT_FALSE(kiln::host::fits_allocation(launch, {}, allocation));
  launch = launch_of("s");
  SlurmOptions batch;
  batch.mode = kiln::host::SlurmMode::batch;
  EXPECT_FALSE(kiln::host::fits_allocation(launch, batch, allocation));
  launch.slurm.mode = kiln::host::SlurmMode::allocation;  // the step's mode wins over the run's
  EXPECT_TRUE(kiln::host::fits_allocation(launch, batch, allocation));
}

TEST(SlurmJob, AStepInTheAllocationIsAnImmediateSrun) {
  StepLaunch launch = launch_of("train");
  launch.container.memory_bytes = 64 << 20;
  launch.timeout_seconds = 30;
  const auto args = kiln::host::srun_arguments(launch, "61");
  for (const char* arg : {"--jobid=61", "--exact", "--overlap", "--ntasks=1", "--mem=64M", "--time=2"})
    EXPECT_TRUE(has(args, arg)) << arg;
  EXPECT_FALSE(has(args, "--overcommit"));
  launch.replicas = 2;
  const auto two = kiln::host::srun_arguments(launch, "61");
  EXPECT_TRUE(has(two, "--ntasks=2"));
  EXPECT_TRUE(has(two, "--kill-on-bad-exit=1"));
  EXPECT_TRUE(has(kiln::host::sbatch_arguments(launch, {}), "--ntasks=2"));
  SlurmOptions run;
  run.partition = "cpu";
  run.mode = kiln::host::SlurmMode::allocation;
  const auto salloc = kiln::host::salloc_arguments(run, std::nullopt, 5);
  EXPECT_TRUE(has(salloc, "--partition=cpu"));
  EXPECT_TRUE(std::none_of(salloc.begin(), salloc.end(), [](const auto& a) { return a.find("mode") != std::string::npos; }));
}

// The allocation's --time is the run's timeout (options.timeout) + grace + the
// margin, in whole minutes, as a step's is for its own; without a run timeout
// the partition's default applies, and the run's own --time (extra_args) wins.
TEST(SlurmJob, TheAllocationsTimeLimitIsTheRunsTimeout) {
  using kiln::host::salloc_arguments;
  const auto time_args = [](const std::vector<std::string>& args) {
    std::vector<std::string> times;
    for (const auto& a : args)
      if (a.rfind("--time", 0) == 0 || a.rfind("-t", 0) == 0) times.push_back(a);
    return times;
  };
  SlurmOptions run;
  // 10 min + 5 s grace + 60 s margin = 11.08 min: 12.
  EXPECT_EQ(time_args(salloc_arguments(run, 600.0, 5)), std::vector<std::string>{"--time=12"});
  // 1 h + 30 s + 60 s = 61.5 min: 62.
  EXPECT_EQ(time_args(salloc_arguments(run, 3600.0, 30)), std::vector<std::string>{"--time=62"});
  EXPECT_EQ(time_args(salloc_arguments(run, 1.0, 0)), std::vector<std::string>{"--time=2"});
  EXPECT_TRUE(time_args(salloc_arguments(run, std::nullopt, 5)).empty());
  for (const std::string own : {"--time=1-00:00:00", "-t90"}) {
    run.extra_args = {own};
    EXPECT_EQ(time_args(salloc_arguments(run, 600.0, 5)), std::vector<std::string>{own});
  }
  run.extra_args = {"--time", "45"};
  EXPECT_EQ(time_args(salloc_arguments(run, 600.0, 5)), std::vector<std::string>{"--time"});
  EXPECT_FALSE(kiln::host::sets_time_limit({"--tmp=10G", "--exclusive"}));
}

TEST(SlurmJob, SrunsMessagesTellHowAStepEnded) {
  using kiln::host::srun_end_state;
  EXPECT_EQ(srun_end_state("srun: error: localhost: task 0: Out Of Memory\n"), "OUT_OF_MEMORY");
  EXPECT_EQ(srun_end_state("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=1.1.\n"), "OUT_OF_MEMORY");
  EXPECT_EQ(srun_end_state("slurmstepd: error: *** STEP 1.5 ON n1 CANCELLED AT 2026-12-06 DUE TO TIME LIMIT ***"),
            "TIMEOUT");
  EXPECT_EQ(srun_end_state("slurmstepd: error: *** STEP 1.5 ON n1 CANCELLED AT 2026-12-06T00:04:50 ***\n"),
            "CANCELLED");
  EXPECT_EQ(srun_end_state("srun: error: Unable to create step for job 9: Job/step already completing or completed"),
            "ALLOCATION_GONE");
  EXPECT_EQ(srun_end_state("srun: error: localhost: task 0: Killed\n"), "CANCELLED");  // scancel STEP
  EXPECT_EQ(srun_end_state("srun: error: localhost: task 1: Exited with exit code 86\n"), "FAILED");
  EXPECT_EQ(srun_end_state(""), "FAILED");
}

TEST(SlurmJob, SrunsOwnMessagesAreFoundAmongAJobsStderr) {
  EXPECT_EQ(kiln::host::srun_messages_in("kiln: rank 0 of 2 on node n1\nepoch 1\nsrun: error: n2: task 1: Exited with "
                                         "exit code 86\nTraceback: srun: not at the start\nsrun: Terminating StepId=4.0\n"),
            "srun: error: n2: task 1: Exited with exit code 86\nsrun: Terminating StepId=4.0");
  EXPECT_EQ(kiln::host::srun_messages_in("no srun here\n"), "");
  EXPECT_EQ(kiln::host::srun_messages_of("/nonexistent/stderr.log"), "");
}

TEST(SlurmJob, EachTaskOfADataParallelStepTakesItsRankFromSlurm) {
  const std::string script =
      kiln::host::slurm_task_script("/opt/kiln", "/ws/a b/attempt-1", std::string("/ws/a b/attempt-1/slurm-step"), 2, 4242);
  EXPECT_NE(script.find("rank=\"${SLURM_PROCID:-0}\""), std::string::npos) << script;
  EXPECT_NE(script.find("dir='/ws/a b/attempt-1'"), std::string::npos) << script;
  EXPECT_NE(script.find("dir=\"$dir/rank-$rank\""), std::string::npos) << script;
  EXPECT_NE(script.find("KILN_WORLD_SIZE=\"${SLURM_NTASKS:-2}\""), std::string::npos) << script;
  EXPECT_NE(script.find("KILN_RENDEZVOUS=\"${addr:-${node:-127.0.0.1}}:4242\""), std::string::npos) << script;
  EXPECT_NE(script.find("scontrol show node -o \"$node\""), std::string::npos) << script;  // its NodeAddr
  EXPECT_NE(script.find("kiln: rank $rank of $KILN_WORLD_SIZE on node ${SLURMD_NODENAME:-$(hostname)}"),
            std::string::npos) << script;
  EXPECT_NE(script.find("> '/ws/a b/attempt-1/slurm-step'"), std::string::npos) << script;
  const std::string batch = kiln::host::slurm_tasks_batch_script("/ws/a b/attempt-1/job.sh", 2);
  EXPECT_NE(batch.find("srun --kill-on-bad-exit=1 --ntasks=2 /bin/sh '/ws/a b/attempt-1/job.sh'"), std::string::npos);
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
  EXPECT_NE(all_of(spec_errors("steps:\n  - {name: a, component: util.echo, slurm: {mode: queue}}\n"))
                .find("p.yaml:5:51: 'slurm.mode' must be allocation (srun in the run's allocation) or batch"),
            std::string::npos)
      << all_of(spec_errors("steps:\n  - {name: a, component: util.echo, slurm: {mode: queue}}\n"));
}

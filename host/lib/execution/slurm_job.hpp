// The pure parts of the Slurm executor, testable without a cluster: the
// sbatch arguments and job script of an attempt, squeue's answer, and what a
// job's end state means for the attempt.
#pragma once

#include <kiln/host/executor.hpp>

#include "slurm_client.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// The runner channel of a Slurm attempt: `kiln step` appends its lines here
// (fd 3 of the job script) and the watcher follows the file.
inline constexpr const char* kSlurmChannelFile = "channel.jsonl";

// Seconds added to a step's timeout and grace for the job's --time: kiln's own
// timeout acts first; Slurm's limit only catches a job kiln lost track of.
inline constexpr double kSlurmTimeMarginSeconds = 60.0;

// The job's --time in whole minutes (at least 1) for a step timeout, or
// nullopt without one (the partition's default applies).
std::optional<long> slurm_time_minutes(std::optional<double> timeout_seconds, double grace_seconds);

// Every sbatch argument of an attempt but the script: --parsable, the job
// name, the log files, resources (cpus, mem, gres, time) and the options.
std::vector<std::string> sbatch_arguments(const StepLaunch& launch, const SlurmOptions& run_options);

// The job script: fd 3 appended to the channel file, then `kiln step`. With
// `step_file`, it first writes "JOBID.STEPID" there (an srun step, which kiln
// signals through scancel).
std::string slurm_job_script(const std::filesystem::path& kiln_exe, const std::filesystem::path& request,
                             const std::filesystem::path& channel,
                             const std::optional<std::filesystem::path>& step_file = std::nullopt);

// The script of each task of a data-parallel attempt (`replicas` tasks):
// rank SLURM_PROCID, world SLURM_NTASKS, the rendezvous on the step's first
// node (its NodeAddr, which on a multi-node step is another machine's) at `port`; rank 0 is the attempt (attempt_dir), rank R > 0 writes its
// logs and channel in attempt_dir/rank-R (replica_dir) and reads its request there.
// Each task first writes "kiln: rank R of N on node NODE, rendezvous HOST:PORT" to its stderr.log.
std::string slurm_task_script(const std::filesystem::path& kiln_exe, const std::filesystem::path& attempt_dir,
                              const std::optional<std::filesystem::path>& step_file, int replicas, int port);

// A data-parallel batch job's script: srun its tasks, ending all when one fails.
std::string slurm_tasks_batch_script(const std::filesystem::path& task_script, int replicas);

// Whether an attempt runs as an srun step in the run's allocation: the mode
// is allocation, it asks for no GPU, places itself nowhere else (step-level
// partition, account...) and fits what the allocation holds.
bool fits_allocation(const StepLaunch& launch, const SlurmOptions& run_options, const SlurmAllocation& allocation);

// Every srun argument of an attempt in `allocation` but the command:
// --jobid, --exact --overlap (immediate, sharing the allocation), the step's
// name, log files, cpus, mem and a time limit as for sbatch.
std::vector<std::string> srun_arguments(const StepLaunch& launch, const std::string& allocation);

// Whether `args` (sbatch/salloc arguments) set a time limit: --time[=T] or -t[T].
bool sets_time_limit(const std::vector<std::string>& args);

// The salloc arguments of a run's allocation: one task, the run's options,
// and a --time for the run's own timeout (`options.timeout`) as a step's is
// for its timeout (+ grace + kSlurmTimeMarginSeconds, whole minutes). None
// without a run timeout (the partition's default applies) or when the run's
// extra_args set one themselves (theirs applies).
std::vector<std::string> salloc_arguments(const SlurmOptions& run_options, std::optional<double> run_timeout_seconds,
                                          double grace_seconds);

// The job id in salloc's "Granted job allocation N" (or "Pending job allocation N"), nullopt without one.
std::optional<std::string> parse_salloc_job_id(const std::string& output);

// cpus and memory per node from `scontrol show job -o` (its TRES= or AllocTRES= field).
SlurmAllocation parse_allocation_tres(const std::string& output);

// What srun's own messages (not the step's output) say about how a step that
// reported no result ended, as a job state for slurm_end: OUT_OF_MEMORY,
// TIMEOUT, PREEMPTED, NODE_FAIL, CANCELLED, ALLOCATION_GONE (the step could
// not start: the allocation ended) or FAILED.
std::string srun_end_state(const std::string& srun_messages);

// The lines of a log that are srun's own messages ("srun: error: n2: task 1:
// Exited with exit code 86"), joined by newlines; "" without any. _of reads
// the last 64 KiB of a file (a data-parallel batch job's stderr.log).
std::string srun_messages_in(const std::string& log);
std::string srun_messages_of(const std::filesystem::path& log);

// Output for an error message: trailing blanks gone, at most 2,000 characters.
std::string trimmed_output(std::string text);

// The job id sbatch --parsable printed ("123" or "123;cluster", maybe after
// warnings), nullopt when there is none.
std::optional<std::string> parse_sbatch_job_id(const std::string& output);

// squeue -h -o "%i %T" lines → job id → state ("RUNNING", "OUT_OF_MEMORY").
std::map<std::string, std::string> parse_squeue_states(const std::string& output);

// Whether a state is one a job never leaves.
bool slurm_state_final(const std::string& state);

// What a job (or srun step) that ended in `state` without a result from `kiln
// step` means: the failure class (timeout, out_of_memory, lost, crash) and a
// message about `what` ("Slurm job 7", "Slurm step 7.2").
struct SlurmEnd {
  std::string failure_class;
  std::string message;
};
SlurmEnd slurm_end(const std::string& what, const std::string& state, bool cancelled_by_kiln,
                   const StepLaunch& launch);

}  // namespace kiln::host

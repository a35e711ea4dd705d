// The pure parts of the Slurm executor, testable without a cluster: the
// sbatch arguments and job script of an attempt, squeue's answer, and what a
// job's end state means for the attempt.
#pragma once

#include <kiln/host/executor.hpp>

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

// The job script: fd 3 appended to the channel file, then `kiln step`.
std::string slurm_job_script(const std::filesystem::path& kiln_exe, const std::filesystem::path& request,
                             const std::filesystem::path& channel);

// The job id sbatch --parsable printed ("123" or "123;cluster", maybe after
// warnings), nullopt when there is none.
std::optional<std::string> parse_sbatch_job_id(const std::string& output);

// squeue -h -o "%i %T" lines → job id → state ("RUNNING", "OUT_OF_MEMORY").
std::map<std::string, std::string> parse_squeue_states(const std::string& output);

// Whether a state is one a job never leaves.
bool slurm_state_final(const std::string& state);

// What a job that ended in `state` without a result from `kiln step` means:
// the failure class (timeout, out_of_memory, lost, crash) and a message.
struct SlurmEnd {
  std::string failure_class;
  std::string message;
};
SlurmEnd slurm_end(const std::string& job_id, const std::string& state, bool cancelled_by_kiln,
                   const StepLaunch& launch);

}  // namespace kiln::host

// The pure parts of the Slurm executor: see slurm_job.hpp.
#include "slurm_job.hpp"

#include <cmath>
#include <set>
#include <sstream>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

// 'text' for /bin/sh, whatever it holds.
std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (const char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string megabytes(int64_t bytes) {
  return std::to_string(std::max<int64_t>(1, (bytes + (1 << 20) - 1) >> 20)) + "M";
}

// Slurm's job names: short, no spaces; the step's display name is enough to find it in squeue.
std::string job_name(const std::string& step) {
  std::string name = "kiln:";
  for (const char c : step.substr(0, 60)) name += (static_cast<unsigned char>(c) <= ' ' || c == ',') ? '_' : c;
  return name;
}

}  // namespace

std::optional<long> slurm_time_minutes(std::optional<double> timeout_seconds, double grace_seconds) {
  if (!timeout_seconds) return std::nullopt;
  const double total = *timeout_seconds + grace_seconds + kSlurmTimeMarginSeconds;
  return std::max(1L, static_cast<long>(std::ceil(total / 60.0)));
}

std::vector<std::string> sbatch_arguments(const StepLaunch& launch, const SlurmOptions& run_options) {
  std::vector<std::string> args{"--parsable",
                                "--job-name=" + job_name(launch.step),
                                "--chdir=" + launch.attempt_dir.string(),
                                "--output=" + (launch.attempt_dir / "stdout.log").string(),
                                "--error=" + (launch.attempt_dir / "stderr.log").string(),
                                "--ntasks=1"};
  const auto& resources = launch.container;
  if (resources.cpus) args.push_back("--cpus-per-task=" + std::to_string(std::max(1L, std::lround(std::ceil(*resources.cpus)))));
  if (resources.memory_bytes) args.push_back("--mem=" + megabytes(*resources.memory_bytes));
  if (resources.gpus && *resources.gpus > 0) args.push_back("--gres=gpu:" + std::to_string(*resources.gpus));
  if (const auto minutes = slurm_time_minutes(launch.timeout_seconds, launch.grace_seconds))
    args.push_back("--time=" + std::to_string(*minutes));
  for (auto& arg : launch.slurm.over(run_options).sbatch_args()) args.push_back(std::move(arg));
  return args;
}

std::string slurm_job_script(const fs::path& kiln_exe, const fs::path& request, const fs::path& channel) {
  std::ostringstream script;
  script << "#!/bin/sh\n"
         << "# One attempt of a kiln step (written by kiln's Slurm executor).\n"
         << "exec 3>>" << shell_quote(channel.string()) << " || {\n"
         << "  echo \"kiln: cannot write " << channel.string()
         << " on $(hostname): the workspace must be on a filesystem this node shares (docs/executors.md)\" >&2\n"
         << "  exit 97\n}\n"
         << "exec " << shell_quote(kiln_exe.string()) << " step --request " << shell_quote(request.string()) << "\n";
  return script.str();
}

std::optional<std::string> parse_sbatch_job_id(const std::string& output) {
  std::istringstream lines(output);
  std::string line, id;
  while (std::getline(lines, line)) {
    const std::string first = line.substr(0, line.find(';'));
    if (!first.empty() && first.size() <= 20 && first.find_first_not_of("0123456789") == std::string::npos) id = first;
  }
  if (id.empty()) return std::nullopt;
  return id;
}

std::map<std::string, std::string> parse_squeue_states(const std::string& output) {
  std::map<std::string, std::string> states;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string id, state;
    if (!(fields >> id >> state)) continue;
    if (id.find_first_not_of("0123456789") != std::string::npos) continue;  // an error line
    states[id] = state;
  }
  return states;
}

bool slurm_state_final(const std::string& state) {
  static const std::set<std::string> kFinal{"COMPLETED", "FAILED",    "CANCELLED",   "TIMEOUT",  "OUT_OF_MEMORY",
                                            "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",   "DEADLINE", "SPECIAL_EXIT",
                                            "REVOKED"};
  return kFinal.count(state) > 0;
}

SlurmEnd slurm_end(const std::string& job_id, const std::string& state, bool cancelled_by_kiln,
                   const StepLaunch& launch) {
  const std::string job = "Slurm job " + job_id;
  if (state == "OUT_OF_MEMORY") {
    const std::string limit =
        launch.container.memory_bytes ? " (limit " + megabytes(*launch.container.memory_bytes) + ")" : "";
    return {"out_of_memory", job + " ran out of memory" + limit};
  }
  if (state == "TIMEOUT" || state == "DEADLINE") return {"timeout", job + " reached its Slurm time limit (" + state + ")"};
  if (state == "NODE_FAIL") return {"lost", job + " was lost: its node failed (NODE_FAIL)"};
  if (state == "PREEMPTED") return {"lost", job + " was preempted"};
  if (state == "BOOT_FAIL") return {"lost", job + " was lost: its node failed to boot (BOOT_FAIL)"};
  if (state == "CANCELLED")
    return {"crash", cancelled_by_kiln ? job + " was cancelled"
                                        : job + " was cancelled outside kiln (scancel or an administrator)"};
  if (state == "GONE")
    return {"crash", job + " vanished from the Slurm controller before kiln step reported a result"};
  return {"crash", job + " ended " + state + " before kiln step reported a result (see " +
                       (launch.attempt_dir / "stderr.log").string() +
                       "; the workspace must be on a filesystem the compute nodes share)"};
}

}  // namespace kiln::host

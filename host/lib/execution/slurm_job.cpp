// The pure parts of the Slurm executor: see slurm_job.hpp.
#include "slurm_job.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
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
                                "--ntasks=" + std::to_string(std::max(1, launch.replicas))};
  const auto& resources = launch.container;
  if (resources.cpus) args.push_back("--cpus-per-task=" + std::to_string(std::max(1L, std::lround(std::ceil(*resources.cpus)))));
  if (resources.memory_bytes) args.push_back("--mem=" + megabytes(*resources.memory_bytes));
  if (resources.gpus && *resources.gpus > 0) args.push_back("--gres=gpu:" + std::to_string(*resources.gpus));
  if (const auto minutes = slurm_time_minutes(launch.timeout_seconds, launch.grace_seconds))
    args.push_back("--time=" + std::to_string(*minutes));
  for (auto& arg : launch.slurm.over(run_options).sbatch_args()) args.push_back(std::move(arg));
  return args;
}

std::string slurm_job_script(const fs::path& kiln_exe, const fs::path& request, const fs::path& channel,
                             const std::optional<fs::path>& step_file) {
  std::ostringstream script;
  script << "#!/bin/sh\n"
         << "# One attempt of a kiln step (written by kiln's Slurm executor).\n";
  if (step_file) script << "echo \"$SLURM_JOB_ID.$SLURM_STEP_ID\" > " << shell_quote(step_file->string()) << "\n";
  script
         << "exec 3>>" << shell_quote(channel.string()) << " || {\n"
         << "  echo \"kiln: cannot write " << channel.string()
         << " on $(hostname): the workspace must be on a filesystem this node shares (docs/executors.md)\" >&2\n"
         << "  exit 97\n}\n"
         << "exec " << shell_quote(kiln_exe.string()) << " step --request " << shell_quote(request.string()) << "\n";
  return script.str();
}

std::string slurm_task_script(const fs::path& kiln_exe, const fs::path& attempt_dir,
                              const std::optional<fs::path>& step_file, int replicas, int port) {
  std::ostringstream script;
  script << "#!/bin/sh\n"
         << "# One task of a data-parallel kiln attempt (written by kiln's Slurm executor).\n"
         << "rank=\"${SLURM_PROCID:-0}\"\n"
         << "dir=" << shell_quote(attempt_dir.string()) << "\n"
         << "if [ \"$rank\" != 0 ]; then\n"
         << "  dir=\"$dir/rank-$rank\"\n"
         << "  exec >\"$dir/stdout.log\" 2>\"$dir/stderr.log\"\n";
  if (step_file)
    script << "else\n  echo \"$SLURM_JOB_ID.$SLURM_STEP_ID\" > " << shell_quote(step_file->string()) << "\n";
  script << "fi\n"
         << "exec 3>>\"$dir/" << kSlurmChannelFile << "\" || {\n"
         << "  echo \"kiln: cannot write $dir on $(hostname): the workspace must be on a filesystem this node shares "
            "(docs/executors.md)\" >&2\n"
         << "  exit 97\n}\n"
         << "node=$(scontrol show hostnames \"${SLURM_STEP_NODELIST:-$SLURM_JOB_NODELIST}\" 2>/dev/null | head -n 1)\n"
         // A node's name need not resolve (several slurmd on one host, or a NodeAddr apart from the name):
         // the rendezvous is the address slurmctld reaches that node at.
         << "addr=$(scontrol show node -o \"$node\" 2>/dev/null | sed -n 's/.* NodeAddr=\\([^ ]*\\).*/\\1/p' | head -n 1)\n"
         << "export KILN_RANK=\"$rank\" KILN_WORLD_SIZE=\"${SLURM_NTASKS:-" << replicas
         << "}\" KILN_RENDEZVOUS=\"${addr:-${node:-127.0.0.1}}:" << port << "\"\n"
         << "echo \"kiln: rank $rank of $KILN_WORLD_SIZE on node ${SLURMD_NODENAME:-$(hostname)}, rendezvous "
            "$KILN_RENDEZVOUS\" >&2\n"
         << "exec " << shell_quote(kiln_exe.string()) << " step --request \"$dir/request.json\"\n";
  return script.str();
}

std::string slurm_tasks_batch_script(const fs::path& task_script, int replicas) {
  return "#!/bin/sh\n# A data-parallel kiln attempt: its tasks (written by kiln's Slurm executor).\n"
         "exec srun --kill-on-bad-exit=1 --ntasks=" +
         std::to_string(replicas) + " /bin/sh " + shell_quote(task_script.string()) + "\n";
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

SlurmEnd slurm_end(const std::string& what, const std::string& state, bool cancelled_by_kiln,
                   const StepLaunch& launch) {
  const std::string& job = what;
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
  if (state == "ALLOCATION_GONE")
    return {"lost", job + " could not start: the run's allocation has ended (cancelled, or its time limit); kiln "
                          "takes a new one"};
  if (state == "GONE")
    return {"crash", job + " vanished from the Slurm controller before kiln step reported a result"};
  return {"crash", job + " ended " + state + " before kiln step reported a result (see " +
                       (launch.attempt_dir / "stderr.log").string() +
                       "; the workspace must be on a filesystem the compute nodes share)"};
}

}  // namespace kiln::host

namespace kiln::host {
namespace {

// "3013M", "2G", "1T" → bytes; nullopt when unreadable.
std::optional<int64_t> slurm_size(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const std::string unit = text.substr(used);
  const int shift = unit == "K" ? 10 : unit == "G" ? 30 : unit == "T" ? 40 : unit == "M" || unit.empty() ? 20 : -1;
  if (shift < 0 || value < 0) return std::nullopt;
  return static_cast<int64_t>(value * static_cast<double>(int64_t{1} << shift));
}

}  // namespace

bool fits_allocation(const StepLaunch& launch, const SlurmOptions& run_options, const SlurmAllocation& allocation) {
  if (launch.slurm.over(run_options).mode == SlurmMode::batch || launch.slurm.places_job()) return false;
  const auto& resources = launch.container;
  if (resources.gpus && *resources.gpus > 0) return false;
  if (resources.cpus && std::lround(std::ceil(*resources.cpus)) > allocation.cpus) return false;
  return !(resources.memory_bytes && allocation.memory_bytes && *resources.memory_bytes > *allocation.memory_bytes);
}

std::vector<std::string> srun_arguments(const StepLaunch& launch, const std::string& allocation) {
  std::vector<std::string> args{"--jobid=" + allocation,
                                "--exact",
                                "--overlap",
                                "--quiet",
                                "--job-name=" + job_name(launch.step),
                                "--chdir=" + launch.attempt_dir.string(),
                                "--output=" + (launch.attempt_dir / "stdout.log").string(),
                                "--error=" + (launch.attempt_dir / "stderr.log").string(),
                                "--ntasks=" + std::to_string(std::max(1, launch.replicas))};
  // A data-parallel step's tasks may outnumber the allocation's cpus: they share them.
  if (launch.replicas > 1) args.insert(args.end(), {"--overcommit", "--kill-on-bad-exit=1"});
  const auto& resources = launch.container;
  if (resources.cpus) args.push_back("--cpus-per-task=" + std::to_string(std::max(1L, std::lround(std::ceil(*resources.cpus)))));
  if (resources.memory_bytes) args.push_back("--mem=" + megabytes(*resources.memory_bytes));
  if (const auto minutes = slurm_time_minutes(launch.timeout_seconds, launch.grace_seconds))
    args.push_back("--time=" + std::to_string(*minutes));
  return args;
}

bool sets_time_limit(const std::vector<std::string>& args) {
  return std::any_of(args.begin(), args.end(), [](const std::string& arg) {
    return arg == "--time" || arg.rfind("--time=", 0) == 0 || arg.rfind("-t", 0) == 0;
  });
}

std::vector<std::string> salloc_arguments(const SlurmOptions& run_options, std::optional<double> run_timeout_seconds,
                                          double grace_seconds) {
  std::vector<std::string> args{"--job-name=kiln:allocation", "--ntasks=1"};
  const auto minutes = slurm_time_minutes(run_timeout_seconds, grace_seconds);
  if (minutes && !sets_time_limit(run_options.extra_args)) args.push_back("--time=" + std::to_string(*minutes));
  for (auto& arg : run_options.sbatch_args()) args.push_back(std::move(arg));
  return args;
}

std::optional<std::string> parse_salloc_job_id(const std::string& output) {
  std::optional<std::string> id;
  for (const char* marker : {"Pending job allocation ", "Granted job allocation "}) {
    const size_t at = output.rfind(marker);
    if (at == std::string::npos) continue;
    const size_t from = at + std::string(marker).size();
    const size_t to = output.find_first_not_of("0123456789", from);
    const std::string digits = output.substr(from, to == std::string::npos ? std::string::npos : to - from);
    if (!digits.empty() && digits.size() <= 20) id = digits;
  }
  return id;
}

SlurmAllocation parse_allocation_tres(const std::string& output) {
  SlurmAllocation allocation;
  std::istringstream fields(output);
  std::string field;
  while (fields >> field) {
    if (field.rfind("TRES=", 0) != 0 && field.rfind("AllocTRES=", 0) != 0) continue;
    std::istringstream items(field.substr(field.find('=') + 1));
    std::string item;
    while (std::getline(items, item, ',')) {
      const size_t eq = item.find('=');
      if (eq == std::string::npos) continue;
      const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
      if (key == "cpu") allocation.cpus = std::max(1L, std::atol(value.c_str()));
      if (key == "mem") allocation.memory_bytes = slurm_size(value);
    }
  }
  return allocation;
}

std::string srun_end_state(const std::string& srun_messages) {
  const auto says = [&](const char* text) { return srun_messages.find(text) != std::string::npos; };
  if (says("Out Of Memory") || says("oom-kill")) return "OUT_OF_MEMORY";
  if (says("DUE TO TIME LIMIT")) return "TIMEOUT";
  if (says("DUE TO PREEMPTION")) return "PREEMPTED";
  if (says("DUE TO NODE FAIL") || says("NODE_FAIL") || says("Node failure")) return "NODE_FAIL";
  if (says("Unable to create step") || says("Invalid job id") || says("has been revoked") ||
      says("Job has already finished") || says("already completing"))
    return "ALLOCATION_GONE";
  if (says("Exited with exit code")) return "FAILED";  // a task failed; srun then cancels the others
  // scancel of a step SIGKILLs its tasks ("task 0: Killed"); the out-of-memory kill is told apart above.
  if (says("CANCELLED") || says(": Killed")) return "CANCELLED";
  return "FAILED";
}

std::string srun_messages_in(const std::string& log) {
  std::string messages;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind("srun: ", 0) == 0) messages += (messages.empty() ? "" : "\n") + line;
  return messages;
}

std::string srun_messages_of(const fs::path& log) {
  constexpr std::streamoff kTail = 64 * 1024;  // the job's stderr is the step's to fill
  std::ifstream in(log, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  in.seekg(std::max<std::streamoff>(0, in.tellg() - kTail));
  return srun_messages_in(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
}

std::string trimmed_output(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.size() > 2000 ? text.substr(0, 2000) + "..." : text;
}

}  // namespace kiln::host

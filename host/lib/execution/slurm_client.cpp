// The Slurm command-line tools: see slurm_client.hpp.
#include "slurm_client.hpp"

#include <stdexcept>

#include "slurm_job.hpp"

namespace kiln::host {

SlurmClient::SlurmClient() {
  for (const char* name : {"sbatch", "salloc", "squeue", "scancel", "scontrol", "srun"}) {
    const auto path = find_in_path(name);
    if (!path)
      throw std::runtime_error(std::string("the Slurm executor needs ") + name +
                               " in PATH (Debian package slurm-client) and a reachable Slurm cluster; see "
                               "docs/executors.md");
    binaries_[name] = *path;
  }
}

CapturedRun SlurmClient::run(const std::string& tool, std::vector<std::string> args,
                             std::chrono::milliseconds timeout) const {
  args.insert(args.begin(), binaries_.at(tool).string());
  return run_with_result_channel(args, timeout);
}

SlurmAllocation SlurmClient::allocate(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const {
  std::vector<std::string> salloc{"--no-shell"};
  salloc.insert(salloc.end(), args.begin(), args.end());
  const CapturedRun granted = run("salloc", salloc, timeout);
  const auto id = parse_salloc_job_id(granted.output);
  if (!granted.status.success() || !id) {
    if (id) cancel(*id);  // still pending when salloc gave up
    throw std::runtime_error("salloc " + granted.status.describe() + ": " + trimmed_output(granted.output));
  }
  SlurmAllocation allocation = parse_allocation_tres(run("scontrol", {"show", "job", "-o", *id}).output);
  allocation.id = *id;
  return allocation;
}

void SlurmClient::cancel(const std::string& job, const std::vector<std::string>& options) const {
  std::vector<std::string> args = options;
  args.push_back(job);
  run("scancel", args);
}

}  // namespace kiln::host

// The Slurm command-line tools kiln calls (sbatch, salloc, srun, squeue,
// scancel, scontrol), found once in PATH: every Slurm CLI call of the Slurm
// executor goes through here.
#pragma once

#include <kiln/host/subprocess.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// What an allocation holds on each of its nodes (scontrol's TRES).
struct SlurmAllocation {
  std::string id;
  long cpus = 1;
  std::optional<int64_t> memory_bytes;  // nullopt: no memory accounted
};

class SlurmClient {
 public:
  // Throws with a clear message when a tool is missing.
  SlurmClient();

  // Runs `tool args...` (bounded by `timeout`), stdout and stderr together in the result's output.
  CapturedRun run(const std::string& tool, std::vector<std::string> args,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

  // The absolute path of `tool` (to spawn srun as a child).
  const std::filesystem::path& binary(const std::string& tool) const { return binaries_.at(tool); }

  // `salloc --no-shell ARGS`: an allocation kept until release(). Throws when
  // none is granted within `timeout` (a pending request is cancelled).
  SlurmAllocation allocate(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const;

  // scancel, output ignored (the job may be gone already).
  void cancel(const std::string& job, const std::vector<std::string>& options = {}) const;

 private:
  std::map<std::string, std::filesystem::path> binaries_;
};

}  // namespace kiln::host

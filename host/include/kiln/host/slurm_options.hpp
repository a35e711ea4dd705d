// What a step or a run asks of Slurm beyond its resources (the Slurm
// executor's options; other executors ignore them). See docs/executors.md.
#pragma once

#include <kiln/host/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// How the Slurm executor launches attempts (docs/executors.md): allocation,
// the default, runs each attempt as `srun` in one allocation the run holds
// (immediate); batch submits each attempt as its own sbatch job (queued until
// slurmctld's next scheduling pass). Steps with GPUs or their own partition,
// account, qos, constraint or extra arguments are batch jobs either way.
enum class SlurmMode { allocation, batch };
const char* slurm_mode_name(SlurmMode mode);

struct SlurmOptions {
  std::optional<std::string> partition, account, qos, constraint;
  std::optional<SlurmMode> mode;
  // More sbatch arguments, verbatim ("--exclusive", "--nice=10"); never one
  // kiln sets itself (see reserved_sbatch_option).
  std::vector<std::string> extra_args;

  // These options over `base`: a field set here wins, extra arguments add to base's.
  SlurmOptions over(const SlurmOptions& base) const;
  // The sbatch arguments they stand for (mode is none of them).
  std::vector<std::string> sbatch_args() const;
  // Whether they place a job apart from the run's allocation: a partition,
  // account, qos, constraint or extra arguments of their own.
  bool places_job() const { return partition || account || qos || constraint || !extra_args.empty(); }
};

// As recorded with a run (for resume): {partition, account, qos, constraint, mode, extra_args}.
Json slurm_options_json(const SlurmOptions& options);
// The reverse; fields of the wrong type are left out.
SlurmOptions slurm_options_from_json(const Json& json);

// The sbatch option in `arg` ("--output=x" → "--output") when kiln sets it
// itself (output files, job name, script, dependencies...), else "".
std::string reserved_sbatch_option(const std::string& arg);

}  // namespace kiln::host

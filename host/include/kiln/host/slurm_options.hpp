// What a step or a run asks of Slurm beyond its resources (the Slurm
// executor's options; other executors ignore them). See docs/executors.md.
#pragma once

#include <kiln/host/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

struct SlurmOptions {
  std::optional<std::string> partition, account, qos, constraint;
  // More sbatch arguments, verbatim ("--exclusive", "--nice=10"); never one
  // kiln sets itself (see reserved_sbatch_option).
  std::vector<std::string> extra_args;

  // These options over `base`: a field set here wins, extra arguments add to base's.
  SlurmOptions over(const SlurmOptions& base) const;
  // The sbatch arguments they stand for.
  std::vector<std::string> sbatch_args() const;
};

// As recorded with a run (for resume): {partition, account, qos, constraint, extra_args}.
Json slurm_options_json(const SlurmOptions& options);
// The reverse; fields of the wrong type are left out.
SlurmOptions slurm_options_from_json(const Json& json);

// The sbatch option in `arg` ("--output=x" → "--output") when kiln sets it
// itself (output files, job name, script, dependencies...), else "".
std::string reserved_sbatch_option(const std::string& arg);

}  // namespace kiln::host

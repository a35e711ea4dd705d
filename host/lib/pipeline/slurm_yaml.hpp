// Reads a `slurm:` mapping (a step's, a profile's) into SlurmOptions; shared
// by the spec and profile parsers. Problems go to `diagnostics` at file:line:col.
#pragma once

#include <yaml-cpp/yaml.h>
#include <kiln/host/slurm_options.hpp>
#include <kiln/host/spec.hpp>

#include <string>
#include <vector>

namespace kiln::host {

void read_slurm_yaml(const YAML::Node& node, const std::string& file, const std::string& where, SlurmOptions& options,
                     std::vector<Diagnostic>& diagnostics);

}  // namespace kiln::host

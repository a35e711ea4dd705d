// The workspace configuration (kiln.yaml, `apiVersion: kiln/v1`, `kind:
// Workspace`): named profiles that say where and how a pipeline runs —
// executor, jobs, workspace location, Slurm options, container defaults,
// cache policy — so that one pipeline moves between a laptop, CI and a
// cluster by `kiln run --profile NAME`. docs/environments.md is the reference.
#pragma once

#include <kiln/host/slurm_options.hpp>
#include <kiln/host/spec.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// Every field is optional: unset ones leave kiln's defaults (and a command
// line flag always wins over the profile).
struct Profile {
  std::string name;
  SourcePos pos;
  std::optional<std::string> executor;  // inprocess, process, container or slurm
  std::optional<int> jobs;
  std::optional<std::string> workdir;   // absolute: relative ones are resolved against the file's directory
  std::optional<bool> cache;            // false: as --no-cache
  std::optional<double> grace_seconds;
  SlurmOptions slurm;                   // the run's Slurm options, under each step's own
  // Container defaults: for steps that leave image or network at their default
  // (host, none), and more read-only mounts for every container step.
  std::optional<std::string> container_image, container_network;
  std::vector<std::string> container_mounts;
};

struct WorkspaceConfig {
  std::string file;
  std::map<std::string, Profile> profiles;
  std::optional<std::string> default_profile;  // used when --profile is not given

  // The profile `name`; throws SpecError naming the file and the profiles there are.
  const Profile& profile(const std::string& name) const;
};

// Parses a workspace configuration, at most kMaxSpecFileBytes. Throws
// SpecError with every problem at file:line:col.
WorkspaceConfig parse_workspace_config_text(const std::string& text, const std::string& file_name);
WorkspaceConfig parse_workspace_config_file(const std::string& file);

}  // namespace kiln::host

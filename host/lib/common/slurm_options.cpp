// SlurmOptions: merging and their sbatch arguments (slurm_options.hpp).
#include <kiln/host/slurm_options.hpp>

#include <algorithm>
#include <array>

namespace kiln::host {

const char* slurm_mode_name(SlurmMode mode) { return mode == SlurmMode::batch ? "batch" : "allocation"; }

SlurmOptions SlurmOptions::over(const SlurmOptions& base) const {
  SlurmOptions merged = base;
  for (const auto& [mine, theirs] :
       std::array<std::pair<const std::optional<std::string>*, std::optional<std::string>*>, 4>{
           {{&partition, &merged.partition},
            {&account, &merged.account},
            {&qos, &merged.qos},
            {&constraint, &merged.constraint}}})
    if (*mine) *theirs = *mine;
  if (mode) merged.mode = mode;
  merged.extra_args.insert(merged.extra_args.end(), extra_args.begin(), extra_args.end());
  return merged;
}

std::vector<std::string> SlurmOptions::sbatch_args() const {
  std::vector<std::string> args;
  if (partition) args.push_back("--partition=" + *partition);
  if (account) args.push_back("--account=" + *account);
  if (qos) args.push_back("--qos=" + *qos);
  if (constraint) args.push_back("--constraint=" + *constraint);
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return args;
}

Json slurm_options_json(const SlurmOptions& options) {
  Json out = Json::object();
  if (options.partition) out["partition"] = *options.partition;
  if (options.account) out["account"] = *options.account;
  if (options.qos) out["qos"] = *options.qos;
  if (options.constraint) out["constraint"] = *options.constraint;
  if (options.mode) out["mode"] = slurm_mode_name(*options.mode);
  if (!options.extra_args.empty()) out["extra_args"] = options.extra_args;
  return out;
}

SlurmOptions slurm_options_from_json(const Json& json) {
  SlurmOptions options;
  if (!json.is_object()) return options;
  const auto text = [&](const char* key) -> std::optional<std::string> {
    if (json.contains(key) && json[key].is_string()) return json[key].get<std::string>();
    return std::nullopt;
  };
  options.partition = text("partition");
  options.account = text("account");
  options.qos = text("qos");
  options.constraint = text("constraint");
  if (const auto mode = text("mode"); mode == std::optional<std::string>("batch")) options.mode = SlurmMode::batch;
  else if (mode == std::optional<std::string>("allocation")) options.mode = SlurmMode::allocation;
  if (json.contains("extra_args") && json["extra_args"].is_array())
    for (const auto& arg : json["extra_args"])
      if (arg.is_string()) options.extra_args.push_back(arg.get<std::string>());
  return options;
}

std::string reserved_sbatch_option(const std::string& arg) {
  static const std::array<const char*, 14> kReserved{
      "--output", "--error",     "--input", "--job-name", "--chdir", "--wrap",      "--parsable",
      "--array",  "--dependency", "--wait", "--export",   "--open-mode", "--test-only", "--hold"};
  static const std::array<std::pair<const char*, const char*>, 6> kShort{
      {{"-o", "--output"}, {"-e", "--error"}, {"-i", "--input"}, {"-J", "--job-name"}, {"-D", "--chdir"},
       {"-a", "--array"}}};
  const std::string name = arg.substr(0, arg.find('='));
  for (const char* reserved : kReserved)
    if (name == reserved) return reserved;
  for (const auto& [flag, long_name] : kShort)
    if (arg.rfind(flag, 0) == 0) return long_name;
  return "";
}

}  // namespace kiln::host

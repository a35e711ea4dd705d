// SlurmOptions: merging and their sbatch arguments (slurm_options.hpp).
#include <kiln/host/slurm_options.hpp>

#include <algorithm>
#include <array>

namespace kiln::host {

SlurmOptions SlurmOptions::over(const SlurmOptions& base) const {
  SlurmOptions merged = base;
  for (const auto& [mine, theirs] :
       std::array<std::pair<const std::optional<std::string>*, std::optional<std::string>*>, 4>{
           {{&partition, &merged.partition},
            {&account, &merged.account},
            {&qos, &merged.qos},
            {&constraint, &merged.constraint}}})
    if (*mine) *theirs = *mine;
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

// ---- YAML (slurm_yaml.hpp) ----------------------------------------------------------

#include <kiln/host/suggest.hpp>

#include "slurm_yaml.hpp"

namespace kiln::host {
namespace {

SourcePos position(const YAML::Node& node, const std::string& file) {
  return SourcePos{file, node.Mark().line + 1, node.Mark().column + 1};
}

// A name Slurm accepts in a partition, account, qos or constraint: no
// whitespace or control characters, bounded.
bool plain_value(const std::string& text) {
  return !text.empty() && text.size() <= 256 &&
         std::none_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) <= ' '; });
}

}  // namespace

void read_slurm_yaml(const YAML::Node& node, const std::string& file, const std::string& where, SlurmOptions& options,
                     std::vector<Diagnostic>& diagnostics) {
  const auto fail = [&](const YAML::Node& at, const std::string& message) {
    diagnostics.push_back({position(at, file), message});
  };
  if (!node.IsMap()) return fail(node, "'" + where + "' must be a mapping");
  static const std::vector<std::string> kKeys{"partition", "account", "qos", "constraint", "extra_args"};
  for (const auto& item : node) {
    const std::string key = item.first.Scalar();
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      fail(item.first, "unknown key '" + key + "' in " + where + did_you_mean(key, kKeys));
      continue;
    }
    const std::string field = where + "." + key;
    if (key == "extra_args") {
      if (!item.second.IsSequence()) {
        fail(item.second, "'" + field + "' must be a list of sbatch arguments such as [--exclusive]");
        continue;
      }
      for (const auto& arg : item.second) {
        if (!arg.IsScalar() || arg.Scalar().empty() || arg.Scalar()[0] != '-' || arg.Scalar().size() > 1024 ||
            arg.Scalar().find('\n') != std::string::npos) {
          fail(arg, "each of '" + field + "' must be one sbatch option such as --exclusive or --nice=10");
          continue;
        }
        if (const std::string reserved = reserved_sbatch_option(arg.Scalar()); !reserved.empty()) {
          fail(arg, "'" + field + "' cannot set " + reserved + ": kiln sets it for every job");
          continue;
        }
        options.extra_args.push_back(arg.Scalar());
      }
      continue;
    }
    if (!item.second.IsScalar() || !plain_value(item.second.Scalar())) {
      fail(item.second, "'" + field + "' must be one name without spaces");
      continue;
    }
    const std::string value = item.second.Scalar();
    if (key == "partition") options.partition = value;
    if (key == "account") options.account = value;
    if (key == "qos") options.qos = value;
    if (key == "constraint") options.constraint = value;
  }
}

}  // namespace kiln::host

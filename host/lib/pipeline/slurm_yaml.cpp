// A `slurm:` mapping → SlurmOptions (slurm_yaml.hpp).
#include <algorithm>

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
  static const std::vector<std::string> kKeys{"partition", "account", "qos", "constraint", "mode", "extra_args"};
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
    if (key == "mode") {
      const std::string mode = item.second.IsScalar() ? item.second.Scalar() : "";
      if (mode == "batch" || mode == "allocation")
        options.mode = mode == "batch" ? SlurmMode::batch : SlurmMode::allocation;
      else
        fail(item.second, "'" + field + "' must be allocation (srun in the run's allocation) or batch (one sbatch job "
                          "per attempt)");
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

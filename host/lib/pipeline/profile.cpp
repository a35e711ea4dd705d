// kiln.yaml → WorkspaceConfig (profile.hpp): shapes, unknown keys, values, at file:line:col.
#include <yaml-cpp/yaml.h>
#include <kiln/host/files.hpp>
#include <kiln/host/profile.hpp>
#include <kiln/host/suggest.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "slurm_yaml.hpp"

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kExecutors{"inprocess", "process", "container", "slurm"};
const std::vector<std::string> kProfileKeys{"executor", "jobs",  "workdir",   "cache",
                                            "grace",    "slurm", "container", "description"};

class ConfigParser {
 public:
  ConfigParser(std::string file, std::vector<Diagnostic>& diagnostics)
      : file_(std::move(file)), diagnostics_(diagnostics) {}

  WorkspaceConfig parse(const YAML::Node& root) {
    WorkspaceConfig config;
    config.file = file_;
    if (!root.IsMap()) {
      error(root, "the workspace configuration must be a mapping with apiVersion, kind and profiles");
      return config;
    }
    check_keys(root, {"apiVersion", "kind", "default_profile", "profiles"}, "the workspace configuration");
    const auto api = root["apiVersion"];
    if (!api || !api.IsScalar() || api.Scalar() != "kiln/v1")
      error(api ? api : root, "the workspace configuration needs 'apiVersion: kiln/v1'");
    const auto kind = root["kind"];
    if (!kind || !kind.IsScalar() || kind.Scalar() != "Workspace")
      error(kind ? kind : root, "the workspace configuration needs 'kind: Workspace'");
    const auto profiles = root["profiles"];
    if (!profiles) {
      error(root, "missing 'profiles': a mapping of profile name to settings");
    } else if (!profiles.IsMap()) {
      error(profiles, "'profiles' must be a mapping of profile name to settings");
    } else {
      for (const auto& item : profiles) {
        Profile profile = read_profile(item.first, item.second);
        config.profiles.emplace(profile.name, std::move(profile));
      }
    }
    if (const auto d = root["default_profile"]) {
      if (!d.IsScalar()) {
        error(d, "'default_profile' must be a profile name");
      } else if (profiles && profiles.IsMap() && !config.profiles.count(d.Scalar())) {
        error(d, "'default_profile' names '" + d.Scalar() + "', which is not among the profiles" +
                     did_you_mean(d.Scalar(), names(config)));
      } else {
        config.default_profile = d.Scalar();
      }
    }
    return config;
  }

 private:
  static std::vector<std::string> names(const WorkspaceConfig& config) {
    std::vector<std::string> out;
    for (const auto& [name, profile] : config.profiles) out.push_back(name);
    return out;
  }

  SourcePos pos(const YAML::Node& node) const {
    return SourcePos{file_, node.Mark().line + 1, node.Mark().column + 1};
  }
  void error(const YAML::Node& node, const std::string& message) { diagnostics_.push_back({pos(node), message}); }

  void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed, const std::string& where) {
    for (const auto& item : map) {
      const std::string key = item.first.IsScalar() ? item.first.Scalar() : "?";
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        error(item.first, "unknown key '" + key + "' in " + where + did_you_mean(key, allowed));
    }
  }

  std::optional<std::string> text(const YAML::Node& node, const std::string& field) {
    if (node.IsScalar() && !node.Scalar().empty()) return node.Scalar();
    error(node, "'" + field + "' must be a single non-empty value");
    return std::nullopt;
  }

  Profile read_profile(const YAML::Node& key, const YAML::Node& node) {
    Profile profile;
    profile.pos = pos(key);
    profile.name = key.IsScalar() ? key.Scalar() : "";
    const bool plain = !profile.name.empty() && profile.name.size() <= 64 &&
                       profile.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") ==
                           std::string::npos;
    if (!plain) error(key, "a profile name uses letters, digits, '_', '-' and '.' (at most 64)");
    const std::string where = "profile '" + profile.name + "'";
    if (node.IsNull()) return profile;
    if (!node.IsMap()) {
      error(node, where + " must be a mapping of settings");
      return profile;
    }
    check_keys(node, kProfileKeys, where);
    const std::string prefix = "profiles." + profile.name + ".";
    if (const auto e = node["executor"]) {
      profile.executor = text(e, prefix + "executor");
      if (profile.executor && std::find(kExecutors.begin(), kExecutors.end(), *profile.executor) == kExecutors.end()) {
        error(e, "unknown executor '" + *profile.executor + "' (use inprocess, process, container or slurm)" +
                     did_you_mean(*profile.executor, kExecutors));
        profile.executor.reset();
      }
    }
    if (const auto j = node["jobs"]) {
      int jobs = 0;
      if (j.IsScalar() && YAML::convert<int>::decode(j, jobs) && jobs >= 1 && jobs <= 4096)
        profile.jobs = jobs;
      else
        error(j, "'" + prefix + "jobs' must be a whole number from 1 to 4096");
    }
    if (const auto w = node["workdir"]) {
      if (const auto dir = text(w, prefix + "workdir"))
        profile.workdir = (fs::absolute(fs::path(file_).parent_path()) / *dir).lexically_normal().string();
    }
    if (const auto c = node["cache"]) {
      bool cache = true;
      if (c.IsScalar() && YAML::convert<bool>::decode(c, cache))
        profile.cache = cache;
      else
        error(c, "'" + prefix + "cache' must be true or false");
    }
    if (const auto g = node["grace"]) {
      const auto seconds = g.IsScalar() ? parse_duration(g.Scalar()) : std::nullopt;
      if (seconds)
        profile.grace_seconds = *seconds;
      else
        error(g, "'" + prefix + "grace' must be a duration such as 5s or 500ms");
    }
    if (const auto s = node["slurm"]) read_slurm_yaml(s, file_, prefix + "slurm", profile.slurm, diagnostics_);
    if (const auto c = node["container"]) read_container(c, prefix + "container", profile);
    if (const auto d = node["description"]) text(d, prefix + "description");
    return profile;
  }

  void read_container(const YAML::Node& node, const std::string& where, Profile& profile) {
    if (!node.IsMap()) return error(node, "'" + where + "' must be a mapping");
    check_keys(node, {"image", "network", "mounts"}, where);
    if (const auto i = node["image"]) {
      profile.container_image = text(i, where + ".image");
      const auto& image = profile.container_image;
      if (image && *image != "host" && (image->rfind("oci:", 0) != 0 || image->rfind(':') <= 4))
        error(i, "'" + where + ".image' must be host or oci:LAYOUT_DIR:TAG, not '" + *image + "'");
    }
    if (const auto n = node["network"]) {
      profile.container_network = text(n, where + ".network");
      if (profile.container_network && *profile.container_network != "none" && *profile.container_network != "host")
        error(n, "'" + where + ".network' must be none or host");
    }
    if (const auto m = node["mounts"]) {
      if (!m.IsSequence()) return error(m, "'" + where + ".mounts' must be a list of host paths");
      for (const auto& path : m)
        if (const auto p = text(path, where + ".mounts"))
          profile.container_mounts.push_back(
              (fs::absolute(fs::path(file_).parent_path()) / *p).lexically_normal().string());
    }
  }

  std::string file_;
  std::vector<Diagnostic>& diagnostics_;
};

}  // namespace

const Profile& WorkspaceConfig::profile(const std::string& name) const {
  const auto it = profiles.find(name);
  if (it != profiles.end()) return it->second;
  std::vector<std::string> known;
  std::string list;
  for (const auto& [n, p] : profiles) {
    known.push_back(n);
    list += (list.empty() ? "" : ", ") + n;
  }
  throw SpecError({{SourcePos{file, 1, 1}, "no profile named '" + name + "' (profiles here: " +
                                                (list.empty() ? "none" : list) + ")" + did_you_mean(name, known)}});
}

WorkspaceConfig parse_workspace_config_text(const std::string& text, const std::string& file_name) {
  if (text.size() > kMaxSpecFileBytes)
    throw SpecError({{SourcePos{file_name, 1, 1},
                      "the workspace configuration is larger than " + std::to_string(kMaxSpecFileBytes) + " bytes"}});
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw SpecError({{SourcePos{file_name, e.mark.line + 1, e.mark.column + 1}, "YAML syntax error: " + e.msg}});
  }
  std::vector<Diagnostic> diagnostics;
  WorkspaceConfig config = ConfigParser(file_name, diagnostics).parse(root);
  if (!diagnostics.empty()) throw SpecError(std::move(diagnostics));
  return config;
}

WorkspaceConfig parse_workspace_config_file(const std::string& file) {
  std::error_code ec;
  const auto status = fs::status(file, ec);
  if (ec || !fs::is_regular_file(status))
    throw SpecError({{SourcePos{file, 1, 1}, "cannot read the workspace configuration (no such regular file)"}});
  if (fs::file_size(file, ec) > kMaxSpecFileBytes)
    throw SpecError({{SourcePos{file, 1, 1},
                      "the workspace configuration is larger than " + std::to_string(kMaxSpecFileBytes) + " bytes"}});
  std::ifstream in(file);
  if (!in) throw SpecError({{SourcePos{file, 1, 1}, "cannot read the workspace configuration"}});
  std::ostringstream text;
  text << in.rdbuf();
  return parse_workspace_config_text(text.str(), file);
}

}  // namespace kiln::host

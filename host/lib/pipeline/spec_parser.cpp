// YAML → PipelineSpec: shapes, unknown keys, templates and imports. Checks
// that need the plugin catalog or the whole graph live in spec_validate.cpp.
#include <yaml-cpp/yaml.h>
#include <kiln/host/reference.hpp>
#include <kiln/host/spec.hpp>
#include <kiln/host/suggest.hpp>
#include <kiln/host/yaml_json.hpp>

#include "slurm_yaml.hpp"
#include "yaml_reader.hpp"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>

namespace kiln::host {
namespace fs = std::filesystem;

std::string SourcePos::str() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace {

std::string join_diagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string text;
  for (const auto& d : diagnostics) text += (text.empty() ? "" : "\n") + d.str();
  return text;
}

}  // namespace

SpecError::SpecError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(join_diagnostics(diagnostics)), diagnostics_(std::move(diagnostics)) {}

const StepSpec* PipelineSpec::find_step(const std::string& step_name) const {
  for (const auto* list : {&steps, &finally_steps})
    for (const auto& s : *list)
      if (s.name == step_name) return &s;
  return nullptr;
}

const PipelineParam* PipelineSpec::find_parameter(const std::string& param_name) const {
  for (const auto& p : parameters)
    if (p.spec.name == param_name) return &p;
  return nullptr;
}

double RetryPolicy::delay_before(int retry) const {
  const double delay = backoff_seconds * std::pow(factor, std::max(0, retry - 1));
  return std::min(delay, max_backoff_seconds);
}

Json TuneSpec::tuner_config() const {
  Json config{{"objective", {{"metric", metric}, {"goal", maximize ? "maximize" : "minimize"}}},
              {"space", space},
              {"settings", settings},
              {"max_trials", max_trials},
              {"seed", seed}};
  if (!early_stopping.is_null()) config["early_stopping"] = early_stopping;
  if (!objectives.empty()) {
    config["objectives"] = Json::array();
    for (const Objective& o : objectives)
      config["objectives"].push_back({{"metric", o.metric}, {"goal", o.maximize ? "maximize" : "minimize"}});
  }
  return config;
}

SourcePos TuneSpec::position_of(const std::string& field) const {
  std::string path = field;
  for (;;) {
    if (const auto it = positions.find(path); it != positions.end()) return it->second;
    const auto dot = path.rfind('.');
    if (dot == std::string::npos) return pos;
    path.resize(dot);
  }
}

std::optional<double> parse_duration(const std::string& text) {
  double value = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  const auto [rest, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || value < 0 || !std::isfinite(value)) return std::nullopt;
  const std::string unit(rest, end);
  if (unit.empty() || unit == "s") return value;
  if (unit == "ms") return value / 1000.0;
  if (unit == "m") return value * 60.0;
  if (unit == "h") return value * 3600.0;
  return std::nullopt;
}

namespace {

const std::vector<std::string> kStepKeys{"name",  "description", "component",  "template",    "parameters", "inputs",
                                         "after", "when",        "for_each",   "parallelism", "retries",    "timeout",
                                         "cache", "executor",    "image",      "network",     "resources",  "mounts",
                                         "user",  "tune",        "distributed", "slurm"};

// Reads YAML into the spec, recording every problem instead of stopping.
class Parser : private YamlReader {
 public:
  explicit Parser(std::vector<Diagnostic>& diagnostics) : YamlReader(diagnostics) {}

  PipelineSpec parse(const YAML::Node& root, const std::string& file) {
    PipelineSpec spec;
    spec.file = file;
    if (!expect_map(root, file, "the pipeline file")) return spec;
    check_keys(root, file,
               {"apiVersion", "kind", "metadata", "imports", "parameters", "templates", "steps", "finally", "options"},
               "pipeline");
    check_header(root, file, "Pipeline");
    read_metadata(root["metadata"], file, spec);
    read_imports(root, file);
    read_templates(root["templates"], file);
    read_parameters(root["parameters"], file, spec);
    spec.steps = read_steps(root["steps"], file, false);
    if (root["steps"] && spec.steps.empty() && root["steps"].IsSequence())
      error(root["steps"], file, "'steps' is empty");
    if (!root["steps"]) error(root, file, "missing 'steps': a pipeline needs at least one step");
    spec.finally_steps = read_steps(root["finally"], file, true);
    read_options(root["options"], file, spec);
    return spec;
  }

 private:
  struct Template {
    YAML::Node node;
    std::string file;
  };

  void read_metadata(const YAML::Node& node, const std::string& file, PipelineSpec& spec) {
    if (!node) return;
    if (!expect_map(node, file, "'metadata'")) return;
    check_keys(node, file, {"name", "description"}, "metadata");
    if (node["name"]) spec.name = scalar(node["name"], file, "metadata.name").value_or("");
    if (node["description"]) spec.description = scalar(node["description"], file, "metadata.description").value_or("");
  }

  void read_imports(const YAML::Node& root, const std::string& file) {
    const auto imports = root["imports"];
    if (!imports) return;
    if (!imports.IsSequence()) return error(imports, file, "'imports' must be a list of template files");
    for (const auto& entry : imports) {
      const auto relative = scalar(entry, file, "an import");
      if (!relative) continue;
      const fs::path path = fs::path(file).parent_path() / *relative;
      std::error_code ec;
      const auto canonical = fs::weakly_canonical(path, ec).string();
      if (!imported_.insert(canonical).second) continue;  // imported twice, or a cycle
      // A FIFO or a device (/dev/stdin, /dev/zero) has no size to check and may never end.
      if (const auto status = fs::status(path, ec); !ec && fs::exists(status) && !fs::is_regular_file(status)) {
        error(entry, file, "imported file '" + path.string() + "' is not a regular file");
        continue;
      }
      if (const auto size = fs::file_size(path, ec); !ec && size > kMaxSpecFileBytes) {
        error(entry, file,
              "imported file '" + path.string() + "' is larger than " + std::to_string(kMaxSpecFileBytes) + " bytes");
        continue;
      }
      YAML::Node imported;
      try {
        imported = YAML::LoadFile(path.string());
      } catch (const YAML::BadFile&) {
        error(entry, file, "cannot read imported file '" + path.string() + "'");
        continue;
      } catch (const YAML::ParserException& e) {
        diagnostics_.push_back(
            {SourcePos{path.string(), e.mark.line + 1, e.mark.column + 1}, "YAML syntax error: " + e.msg});
        continue;
      }
      if (!expect_map(imported, path.string(), "a template file")) continue;
      check_keys(imported, path.string(), {"apiVersion", "kind", "imports", "templates"}, "template file");
      check_header(imported, path.string(), "Templates");
      read_imports(imported, path.string());
      read_templates(imported["templates"], path.string());
    }
  }

  void read_templates(const YAML::Node& node, const std::string& file) {
    if (!node) return;
    if (!expect_map(node, file, "'templates'")) return;
    for (const auto& item : node) {
      const std::string name = item.first.Scalar();
      if (const auto it = templates_.find(name); it != templates_.end()) {
        error(item.first, file,
              "template '" + name + "' is already defined at " + pos(it->second.node, it->second.file).str());
        continue;
      }
      if (!expect_map(item.second, file, "template '" + name + "'")) continue;
      std::vector<std::string> keys(kStepKeys.begin() + 1, kStepKeys.end());
      keys.push_back("steps");  // a template of several steps: a tuning step's trial
      check_keys(item.second, file, keys, "template '" + name + "'");
      templates_[name] = Template{item.second, file};
    }
  }

  void read_parameters(const YAML::Node& node, const std::string& file, PipelineSpec& spec) {
    if (!node) return;
    if (!expect_map(node, file, "'parameters'")) return;
    for (const auto& item : node) {
      const auto param = read_parameter(item.first, item.second, file);
      if (!param) continue;
      spec.parameters.push_back(PipelineParam{*param, pos(item.first, file)});
    }
  }

  std::vector<StepSpec> read_steps(const YAML::Node& node, const std::string& file, bool is_finally) {
    std::vector<StepSpec> steps;
    if (!node) return steps;
    const std::string list = is_finally ? "'finally'" : "'steps'";
    if (!node.IsSequence()) {
      error(node, file, list + " must be a list of steps");
      return steps;
    }
    for (const auto& item : node) {
      if (!expect_map(item, file, "a step")) continue;
      StepSpec step;
      step.pos = pos(item, file);
      step.is_finally = is_finally;
      const auto name = item["name"];
      if (!name) {
        error(item, file, "step has no 'name'");
        continue;
      }
      step.name = scalar(name, file, "name").value_or("");
      if (!is_component_name(step.name) && !is_identifier(step.name))
        error(name, file, "step name '" + step.name + "' must be letters, digits, '_' or '-'");
      check_keys(item, file, kStepKeys, "step '" + step.name + "'");
      std::vector<std::string> chain;
      apply_step_fields(item, file, step, chain);
      const bool template_trial = step.tune && !step.tune->trial.empty();
      if (step.component.empty() && !template_trial)
        error(item, file, "step '" + step.name + "' names no component (nor a template that does)");
      if (!step.component.empty() && template_trial)
        diagnostics_.push_back({step.component_pos, "step '" + step.name +
                                                        "' names both a component and 'tune.trial': the trial is one "
                                                        "or the other"});
      if (step.tune && step.for_each)
        error(item, file,
              "step '" + step.name + "' has both 'tune' and 'for_each': a tuning step makes its own trials");
      if (step.tune && is_finally) error(item, file, "finally step '" + step.name + "' cannot be a tuning step");
      steps.push_back(std::move(step));
    }
    return steps;
  }

  // Applies a template chain first, then the node's own fields over it.
  void apply_step_fields(const YAML::Node& node, const std::string& file, StepSpec& step,
                         std::vector<std::string>& chain) {
    if (const auto t = node["template"]) {
      const auto name = scalar(t, file, "template").value_or("");
      const auto it = templates_.find(name);
      if (it == templates_.end()) {
        std::vector<std::string> names;
        for (const auto& [n, unused] : templates_) names.push_back(n);
        error(t, file, "unknown template '" + name + "'" + did_you_mean(name, names));
      } else if (std::find(chain.begin(), chain.end(), name) != chain.end()) {
        std::string cycle;
        for (const auto& c : chain) cycle += c + " -> ";
        error(t, file, "templates extend each other in a cycle: " + cycle + name);
      } else if (it->second.node["steps"]) {
        error(t, file,
              "template '" + name + "' has several steps: only a tuning step can run it, as 'tune: {trial: " + name +
                  "}'");
      } else {
        chain.push_back(name);
        if (step.template_name.empty()) step.template_name = name;
        apply_step_fields(it->second.node, it->second.file, step, chain);
      }
    }
    if (const auto c = node["component"]) {
      const auto text = scalar(c, file, "component").value_or("");
      const auto at = text.find('@');
      step.component = text.substr(0, at);
      step.version_range = at == std::string::npos ? "" : text.substr(at + 1);
      step.component_pos = pos(c, file);
    }
    if (const auto p = node["parameters"]; p && expect_map(p, file, "'parameters'"))
      for (const auto& item : p)
        step.parameters[item.first.Scalar()] = ValueSpec{to_json(item.second, file), value_pos(item.second, file)};
    if (const auto i = node["inputs"]; i && expect_map(i, file, "'inputs'"))
      for (const auto& item : i) read_input(item.first.Scalar(), item.second, file, step);
    if (const auto a = node["after"]) read_after(a, file, step);
    if (const auto w = node["when"]) {
      if (w.IsScalar())
        step.when = ValueSpec{w.Scalar(), value_pos(w, file)};
      else
        error(w, file, "'when' must be an expression such as: params.mode == 'full'");
    }
    if (const auto f = node["for_each"]) step.for_each = ValueSpec{to_json(f, file), value_pos(f, file)};
    if (const auto p = node["parallelism"]) step.parallelism = read_count(p, file, "parallelism", 0);
    if (const auto t = node["tune"]) read_tune(t, file, step);
    if (const auto r = node["retries"]) read_retries(r, file, step.retries);
    if (const auto t = node["timeout"]) step.timeout_seconds = read_duration(t, file, "timeout");
    if (const auto c = node["cache"]) {
      step.written.cache = pos(c, file);
      const Json v = to_json(c, file);
      if (v.is_boolean())
        step.cache = v.get<bool>();
      else
        error(c, file, "'cache' must be true or false");
    }
    if (const auto e = node["executor"]) {
      step.written.executor = pos(e, file);
      step.executor = scalar(e, file, "executor").value_or("");
      const std::vector<std::string> executors{"inprocess", "process", "container", "slurm"};
      if (std::find(executors.begin(), executors.end(), step.executor) == executors.end())
        error(e, file,
              "unknown executor '" + step.executor + "' (use inprocess, process, container or slurm)" +
                  did_you_mean(step.executor, executors));
    }
    if (const auto d = node["distributed"]) read_distributed(d, file, step);
    read_container_fields(node, file, step.container, step.gpus_pos);
    if (const auto s = node["slurm"]) {
      step.written.slurm = pos(s, file);
      read_slurm_yaml(s, file, "slurm", step.slurm, diagnostics_);
    }
    for (const auto& [key, at] : {std::pair{"image", &step.written.image}, std::pair{"network", &step.written.network},
                                  std::pair{"mounts", &step.written.mounts}, std::pair{"user", &step.written.user}})
      if (const auto n = node[key]) *at = pos(n, file);
  }

  // `distributed: {replicas: N}`: N processes train one model (docs/distributed.md).
  void read_distributed(const YAML::Node& node, const std::string& file, StepSpec& step) {
    if (!expect_map(node, file, "'distributed'")) return;
    check_keys(node, file, {"replicas"}, "distributed");
    const auto r = node["replicas"];
    if (!r) {
      error(node, file, "'distributed' needs 'replicas': the number of processes, such as 2");
      return;
    }
    const Json v = to_json(r, file);
    if (v.is_number_integer() && v.get<int64_t>() >= 1 && v.get<int64_t>() <= kMaxReplicas)
      step.replicas = static_cast<int>(v.get<int64_t>());
    else
      error(r, file, "'distributed.replicas' must be an integer from 1 to " + std::to_string(kMaxReplicas));
  }

  // image, network, resources, mounts and user: what the container executor gives a step.
  void read_container_fields(const YAML::Node& node, const std::string& file, ContainerOptions& options,
                             SourcePos& gpus_pos) {
    if (const auto i = node["image"]) {
      options.image = scalar(i, file, "image").value_or("host");
      if (!is_image_reference(options.image))
        error(i, file, "'image' must be host or oci:LAYOUT_DIR:TAG, not '" + options.image + "'");
    }
    if (const auto n = node["network"]) {
      options.network = scalar(n, file, "network").value_or("none");
      if (options.network != "none" && options.network != "host")
        error(n, file, "'network' must be none or host, not '" + options.network + "'");
    }
    if (const auto r = node["resources"]; r && expect_map(r, file, "'resources'")) {
      check_keys(r, file, {"memory", "cpus", "pids", "gpus"}, "resources");
      if (const auto m = r["memory"]) {
        const auto text = scalar(m, file, "resources.memory");
        options.memory_bytes = text ? parse_memory_size(*text) : std::nullopt;
        if (text && (!options.memory_bytes || *options.memory_bytes < (4 << 20)))
          error(m, file, "'resources.memory' must be a size of at least 4Mi such as 64Mi, 2Gi or 500M");
      }
      if (const auto c = r["cpus"]) {
        const Json v = to_json(c, file);
        if (v.is_number() && v.get<double>() >= 0.01 && v.get<double>() <= 1024)
          options.cpus = v.get<double>();
        else
          error(c, file, "'resources.cpus' must be a number of cores such as 0.5 or 2");
      }
      if (const auto p = r["pids"]) options.pids = read_count(p, file, "resources.pids", 1);
      if (const auto g = r["gpus"]) {
        options.gpus = read_count(g, file, "resources.gpus", 0);
        gpus_pos = pos(g, file);
      }
    }
    if (const auto m = node["mounts"]) read_mounts(m, file, options);
    if (const auto u = node["user"]) {
      const auto text = scalar(u, file, "user");
      options.user = text ? parse_container_user(*text) : std::nullopt;
      if (text && !options.user)
        error(u, file, "'user' must be a uid or uid:gid such as 65534 or 1000:1000, not '" + *text + "'");
    }
  }

  // Read-only host paths a container step may read (e.g. a data directory).
  void read_mounts(const YAML::Node& node, const std::string& file, ContainerOptions& options) {
    if (!node.IsSequence()) {
      error(node, file, "'mounts' must be a list of host paths (relative ones to this file's directory)");
      return;
    }
    options.mounts.clear();
    const fs::path base = fs::absolute(file).parent_path();
    for (const auto& item : node) {
      const auto text = scalar(item, file, "mounts entry");
      if (!text) continue;
      if (text->empty() || text->find("{{") != std::string::npos) {
        error(item, file, "a 'mounts' entry must be a plain host path, not '" + *text + "'");
        continue;
      }
      fs::path path = (base / *text).lexically_normal();
      if (path.has_parent_path() && path.filename().empty()) path = path.parent_path();  // "data/" -> "data"
      if (path == path.root_path()) {
        error(item, file, "'mounts' cannot bind the whole root filesystem");
        continue;
      }
      options.mounts.push_back(path.string());
    }
  }

  void read_input(const std::string& name, const YAML::Node& value, const std::string& file, StepSpec& step) {
    const auto text = scalar(value, file, "input '" + name + "'");
    if (!text) return;
    const auto wire = split_step_output(*text);
    if (!wire) {
      error(value, file, "input '" + name + "' must name an upstream output as STEP.outputs.NAME, not '" + *text + "'");
      return;
    }
    step.inputs[name] = InputWire{wire->step, wire->output, pos(value, file)};
  }

  void read_after(const YAML::Node& node, const std::string& file, StepSpec& step) {
    step.after.clear();
    if (node.IsScalar()) {
      step.after.emplace_back(node.Scalar(), pos(node, file));
      return;
    }
    if (!node.IsSequence()) return error(node, file, "'after' must be a step name or a list of them");
    for (const auto& item : node)
      if (const auto name = scalar(item, file, "an 'after' entry")) step.after.emplace_back(*name, pos(item, file));
  }

  int read_count(const YAML::Node& node, const std::string& file, const std::string& what, int minimum) {
    const Json v = to_json(node, file);
    if (v.is_number_integer() && v.get<int64_t>() >= minimum && v.get<int64_t>() <= 1000000) return v.get<int>();
    error(node, file, "'" + what + "' must be a whole number ≥ " + std::to_string(minimum));
    return minimum;
  }

  std::optional<double> read_duration(const YAML::Node& node, const std::string& file, const std::string& what) {
    if (node.IsScalar())
      if (const auto d = parse_duration(node.Scalar())) return d;
    error(node, file, "'" + what + "' must be a duration such as 30s, 5m, 1h or 250ms");
    return std::nullopt;
  }

  // Records the position of `node` and everything below it under `path`.
  void record_positions(const YAML::Node& node, const std::string& file, const std::string& path,
                        std::map<std::string, SourcePos>& positions, int depth = 0) {
    budget_.charge(node, path.size(), depth);
    positions[path] = value_pos(node, file);
    if (node.IsMap())
      for (const auto& item : node)
        record_positions(item.second, file, path + "." + item.first.Scalar(), positions, depth + 1);
  }

  // The `tune:` block: shapes here; the space's own rules are the tuner's
  // (its errors name a field, reported at TuneSpec::position_of).
  void read_tune(const YAML::Node& node, const std::string& file, StepSpec& step) {
    if (!expect_map(node, file, "'tune'")) return;
    check_keys(node, file,
               {"tuner", "objective", "objectives", "space", "settings", "early_stopping", "max_trials",
                "parallel_trials", "max_failed_trials", "seed", "trial"},
               "tune");
    TuneSpec tune;
    tune.pos = pos(node, file);
    for (const auto& item : node) {
      try {
        record_positions(item.second, file, item.first.Scalar(), tune.positions);
      } catch (const YamlLimitError& e) {
        over_limit(e, item.second, file);
      }
    }
    if (const auto t = node["tuner"]) {
      tune.tuner = scalar(t, file, "'tune.tuner'").value_or("");
      tune.tuner_pos = pos(t, file);
    } else {
      error(node, file, "'tune' needs a 'tuner', such as tune.random, tune.grid, tune.tpe or tune.asha");
    }
    const auto objective = node["objective"];
    const auto objectives = node["objectives"];
    if (objective && objectives) {
      error(objectives, file, "'tune' takes 'objective' or 'objectives', not both");
    } else if (objectives) {
      read_objectives(objectives, file, tune);
    } else if (!objective) {
      error(node, file,
            "'tune' needs an 'objective': {metric: NAME, goal: maximize|minimize} (or 'objectives': a list of them)");
    } else if (const auto read = read_objective(objective, file, "tune.objective")) {
      tune.metric = read->metric;
      tune.maximize = read->maximize;
    }
    if (const auto s = node["space"]; !s) {
      error(node, file, "'tune' needs a 'space': a mapping of parameter name to {type: ..., ...}");
    } else if (expect_map(s, file, "'tune.space'")) {
      if (s.size() == 0) error(s, file, "'tune.space' is empty");
      for (const auto& item : s)
        if (expect_map(item.second, file, "space entry '" + item.first.Scalar() + "'")) {
          if (!item.second["type"])
            error(item.second, file,
                  "space entry '" + item.first.Scalar() + "' needs a type: uniform, log_uniform, int or categorical");
        }
      tune.space = to_json(s, file);
    }
    if (const auto s = node["settings"]; s && expect_map(s, file, "'tune.settings'")) tune.settings = to_json(s, file);
    if (const auto e = node["early_stopping"]; e && expect_map(e, file, "'tune.early_stopping'")) {
      check_keys(e, file, {"rule", "grace_steps", "min_trials"}, "tune.early_stopping");
      if (!e["rule"] || !e["rule"].IsScalar() || e["rule"].Scalar() != "median")
        error(e, file, "'tune.early_stopping' needs 'rule: median' (the only rule so far)");
      tune.early_stopping = to_json(e, file);
    }
    if (const auto m = node["max_trials"]) tune.max_trials = read_count(m, file, "tune.max_trials", 1);
    if (const auto p = node["parallel_trials"]) tune.parallel_trials = read_count(p, file, "tune.parallel_trials", 1);
    if (const auto m = node["max_failed_trials"])
      tune.max_failed_trials = read_count(m, file, "tune.max_failed_trials", 0);
    if (const auto s = node["seed"]) {
      const Json v = to_json(s, file);
      if (v.is_number_integer() && v.get<int64_t>() >= 0)
        tune.seed = v.get<int64_t>();
      else
        error(s, file, "'tune.seed' must be a whole number ≥ 0");
    }
    if (const auto t = node["trial"]) read_trial(t, file, tune);
    step.tune = std::move(tune);
  }

  // One objective, {metric: NAME, goal: maximize|minimize} (goal: maximize
  // when left out), at `where` ("tune.objective", "tune.objectives[1]").
  std::optional<TuneSpec::Objective> read_objective(const YAML::Node& o, const std::string& file,
                                                    const std::string& where) {
    if (!expect_map(o, file, "'" + where + "'")) return std::nullopt;
    check_keys(o, file, {"metric", "goal"}, where);
    TuneSpec::Objective out;
    if (o["metric"])
      out.metric = scalar(o["metric"], file, "'" + where + ".metric'").value_or("");
    else
      error(o, file, "'" + where + "' needs a 'metric'");
    if (const auto g = o["goal"]) {
      const std::string goal = scalar(g, file, "'" + where + ".goal'").value_or("");
      if (goal != "maximize" && goal != "minimize")
        error(g, file, "'" + where + ".goal' must be maximize or minimize, not '" + goal + "'");
      out.maximize = goal != "minimize";
    }
    return out;
  }

  // `tune.objectives`: two or more objectives with distinct metrics; the
  // first is also the step's `objective` (what schedulers and curves follow).
  void read_objectives(const YAML::Node& list, const std::string& file, TuneSpec& tune) {
    if (!list.IsSequence() || list.size() < 2) {
      error(list, file, "'tune.objectives' must be a list of two or more {metric: NAME, goal: maximize|minimize}");
      return;
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < list.size(); ++i) {
      const auto read = read_objective(list[i], file, "tune.objectives[" + std::to_string(i) + "]");
      if (!read) continue;
      if (!seen.insert(read->metric).second)
        error(list[i], file, "'tune.objectives' names metric '" + read->metric + "' twice");
      tune.objectives.push_back(*read);
    }
    if (!tune.objectives.empty()) {
      tune.metric = tune.objectives.front().metric;
      tune.maximize = tune.objectives.front().maximize;
    }
  }

  // `tune.trial: TEMPLATE`: the template's `steps:` are the steps of one
  // trial. They form a DAG of their own (inputs and `after` may name each
  // other), so the loop, tuning and condition fields a trial cannot honour are errors.
  void read_trial(const YAML::Node& node, const std::string& file, TuneSpec& tune) {
    tune.trial = scalar(node, file, "'tune.trial'").value_or("");
    tune.trial_pos = pos(node, file);
    const auto it = templates_.find(tune.trial);
    if (it == templates_.end()) {
      std::vector<std::string> names;
      for (const auto& [n, unused] : templates_) names.push_back(n);
      return error(node, file, "unknown template '" + tune.trial + "'" + did_you_mean(tune.trial, names));
    }
    const Template& trial = it->second;
    if (!trial.node["steps"])
      return error(node, file,
                   "template '" + tune.trial + "' has no 'steps': a trial template lists the steps of one trial");
    tune.trial_steps = read_steps(trial.node["steps"], trial.file, false);
    if (trial.node["steps"].IsSequence() && trial.node["steps"].size() == 0)
      error(trial.node["steps"], trial.file, "template '" + tune.trial + "' has an empty 'steps' list");
    for (const StepSpec& part : tune.trial_steps) {
      const auto refuse = [&](bool present, const std::string& field) {
        if (present)
          diagnostics_.push_back(
              {part.pos, "step '" + part.name + "' of trial template '" + tune.trial + "' cannot use '" + field + "'"});
      };
      refuse(part.tune.has_value(), "tune");
      refuse(part.for_each.has_value(), "for_each");
      refuse(part.when.has_value(), "when");
    }
  }

  void read_retries(const YAML::Node& node, const std::string& file, RetryPolicy& retries) {
    if (node.IsScalar()) {
      retries.limit = read_count(node, file, "retries", 0);
      return;
    }
    if (!expect_map(node, file, "'retries'")) return;
    check_keys(node, file, {"limit", "backoff", "factor", "max_backoff", "on"}, "retries");
    if (node["limit"]) retries.limit = read_count(node["limit"], file, "retries.limit", 0);
    if (node["backoff"])
      retries.backoff_seconds = read_duration(node["backoff"], file, "retries.backoff").value_or(1.0);
    if (node["max_backoff"])
      retries.max_backoff_seconds = read_duration(node["max_backoff"], file, "retries.max_backoff").value_or(60.0);
    if (const auto f = node["factor"]) {
      const Json v = to_json(f, file);
      if (v.is_number() && v.get<double>() >= 1.0)
        retries.factor = v.get<double>();
      else
        error(f, file, "'retries.factor' must be a number ≥ 1");
    }
    if (const auto on = node["on"]) {
      retries.on.clear();
      const auto add = [&](const YAML::Node& item) {
        const auto cls = scalar(item, file, "a failure class").value_or("");
        if (std::find(failure_classes().begin(), failure_classes().end(), cls) == failure_classes().end())
          error(item, file,
                "unknown failure class '" + cls + "' (use error, crash, timeout, out_of_memory or lost)" +
                    did_you_mean(cls, failure_classes()));
        retries.on.insert(cls);
      };
      if (on.IsSequence())
        for (const auto& item : on) add(item);
      else
        add(on);
    }
  }

  void read_options(const YAML::Node& node, const std::string& file, PipelineSpec& spec) {
    if (!node) return;
    if (!expect_map(node, file, "'options'")) return;
    check_keys(node, file, {"failure_policy", "timeout"}, "options");
    if (const auto f = node["failure_policy"]) {
      spec.failure_policy = scalar(f, file, "failure_policy").value_or("stop");
      spec.failure_policy_pos = value_pos(f, file);
      if (spec.failure_policy != "stop" && spec.failure_policy != "continue")
        error(f, file,
              "failure_policy must be 'stop' or 'continue'" + did_you_mean(spec.failure_policy, {"stop", "continue"}));
    }
    if (const auto t = node["timeout"]) spec.timeout_seconds = read_duration(t, file, "options.timeout");
  }

  std::map<std::string, Template> templates_;
  std::set<std::string> imported_;
};

}  // namespace

PipelineSpec parse_pipeline_text(const std::string& text, const std::string& file_name) {
  const YAML::Node root = load_yaml_document(text, file_name, kMaxSpecFileBytes, "the spec");
  try {
    std::vector<Diagnostic> diagnostics;
    PipelineSpec spec = Parser(diagnostics).parse(root, file_name);
    if (!diagnostics.empty()) throw SpecError(std::move(diagnostics));
    return spec;
  } catch (const std::bad_alloc&) {
    throw SpecError({{SourcePos{file_name, 1, 1}, "the spec is too large to read (out of memory)"}});
  } catch (const std::length_error&) {
    throw SpecError({{SourcePos{file_name, 1, 1}, "the spec is too large to read (out of memory)"}});
  }
}

PipelineSpec parse_pipeline_file(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw SpecError({{SourcePos{file, 1, 1}, "cannot read the pipeline file"}});
  std::ostringstream text;
  text << in.rdbuf();
  return parse_pipeline_text(text.str(), file);
}

}  // namespace kiln::host

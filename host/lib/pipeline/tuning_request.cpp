// A planned tuning step to JSON and back (tuning_request.hpp). The JSON comes
// from a pod's command line: every field is checked, each problem names it.
#include <kiln/host/json_bounded.hpp>
#include <kiln/host/tuning_request.hpp>

#include <algorithm>
#include <string>

namespace kiln::host {
namespace {

[[noreturn]] void bad_field(const std::string& field, const std::string& what) {
  throw TuningRequestError("tuning." + field + ": " + what);
}

Json retries_json(const RetryPolicy& r) {
  return Json{{"limit", r.limit},
              {"backoff_seconds", r.backoff_seconds},
              {"factor", r.factor},
              {"max_backoff_seconds", r.max_backoff_seconds},
              {"on", r.on}};
}

// The fields a pod's engine reads of a step (the tuning step, or a trial's).
Json step_json(const PlannedStep& step) {
  const StepSpec& s = step.spec;
  Json parameters = Json::object(), inputs = Json::object();
  for (const auto& [name, value] : s.parameters) parameters[name] = value.value;
  for (const auto& [name, wire] : s.inputs) inputs[name] = {{"step", wire.step}, {"output", wire.output}};
  Json out{{"name", s.name},       {"parameters", parameters}, {"inputs", inputs},
           {"retries", retries_json(s.retries)}, {"cache", s.cache}, {"parallelism", s.parallelism},
           {"upstream", step.upstream}};
  if (!s.component.empty()) out["component"] = s.component;
  if (!s.version_range.empty()) out["version"] = s.version_range;
  if (s.timeout_seconds) out["timeout_seconds"] = *s.timeout_seconds;
  if (s.container.memory_bytes) out["memory_bytes"] = *s.container.memory_bytes;
  if (s.container.cpus) out["cpus"] = *s.container.cpus;
  return out;
}

class TuningStepReader {
 public:
  explicit TuningStepReader(const PluginCatalog& catalog) : catalog_(catalog) {}

  PlannedStep step(const Json& j, const std::string& at) {
    object(j, at);
    PlannedStep planned;
    StepSpec& s = planned.spec;
    s.name = text(j, at, "name", true);
    if (!is_component_name(s.name) && !is_identifier(s.name))  // the spec's rule: it names directories
      bad_field(at + ".name", "'" + excerpt_text(s.name, 60) + "' must be letters, digits and '_', or dotted lower-case words");
    s.component = text(j, at, "component", false);
    s.version_range = text(j, at, "version", false);
    if (!s.component.empty()) planned.component = bind(s.component, s.version_range, at + ".component");
    const Json& parameters = field(j, at, "parameters");
    object(parameters, at + ".parameters");
    for (const auto& [name, value] : parameters.items()) s.parameters[name] = ValueSpec{value, {}};
    const Json& inputs = field(j, at, "inputs");
    object(inputs, at + ".inputs");
    for (const auto& [name, wire] : inputs.items()) {
      const std::string where = at + ".inputs." + name;
      object(wire, where);
      if (!is_identifier(name)) bad_field(where, "an input name must be letters, digits and '_'");
      s.inputs[name] = InputWire{text(wire, where, "step", true), text(wire, where, "output", true), {}};
    }
    s.retries = retries(field(j, at, "retries"), at + ".retries");
    s.cache = boolean(j, at, "cache");
    s.parallelism = whole(j, at, "parallelism", 0, 1 << 20);
    if (j.contains("timeout_seconds")) s.timeout_seconds = number(j, at, "timeout_seconds", 0, 1e9);
    if (j.contains("memory_bytes")) s.container.memory_bytes = whole(j, at, "memory_bytes", 1, int64_t{1} << 50);
    if (j.contains("cpus")) s.container.cpus = number(j, at, "cpus", 0, 1e6);
    for (const auto& up : names(field(j, at, "upstream"), at + ".upstream")) planned.upstream.insert(up);
    return planned;
  }

  void tune(const Json& j, PlannedStep& planned) {
    object(j, "tune");
    TuneSpec t;
    t.tuner = text(j, "tune", "tuner", true);
    planned.tuner = bind(t.tuner, "", "tune.tuner");
    t.metric = text(j, "tune", "metric", true);
    t.maximize = boolean(j, "tune", "maximize");
    t.space = field(j, "tune", "space");
    object(t.space, "tune.space");
    t.settings = field(j, "tune", "settings");
    object(t.settings, "tune.settings");
    t.early_stopping = j.value("early_stopping", Json());
    t.max_trials = static_cast<int>(whole(j, "tune", "max_trials", 1, 1 << 20));
    t.parallel_trials = static_cast<int>(whole(j, "tune", "parallel_trials", 0, 1 << 20));
    t.max_failed_trials = static_cast<int>(whole(j, "tune", "max_failed_trials", 0, 1 << 20));
    t.seed = whole(j, "tune", "seed", INT64_MIN, INT64_MAX);
    t.trial = text(j, "tune", "trial", false);
    if (j.contains("objectives")) t.objectives = objectives(j["objectives"], t);
    planned.spec.tune = std::move(t);
  }

 private:
  const CatalogComponent& bind(const std::string& name, const std::string& range, const std::string& at) {
    const auto* found = catalog_.find(name, range);
    if (found == nullptr)
      bad_field(at, "the image has no component " + name + (range.empty() ? "" : "@" + range) +
                  " on its plugin path (versions found: " + catalog_.versions_of(name) + ")");
    return *found;
  }

  static void object(const Json& j, const std::string& at) {
    if (!j.is_object()) bad_field(at, "must be an object");
  }
  static const Json& field(const Json& j, const std::string& at, const char* key) {
    const auto it = j.find(key);
    if (it == j.end()) bad_field(at + "." + key, "is missing");
    return *it;
  }
  static std::string text(const Json& j, const std::string& at, const char* key, bool required) {
    if (!j.contains(key)) {
      if (required) bad_field(at + "." + key, "is missing");
      return "";
    }
    const Json& v = j[key];
    if (!v.is_string() || (required && v.get_ref<const std::string&>().empty()))
      bad_field(at + "." + key, "must be a non-empty string");
    return v.get<std::string>();
  }
  static bool boolean(const Json& j, const std::string& at, const char* key) {
    const Json& v = field(j, at, key);
    if (!v.is_boolean()) bad_field(at + "." + key, "must be true or false");
    return v.get<bool>();
  }
  static int64_t whole(const Json& j, const std::string& at, const char* key, int64_t low, int64_t high) {
    const Json& v = field(j, at, key);
    if (!v.is_number_integer() || v.get<int64_t>() < low || v.get<int64_t>() > high)
      bad_field(at + "." + key, "must be a whole number from " + std::to_string(low) + " to " + std::to_string(high));
    return v.get<int64_t>();
  }
  static double number(const Json& j, const std::string& at, const char* key, double low, double high) {
    const Json& v = field(j, at, key);
    if (!v.is_number() || !(v.get<double>() >= low) || v.get<double>() > high)
      bad_field(at + "." + key, "must be a number from " + Json(low).dump() + " to " + Json(high).dump());
    return v.get<double>();
  }
  static std::vector<std::string> names(const Json& j, const std::string& at) {
    if (!j.is_array()) bad_field(at, "must be a list of names");
    std::vector<std::string> out;
    for (const auto& n : j) {
      if (!n.is_string() || n.get_ref<const std::string&>().empty()) bad_field(at, "must be a list of names");
      out.push_back(n.get<std::string>());
    }
    return out;
  }
  // `tune.objectives` as the spec reads it: 2 to kMaxTuningObjectives
  // {metric, goal}, distinct metrics, the first the step's own objective.
  static std::vector<TuneSpec::Objective> objectives(const Json& j, const TuneSpec& t) {
    const std::string at = "tune.objectives";
    if (!j.is_array() || j.size() < 2 || j.size() > kMaxTuningObjectives)
      bad_field(at, "must be a list of 2 to " + std::to_string(kMaxTuningObjectives) + " {metric, goal}");
    std::vector<TuneSpec::Objective> out;
    for (size_t i = 0; i < j.size(); ++i) {
      const std::string where = at + "[" + std::to_string(i) + "]";
      object(j[i], where);
      TuneSpec::Objective o;
      o.metric = text(j[i], where, "metric", true);
      const std::string goal = text(j[i], where, "goal", true);
      if (goal != "maximize" && goal != "minimize") bad_field(where + ".goal", "must be maximize or minimize");
      o.maximize = goal == "maximize";
      if (std::any_of(out.begin(), out.end(), [&](const TuneSpec::Objective& seen) { return seen.metric == o.metric; }))
        bad_field(where + ".metric", "'" + excerpt_text(o.metric, 60) + "' is named twice");
      out.push_back(std::move(o));
    }
    if (out.front().metric != t.metric || out.front().maximize != t.maximize)
      bad_field(at + "[0]", "must be the step's objective (tune.metric, tune.maximize)");
    return out;
  }
  static RetryPolicy retries(const Json& j, const std::string& at) {
    object(j, at);
    RetryPolicy r;
    r.limit = static_cast<int>(whole(j, at, "limit", 0, 1000));
    r.backoff_seconds = number(j, at, "backoff_seconds", 0, 1e9);
    r.factor = number(j, at, "factor", 0, 1e9);
    r.max_backoff_seconds = number(j, at, "max_backoff_seconds", 0, 1e9);
    r.on.clear();
    const auto& known = failure_classes();
    for (const auto& c : names(field(j, at, "on"), at + ".on")) {
      if (std::find(known.begin(), known.end(), c) == known.end()) bad_field(at + ".on", "unknown failure class '" + c + "'");
      r.on.insert(c);
    }
    return r;
  }

  const PluginCatalog& catalog_;
};

}  // namespace

Json tuning_step_json(const PlannedStep& step) {
  const TuneSpec& t = *step.spec.tune;
  Json out = step_json(step);
  out["tune"] = {{"tuner", t.tuner},
                 {"metric", t.metric},
                 {"maximize", t.maximize},
                 {"space", t.space},
                 {"settings", t.settings},
                 {"max_trials", t.max_trials},
                 {"parallel_trials", t.parallel_trials},
                 {"max_failed_trials", t.max_failed_trials},
                 {"seed", t.seed}};
  if (!t.early_stopping.is_null()) out["tune"]["early_stopping"] = t.early_stopping;
  if (!t.trial.empty()) out["tune"]["trial"] = t.trial;
  if (!t.objectives.empty()) out["tune"]["objectives"] = t.tuner_config()["objectives"];  // [{metric, goal}]
  out["trial_steps"] = Json::array();
  for (const auto& part : step.trial_steps) out["trial_steps"].push_back(step_json(part));
  return out;
}

std::map<std::string, InputWire> tuning_step_inputs(const PlannedStep& step) {
  std::map<std::string, InputWire> inputs = step.spec.inputs;
  const auto is_part = [&](const std::string& name) {
    return std::any_of(step.trial_steps.begin(), step.trial_steps.end(),
                       [&](const PlannedStep& p) { return p.spec.name == name; });
  };
  const auto read = [&](const InputWire& wire) {
    return std::any_of(inputs.begin(), inputs.end(), [&](const auto& in) {
      return in.second.step == wire.step && in.second.output == wire.output;
    });
  };
  // "<part>-<input>" cannot clash with the step's own inputs: input names are
  // identifiers (no '-'), in the spec as in a request (TuningStepReader).
  for (const auto& part : step.trial_steps)
    for (const auto& [name, wire] : part.spec.inputs)
      if (!is_part(wire.step) && !read(wire)) inputs.emplace(part.spec.name + "-" + name, wire);
  return inputs;
}

PlannedStep tuning_step_from_json(const Json& json, const PluginCatalog& catalog) {
  try {
    TuningStepReader reader(catalog);
    PlannedStep planned = reader.step(json, "step");
    planned.upstream.clear();  // they ran in other pods
    if (!json.is_object() || !json.contains("tune")) bad_field("tune", "is missing (not a tuning step's request)");
    reader.tune(json["tune"], planned);
    const Json& parts = json.contains("trial_steps") ? json["trial_steps"] : Json::array();
    if (!parts.is_array() || parts.size() > kMaxTuningRequestSteps)
      bad_field("trial_steps", "must be a list of at most " + std::to_string(kMaxTuningRequestSteps) + " steps");
    for (size_t i = 0; i < parts.size(); ++i) {
      PlannedStep part = reader.step(parts[i], "trial_steps[" + std::to_string(i) + "]");
      if (part.spec.component.empty()) bad_field("trial_steps[" + std::to_string(i) + "].component", "is missing");
      planned.spec.tune->trial_steps.push_back(part.spec);
      planned.trial_steps.push_back(std::move(part));
    }
    if (planned.trial_steps.empty() && planned.spec.component.empty())
      bad_field("step.component", "a tuning step without trial steps needs its trial component");
    for (const auto& part : planned.trial_steps)
      for (const auto& up : part.upstream)
        if (std::none_of(planned.trial_steps.begin(), planned.trial_steps.end(),
                         [&](const PlannedStep& p) { return p.spec.name == up; }))
          bad_field("trial_steps." + part.spec.name + ".upstream", "'" + up + "' is not a step of the trial");
    return planned;
  } catch (const Json::exception& e) {
    throw TuningRequestError("tuning: " + excerpt_text(e.what(), 120));
  }
}

}  // namespace kiln::host

// Validation of a parsed pipeline against the plugin catalog, and the run
// order. Every check records a diagnostic and goes on, so the user sees all
// problems at once.
#include <kiln/host/component_file.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/placeholders.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/suggest.hpp>
#include <kiln/host/yaml_json.hpp>

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>
#include <tuple>
#include <variant>

namespace kiln::host {

const PlannedStep* Plan::find(const std::string& name) const {
  for (const auto& s : steps)
    if (s.spec.name == name) return &s;
  return nullptr;
}

namespace {

SourcePos shifted(SourcePos pos, size_t column) {
  pos.column += static_cast<int>(column) - 1;
  return pos;
}

// The value type an expression has when it is one reference, if known.
struct TypeInfo {
  std::optional<ValueType> type;
};

class Validator {
 public:
  Validator(PipelineSpec& spec, const PluginCatalog& catalog, std::vector<Diagnostic>& diagnostics)
      : spec_(spec), catalog_(catalog), diagnostics_(diagnostics) {}

  std::vector<PlannedStep> run() {
    check_duplicate_names();
    std::vector<PlannedStep> planned;
    for (auto* list : {&spec_.steps, &spec_.finally_steps})
      for (const auto& step : *list) {
        bind_component(step, step.name);
        if (step.tune)
          for (const auto& part : step.tune->trial_steps) bind_component(part, part_key(step, part.name));
      }
    for (auto* list : {&spec_.steps, &spec_.finally_steps})
      for (const auto& step : *list) planned.push_back(check_step(step));
    return order(std::move(planned));
  }

 private:
  void error(const SourcePos& pos, const std::string& message) { diagnostics_.push_back({pos, message}); }

  void check_duplicate_names() {
    std::map<std::string, SourcePos> seen;
    for (auto* list : {&spec_.steps, &spec_.finally_steps})
      for (const auto& step : *list) {
        const auto [it, fresh] = seen.emplace(step.name, step.pos);
        if (!fresh)
          error(step.pos, "duplicate step name '" + step.name + "' (first defined at " + it->second.str() + ")");
      }
  }

  // A trial template's step is bound under TUNING/PART: its name is only
  // unique within the template.
  static std::string part_key(const StepSpec& tuning, const std::string& part) { return tuning.name + "/" + part; }

  void bind_component(const StepSpec& step, const std::string& key) {
    if (step.component.empty() || bound_.count(key)) return;
    if (!step.version_range.empty() && !VersionRange::parse(step.version_range)) {
      error(step.component_pos, "'" + step.version_range + "' is not a version range (try ^1.2, ~1.2.3, >=1.0 <2)");
      return;
    }
    if (is_component_file(step.component)) return bind_component_file(step, key);
    const auto* found = catalog_.find(step.component, step.version_range);
    if (found != nullptr) {
      bound_[key] = *found;
      return;
    }
    const std::string versions = catalog_.versions_of(step.component);
    if (!versions.empty())
      error(step.component_pos, "no version of component '" + step.component + "' matches '" + step.version_range +
                                    "' (installed: " + versions + ")");
    else
      error(step.component_pos,
            "unknown component '" + step.component + "'" + did_you_mean(step.component, catalog_.component_names()) +
                "; 'kiln plugins list' shows what is installed; to install it from a registry: "
                "kiln plugin install " +
                step.component + (step.version_range.empty() ? "" : "@'" + step.version_range + "'") +
                " --registry URL");
  }

  // `component: ./NAME.yaml`: a component file beside the pipeline (its
  // directory anchors the path), its problems at their own file:line:col.
  void bind_component_file(const StepSpec& step, const std::string& key) {
    if (!step.version_range.empty())
      error(step.component_pos, "a component file has no version range: remove '@" + step.version_range + "'");
    const std::filesystem::path path = std::filesystem::path(spec_.file).parent_path() / step.component;
    try {
      ComponentFile component = parse_component_file(path);
      bound_[key] = CatalogComponent{std::move(component.manifest), component.path, "ok", component.digest,
                                     std::move(component.file_digests)};
    } catch (const SpecError& e) {
      error(step.component_pos, "component file '" + path.string() + "' has problems (each at its own file:line:col)");
      for (const auto& d : e.diagnostics()) diagnostics_.push_back(d);
    }
  }

  const ComponentManifest* manifest_of(const std::string& step) const {
    const auto it = bound_.find(step);
    return it == bound_.end() ? nullptr : &it->second.manifest;
  }

  // While a trial template's steps are checked: a wire or `after` naming
  // one of them means that step of the same trial (it shadows a pipeline
  // step of the same name).
  struct TrialScope {
    const StepSpec* tuning = nullptr;
    std::set<std::string> parts;
  };

  const StepSpec* find_source(const std::string& name) const {
    if (scope_ && scope_->parts.count(name))
      for (const auto& part : scope_->tuning->tune->trial_steps)
        if (part.name == name) return &part;
    return spec_.find_step(name);
  }

  const ComponentManifest* source_manifest(const std::string& name) const {
    if (scope_ && scope_->parts.count(name)) return manifest_of(part_key(*scope_->tuning, name));
    return manifest_of(name);
  }

  // An output artifact of a step: for a trial template, of its last step
  // that has one of that name (the best trial's artifacts are the tuning step's).
  const PortSpec* find_output_of(const StepSpec& source, const std::string& output) const {
    if (!source.tune || source.tune->trial_steps.empty()) {
      const auto* manifest = source_manifest(source.name);
      return manifest == nullptr ? nullptr : manifest->find_output(output);
    }
    const PortSpec* found = nullptr;
    for (const auto& part : source.tune->trial_steps)
      if (const auto* manifest = manifest_of(part_key(source, part.name)))
        if (const auto* port = manifest->find_output(output)) found = port;
    return found;
  }

  std::vector<std::string> output_names_of(const StepSpec& source) const {
    std::vector<std::string> names;
    const auto add = [&](const ComponentManifest* manifest) {
      if (manifest != nullptr)
        for (const auto& o : manifest->outputs) names.push_back(o.name);
    };
    if (!source.tune || source.tune->trial_steps.empty())
      add(source_manifest(source.name));
    else
      for (const auto& part : source.tune->trial_steps) add(manifest_of(part_key(source, part.name)));
    return names;
  }

  std::vector<std::string> step_names() const {
    std::vector<std::string> names;
    for (auto* list : {&spec_.steps, &spec_.finally_steps})
      for (const auto& s : *list) names.push_back(s.name);
    return names;
  }

  std::vector<std::string> param_names() const {
    std::vector<std::string> names;
    for (const auto& p : spec_.parameters) names.push_back(p.spec.name);
    return names;
  }

  // Checks a reference used by `step`; records upstream steps; returns its type when known.
  TypeInfo check_reference(const StepSpec& step, const Expression::ReferenceUse& use, const SourcePos& pos,
                           std::set<std::string>& upstream) {
    if (const auto* problem = std::get_if<ReferenceError>(&use.binding)) {
      if (problem->problem() == ReferenceError::Problem::UnknownRunField && !step.is_finally)
        error(pos, "'" + use.text + "' is only defined in finally steps");
      else
        error(pos, problem->what());
      return {};
    }
    const Reference& ref = std::get<Reference>(use.binding);
    switch (ref.kind) {
      case Reference::Kind::Item:
        if (!step.for_each) error(pos, "'item' is only defined in a step with for_each");
        return {};
      case Reference::Kind::Param:
        if (const auto* p = spec_.find_parameter(ref.name)) return {p->spec.type};
        error(pos, "unknown pipeline parameter '" + ref.name + "'" + did_you_mean(ref.name, param_names()));
        return {};
      case Reference::Kind::RunStatus:
      case Reference::Kind::RunId:
      case Reference::Kind::RunName:
      case Reference::Kind::RunFailedSteps:
        if (!step.is_finally) error(pos, "'" + use.text + "' is only defined in finally steps");
        return {ref.kind == Reference::Kind::RunFailedSteps ? ValueType::List : ValueType::String};
      case Reference::Kind::PipelineDir:
        return {ValueType::String};
      case Reference::Kind::StepOutput:
        return check_step_reference(step, ref, pos, upstream);
    }
    return {};
  }

  TypeInfo check_step_reference(const StepSpec& step, const Reference& ref, const SourcePos& pos,
                                std::set<std::string>& upstream) {
    const std::string& target = ref.step;
    const std::string& output = ref.output;
    const StepSpec* other = spec_.find_step(target);
    if (other == nullptr) {
      error(pos, "unknown step '" + target + "'" + did_you_mean(target, step_names()));
      return {};
    }
    if (!check_dependency(step, *other, pos)) return {};
    upstream.insert(target);
    if (other->tune) return check_tuning_output(*other, output, pos);
    const auto* manifest = manifest_of(target);
    if (manifest == nullptr) return {};
    const auto* out = manifest->find_output_parameter(output);
    if (out == nullptr) {
      std::vector<std::string> names;
      for (const auto& o : manifest->output_parameters) names.push_back(o.name);
      error(pos, "step '" + target + "' (" + manifest->name + ") has no output parameter '" + output + "'" +
                     did_you_mean(output, names));
      return {};
    }
    if (other->for_each) return {ValueType::List};  // a loop collects one value per item
    return {parse_value_type(out->type)};
  }

  // steps.T.outputs.NAME of tuning step T: best_parameters (object),
  // best_value (float), best_trial (int), best_<space parameter>, and for a
  // multi-objective step pareto_front (list).
  TypeInfo check_tuning_output(const StepSpec& tuning, const std::string& output, const SourcePos& pos) {
    if (output == "best_parameters") return {ValueType::Object};
    if (output == "best_value") return {ValueType::Float};
    if (output == "best_trial") return {ValueType::Int};
    const bool several = !tuning.tune->objectives.empty();
    if (several && output == kParetoFrontOutput) return {ValueType::List};  // [{trial, values, parameters}]
    std::vector<std::string> names = tuning_output_parameters();
    if (several) names.push_back(kParetoFrontOutput);
    for (const auto& item : tuning.tune->space.items()) names.push_back("best_" + item.key());
    if (output.rfind("best_", 0) == 0 && tuning.tune->space.contains(output.substr(5))) {
      const Json& def = tuning.tune->space[output.substr(5)];
      const std::string type = def.is_object() ? def.value("type", "") : "";
      if (type == "int") return {ValueType::Int};
      if (type == "uniform" || type == "log_uniform") return {ValueType::Float};
      return {};  // categorical: the type of the chosen value
    }
    error(pos,
          "tuning step '" + tuning.name + "' has no output parameter '" + output + "'" + did_you_mean(output, names));
    return {};
  }

  // The `tune:` block against the catalog and the trial component.
  void check_tune(const StepSpec& step, const ComponentManifest* trial, PlannedStep& planned) {
    const TuneSpec& tune = *step.tune;
    if (!tune.tuner.empty()) {
      const auto* found = catalog_.find(tune.tuner);
      if (found == nullptr)
        error(tune.tuner_pos, "unknown tuner '" + tune.tuner + "'" +
                                  did_you_mean(tune.tuner, catalog_.component_names()) +
                                  "; the built-in ones are tune.random, tune.grid, tune.tpe, tune.asha and tune.hyperband");
      else if (found->manifest.kind != "tune")
        error(tune.tuner_pos,
              "component '" + tune.tuner + "' is not a tuner (its kind is " + found->manifest.kind + ", not tune)");
      else
        planned.tuner = *found;
    }
    if (trial == nullptr) return;
    std::vector<std::string> names;
    for (const auto& p : trial->parameters) names.push_back(p.name);
    for (const auto& item : tune.space.items())
      if (trial->find_parameter(item.key()) == nullptr)
        error(tune.position_of("space." + item.key()), "space parameter '" + item.key() +
                                                           "' is not a parameter of the trial component '" +
                                                           trial->name + "'" + did_you_mean(item.key(), names));
  }

  // A trial template's steps, with the tuning step's parameters and inputs
  // merged into every step that declares them (the tuning step's values
  // win, as over any template). What each step reads from outside the trial
  // becomes the tuning step's dependency; what it reads from its siblings,
  // the step's own.
  void check_trial_steps(const StepSpec& tuning, PlannedStep& planned) {
    TrialScope scope{&tuning, {}};
    for (const auto& part : tuning.tune->trial_steps) scope.parts.insert(part.name);
    std::set<std::string> used;
    for (const auto& part : tuning.tune->trial_steps) {
      PlannedStep planned_part;
      planned_part.spec = part;
      const auto bound = bound_.find(part_key(tuning, part.name));
      if (bound == bound_.end()) continue;  // unknown component: reported by bind_component
      planned_part.component = bound->second;
      const ComponentManifest& manifest = bound->second.manifest;
      for (const auto& [name, value] : tuning.parameters)
        if (manifest.find_parameter(name) != nullptr) planned_part.spec.parameters[name] = value, used.insert(name);
      for (const auto& [name, wire] : tuning.inputs)
        if (manifest.find_input(name) != nullptr) planned_part.spec.inputs[name] = wire, used.insert("input " + name);
      for (const auto& item : tuning.tune->space.items())
        if (manifest.find_parameter(item.key()) != nullptr) used.insert("space " + item.key());
      std::set<std::string> reads;
      scope_ = &scope;
      check_parameters(planned_part.spec, manifest, reads);
      check_inputs(planned_part.spec, manifest, reads);
      check_after(planned_part.spec, reads);
      scope_ = nullptr;
      for (const auto& name : reads)
        (scope.parts.count(name) ? planned_part.upstream : planned.data_upstream).insert(name);
      planned.trial_steps.push_back(std::move(planned_part));
    }
    if (planned.trial_steps.size() != tuning.tune->trial_steps.size()) return;
    const std::string where = " of any step of trial template '" + tuning.tune->trial + "'";
    for (const auto& [name, value] : tuning.parameters)
      if (!used.count(name)) error(value.pos, "'" + name + "' is not a parameter" + where);
    for (const auto& [name, wire] : tuning.inputs)
      if (!used.count("input " + name)) error(wire.pos, "'" + name + "' is not an input" + where);
    for (const auto& item : tuning.tune->space.items())
      if (!used.count("space " + item.key()))
        error(tuning.tune->position_of("space." + item.key()),
              "space parameter '" + item.key() + "' is not a parameter" + where);
    check_trial_cycle(tuning, planned.trial_steps);
  }

  void check_trial_cycle(const StepSpec& tuning, const std::vector<PlannedStep>& parts) {
    std::set<std::string> done;
    for (size_t round = 0; round < parts.size(); ++round)
      for (const auto& part : parts)
        if (std::includes(done.begin(), done.end(), part.upstream.begin(), part.upstream.end()))
          done.insert(part.spec.name);
    if (done.size() < parts.size())
      error(tuning.tune->trial_pos, "the steps of trial template '" + tuning.tune->trial + "' form a cycle");
  }

  bool check_dependency(const StepSpec& step, const StepSpec& other, const SourcePos& pos) {
    if (other.name == step.name) {
      error(pos, "step '" + step.name + "' depends on itself");
      return false;
    }
    if (!step.is_finally && other.is_finally) {
      error(pos, "step '" + step.name + "' cannot depend on finally step '" + other.name + "'");
      return false;
    }
    if (step.is_finally && !other.is_finally) {
      error(pos, "finally step '" + step.name + "' may depend only on other finally steps, not on '" + other.name +
                     "' (use run.status and run.failed_steps)");
      return false;
    }
    return true;
  }

  // Checks each placeholder of `value`. Returns the value's type when it is
  // known from the placeholders: the referenced type for "{{ ref }}" alone,
  // string for text with placeholders spliced in; nothing for a literal.
  TypeInfo check_value(const StepSpec& step, const ValueSpec& value, std::set<std::string>& upstream) {
    std::vector<Placeholder> placeholders;
    try {
      placeholders = find_placeholders(value.value);
    } catch (const ExpressionError& e) {
      error(shifted(value.pos, e.column()), e.what());
      return {};
    }
    std::vector<TypeInfo> types;
    for (const auto& p : placeholders)
      for (const auto& use : p.expression.reference_uses())
        types.push_back(check_reference(step, use, shifted(value.pos, p.column + use.column - 1), upstream));
    if (placeholders.empty() || !value.value.is_string()) return {};
    const auto whole = whole_placeholder(value.value.get<std::string>());
    if (!whole) return {ValueType::String};
    const auto& expression = placeholders.front().expression;
    const bool bare_reference = expression.references().size() == 1 && trimmed(*whole) == expression.references()[0];
    return bare_reference ? types.front() : TypeInfo{};
  }

  static std::string trimmed(const std::string& s) {
    const auto first = s.find_first_not_of(' ');
    return first == std::string::npos ? "" : s.substr(first, s.find_last_not_of(' ') - first + 1);
  }

  static bool has_placeholders(const Json& value) {
    try {
      return !find_placeholders(value).empty();
    } catch (const ExpressionError&) {
      return true;  // reported by check_value
    }
  }

  void check_parameters(const StepSpec& step, const ComponentManifest& manifest, std::set<std::string>& upstream) {
    std::vector<std::string> names;
    for (const auto& p : manifest.parameters) names.push_back(p.name);
    for (const auto& [name, value] : step.parameters) {
      const auto* p = manifest.find_parameter(name);
      const auto info = check_value(step, value, upstream);
      if (p == nullptr) {
        error(value.pos,
              "component '" + manifest.name + "' has no parameter '" + name + "'" + did_you_mean(name, names));
        continue;
      }
      if (!has_placeholders(value.value)) {
        if (const auto problem = check_parameter_value(*p, value.value))
          error(value.pos, "parameter '" + name + "' of step '" + step.name + "': " + *problem);
      } else if (info.type && !types_compatible(*info.type, p->type)) {
        error(value.pos, "parameter '" + name + "' of step '" + step.name + "' expects " + value_type_name(p->type) +
                             ", but the value is a " + value_type_name(*info.type));
      }
    }
    for (const auto& p : manifest.parameters)
      if (p.required() && !step.parameters.count(p.name) && !(step.tune && step.tune->space.contains(p.name)) &&
          !(scope_ && scope_->tuning->tune->space.contains(p.name)))
        error(step.pos, "step '" + step.name + "' is missing required parameter '" + p.name + "' of component '" +
                            manifest.name + "'");
  }

  static bool types_compatible(ValueType given, ValueType wanted) {
    return given == wanted || (given == ValueType::Int && wanted == ValueType::Float);
  }

  void check_inputs(const StepSpec& step, const ComponentManifest& manifest, std::set<std::string>& upstream) {
    std::vector<std::string> names;
    for (const auto& i : manifest.inputs) names.push_back(i.name);
    for (const auto& [name, wire] : step.inputs) {
      const auto* input = manifest.find_input(name);
      if (input == nullptr)
        error(wire.pos, "component '" + manifest.name + "' has no input '" + name + "'" + did_you_mean(name, names));
      const StepSpec* source = find_source(wire.step);
      if (source == nullptr) {
        error(wire.pos, "input '" + name + "' is wired to unknown step '" + wire.step + "'" +
                            did_you_mean(wire.step, step_names()));
        continue;
      }
      if (!check_dependency(step, *source, wire.pos)) continue;
      upstream.insert(wire.step);
      if (source->tune && wire.output == kTrialsOutput) {  // a tuning step's own artifact
        if (input != nullptr && input->type != kTrialsArtifactType && input->type != "Any")
          error(wire.pos, "input '" + name + "' of step '" + step.name + "' takes " + input->type + ", but " +
                              wire.step + ".outputs.trials is " + kTrialsArtifactType);
        continue;
      }
      const bool template_trial = source->tune && !source->tune->trial_steps.empty();
      if (!template_trial && source_manifest(wire.step) == nullptr) continue;  // an unknown component: reported there
      const std::vector<std::string> outputs = output_names_of(*source);
      const auto* output = find_output_of(*source, wire.output);
      if (output == nullptr) {
        const std::string what = template_trial ? "trial template '" + source->tune->trial + "'"
                                                : source_manifest(wire.step)->name;
        error(wire.pos, "step '" + wire.step + "' (" + what + ") has no output '" + wire.output + "'" +
                            did_you_mean(wire.output, outputs));
        continue;
      }
      if (input != nullptr && input->type != output->type && input->type != "Any" && output->type != "Any")
        error(wire.pos, "input '" + name + "' of step '" + step.name + "' takes " + input->type + ", but " + wire.step +
                            ".outputs." + wire.output + " is " + output->type);
    }
    for (const auto& input : manifest.inputs)
      if (!input.optional && !step.inputs.count(input.name))
        error(step.pos,
              "step '" + step.name + "' does not wire required input '" + input.name + "' (" + input.type + ")");
  }

  void check_after(const StepSpec& step, std::set<std::string>& upstream) {
    for (const auto& [name, pos] : step.after) {
      const StepSpec* other = find_source(name);
      if (other == nullptr) {
        error(pos, "'after' names unknown step '" + name + "'" + did_you_mean(name, step_names()));
        continue;
      }
      if (check_dependency(step, *other, pos)) upstream.insert(name);
    }
  }

  std::optional<Expression> check_when(const StepSpec& step, std::set<std::string>& upstream) {
    if (!step.when) return std::nullopt;
    const std::string text = step.when->value.get<std::string>();
    try {
      Expression expression = Expression::parse(text);
      for (const auto& use : expression.reference_uses())
        check_reference(step, use, shifted(step.when->pos, use.column), upstream);
      return expression;
    } catch (const ExpressionError& e) {
      error(shifted(step.when->pos, e.column()), std::string("in 'when': ") + e.what());
      return std::nullopt;
    }
  }

  void check_for_each(const StepSpec& step, std::set<std::string>& upstream) {
    if (!step.for_each) return;
    const Json& v = step.for_each->value;
    if (v.is_array()) {
      if (v.size() > kMaxForEachItems)
        error(step.for_each->pos, "'for_each' has " + std::to_string(v.size()) + " items, more than the limit of " +
                                      std::to_string(kMaxForEachItems));
      check_value(step, *step.for_each, upstream);
      return;
    }
    if (!v.is_string() || !whole_placeholder(v.get<std::string>())) {
      error(step.for_each->pos, "'for_each' must be a list or one reference to a list, such as \"{{ params.names }}\"");
      return;
    }
    const auto info = check_value(step, *step.for_each, upstream);
    if (info.type && *info.type != ValueType::List)
      error(step.for_each->pos,
            "'for_each' needs a list, but the reference is a " + std::string(value_type_name(*info.type)));
  }

  PlannedStep check_step(const StepSpec& step) {
    PlannedStep planned;
    planned.spec = step;
    const auto* manifest = manifest_of(step.name);
    if (manifest != nullptr) {
      planned.component = bound_.at(step.name);
      check_parameters(step, *manifest, planned.data_upstream);
      check_inputs(step, *manifest, planned.data_upstream);
    }
    planned.when = check_when(step, planned.data_upstream);
    check_for_each(step, planned.data_upstream);
    if (step.tune) check_tune(step, manifest, planned);
    if (step.tune && !step.tune->trial_steps.empty()) check_trial_steps(step, planned);
    check_after(step, planned.upstream);
    planned.upstream.insert(planned.data_upstream.begin(), planned.data_upstream.end());
    return planned;
  }

  // Depth-first topological order; a back edge is a cycle, reported with its path.
  std::vector<PlannedStep> order(std::vector<PlannedStep> planned) {
    std::map<std::string, PlannedStep*> by_name;
    for (auto& p : planned) by_name[p.spec.name] = &p;
    std::map<std::string, int> state;  // 0 new, 1 on the stack, 2 done
    std::vector<std::string> stack, sorted;
    bool cyclic = false;
    std::function<void(const std::string&)> visit = [&](const std::string& name) {
      state[name] = 1;
      stack.push_back(name);
      for (const auto& up : by_name[name]->upstream) {
        if (!by_name.count(up)) continue;
        if (state[up] == 1) {
          const auto from = std::find(stack.begin(), stack.end(), up);
          std::string cycle;
          for (auto it = from; it != stack.end(); ++it) cycle += *it + " -> ";
          error(by_name[up]->spec.pos, "steps form a cycle: " + cycle + up);
          cyclic = true;
        } else if (state[up] == 0) {
          visit(up);
        }
      }
      stack.pop_back();
      state[name] = 2;
      sorted.push_back(name);
    };
    for (auto& p : planned)
      if (state[p.spec.name] == 0) visit(p.spec.name);
    if (cyclic) return planned;
    std::vector<PlannedStep> out;
    for (const bool finally_pass : {false, true})
      for (const auto& name : sorted)
        if (by_name[name]->spec.is_finally == finally_pass) out.push_back(std::move(*by_name[name]));
    return out;
  }

  PipelineSpec& spec_;
  const PluginCatalog& catalog_;
  std::vector<Diagnostic>& diagnostics_;
  std::map<std::string, CatalogComponent> bound_;  // by step name; a trial's steps by TUNING/PART
  const TrialScope* scope_ = nullptr;              // set while a trial template's steps are checked
};

Json resolve_pipeline_parameters(const PipelineSpec& spec, const Json& overrides, const std::string& origin,
                                 std::vector<Diagnostic>& diagnostics) {
  Json resolved = Json::object();
  std::vector<std::string> names;
  for (const auto& p : spec.parameters) names.push_back(p.spec.name);
  const SourcePos cli{origin, 0, 0};
  for (const auto& item : overrides.items())
    if (spec.find_parameter(item.key()) == nullptr)
      diagnostics.push_back(
          {cli, "the pipeline has no parameter '" + item.key() + "'" + did_you_mean(item.key(), names)});
  for (const auto& p : spec.parameters) {
    if (overrides.contains(p.spec.name)) {
      const Json& value = overrides[p.spec.name];
      if (const auto problem = check_parameter_value(p.spec, value))
        diagnostics.push_back({cli, "parameter '" + p.spec.name + "': " + *problem});
      resolved[p.spec.name] = value;
    } else if (p.spec.default_value) {
      resolved[p.spec.name] = *p.spec.default_value;
    } else {
      diagnostics.push_back({p.pos, "pipeline parameter '" + p.spec.name + "' has no default; set it with --param " +
                                        p.spec.name + "=VALUE"});
    }
  }
  return resolved;
}

}  // namespace

Json parse_parameter_text(const ParamSpec& spec, const std::string& text) {
  if (spec.type == ValueType::String) return text;
  Json value;
  try {
    value = parse_yaml_value(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("'" + text + "' is not a valid " + value_type_name(spec.type) + ": " + e.what());
  }
  if (!has_value_type(value, spec.type))
    throw std::invalid_argument("'" + text + "' is not a valid " + std::string(value_type_name(spec.type)));
  return value;
}

Plan plan_pipeline(PipelineSpec spec, const PluginCatalog& catalog, const Json& overrides,
                   const std::string& overrides_origin) {
  std::vector<Diagnostic> diagnostics;
  Plan plan;
  plan.parameters = resolve_pipeline_parameters(spec, overrides, overrides_origin, diagnostics);
  plan.steps = Validator(spec, catalog, diagnostics).run();
  if (!diagnostics.empty()) {
    std::stable_sort(diagnostics.begin(), diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.pos.file, a.pos.line, a.pos.column) < std::tie(b.pos.file, b.pos.line, b.pos.column);
    });
    throw SpecError(std::move(diagnostics));
  }
  plan.spec = std::move(spec);
  return plan;
}

}  // namespace kiln::host

// Plan → PipelineIr: the target-neutral form `kiln compile` emits from
// (compile.hpp). What a target cannot express is refused here, at the
// position of the feature, never dropped.
#include <kiln/host/compile.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/placeholders.hpp>
#include <kiln/host/tuning_request.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

namespace kiln::host {

const char* compile_target_name(CompileTarget target) {
  return target == CompileTarget::Argo ? "argo" : "kfp";
}

std::optional<CompileTarget> parse_compile_target(const std::string& name) {
  if (name == "argo") return CompileTarget::Argo;
  if (name == "kfp") return CompileTarget::Kfp;
  return std::nullopt;
}

namespace {
const std::vector<std::pair<PodValueKind, const char*>>& value_kind_names() {
  static const std::vector<std::pair<PodValueKind, const char*>> names{
      {PodValueKind::String, "string"},       {PodValueKind::Json, "json"},
      {PodValueKind::JsonList, "json_list"},  {PodValueKind::RunStatus, "argo_status"},
      {PodValueKind::KfpStatus, "kfp_status"}, {PodValueKind::ArgoFailures, "argo_failures"}};
  return names;
}
}  // namespace

const char* pod_value_kind_name(PodValueKind kind) {
  for (const auto& [k, name] : value_kind_names())
    if (k == kind) return name;
  return "json";
}

std::optional<PodValueKind> parse_pod_value_kind(const std::string& name) {
  for (const auto& [kind, n] : value_kind_names())
    if (name == n) return kind;
  return std::nullopt;
}

const IrTask* PipelineIr::find(const std::string& name) const {
  for (const auto& t : tasks)
    if (t.name == name) return &t;
  return nullptr;
}

std::string target_task_name(const std::string& step) {
  std::string name;
  for (const char c : step) {
    const auto u = static_cast<unsigned char>(c);
    name += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '-';
  }
  return name;
}

std::string pod_request_argument(const Json& request) {
  const std::string text = request.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    // Compact JSON has "{{" only inside strings (an object starts with a key).
    if (text[i] == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      out += "{\\u007b";
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

namespace {

constexpr const char* kWhenSuffix = "-when";

class IrBuilder {
 public:
  IrBuilder(const Plan& plan, const CompileOptions& options) : plan_(plan), options_(options) {}

  PipelineIr build() {
    PipelineIr ir;
    ir.name = plan_.spec.name;
    ir.description = plan_.spec.description;
    ir.file = plan_.spec.file;
    ir.options = options_;
    ir.timeout_seconds = plan_.spec.timeout_seconds;
    ir.fail_fast = plan_.spec.failure_policy != "continue";
    if (!ir.fail_fast && kfp())
      error(plan_.spec.failure_policy_pos,
            "options.failure_policy: 'continue' cannot be expressed in kfp (a KFP DAG stops scheduling after a "
            "failed task); compile it for argo (failFast: false) or use 'stop'");
    for (const auto& p : plan_.spec.parameters)
      ir.parameters.push_back({p.spec.name, p.spec.type, plan_.parameters.value(p.spec.name, Json()),
                               p.spec.description});
    for (const auto& step : plan_.steps) add_step(step, ir.tasks);
    if (!problems_.empty()) throw SpecError(problems_);
    ir.notes = std::move(notes_);
    return ir;
  }

 private:
  bool kfp() const { return options_.target == CompileTarget::Kfp; }
  const char* target() const { return compile_target_name(options_.target); }
  void error(const SourcePos& pos, const std::string& message) { problems_.push_back({pos, message}); }

  std::string task_name(const PlannedStep& step, const std::string& suffix = "") {
    const std::string name = target_task_name(step.spec.name) + suffix;
    const auto [it, fresh] = names_.emplace(name, step.spec.name);
    if (!fresh && it->second != step.spec.name)
      error(step.spec.pos, "step '" + step.spec.name + "' and step '" + it->second + "' both become the " + target() +
                               " task '" + name + "' (names are lower case with '-'); rename one");
    return name;
  }

  // Refuses the step-level features no pod can have.
  void check_step(const PlannedStep& step) {
    const StepSpec& s = step.spec;
    if (s.tune) check_tuning(step);
    if (s.replicas > 1)
      error(s.pos, "distributed.replicas: a data-parallel step cannot be compiled to " + std::string(target()) +
                       " (its ranks rendezvous through kiln's process executor)");
    if (!kfp() && s.retries.limit > 0 && std::floor(s.retries.factor) != s.retries.factor)
      error(s.pos, "retries.factor: argo multiplies the backoff by a whole number, not " +
                       std::to_string(s.retries.factor));
    if (s.container.pids)
      error(s.pos, "resources.pids: " + std::string(target()) + " has no per-container process limit");
  }

  // A tuning step runs its search in one pod (tuning_request.hpp,
  // pod_tuning.hpp); what that pod's engine cannot do is refused here (the
  // planner already refuses a looped tuning step and trial steps with
  // `when:` or `for_each:`).
  void check_tuning(const PlannedStep& step) {
    const StepSpec& s = step.spec;
    const std::string to = std::string(" cannot be compiled to ") + target();
    const auto no_gpus = [&](const StepSpec& part) {
      if (part.container.gpus.value_or(0) > 0)
        error(part.gpus_pos, "resources.gpus: a tuning step's trials" + to +
                                 " with GPUs (its pod's engine hands out none; run it with kiln run --gpus)");
    };
    no_gpus(s);
    if (s.tune && s.tune->objectives.size() > kMaxTuningObjectives)
      error(s.tune->position_of("objectives"), "tune.objectives: a tuning step with more than " +
                                                   std::to_string(kMaxTuningObjectives) + " objectives" + to);
    for (const auto& part : step.trial_steps) {
      const StepSpec& p = part.spec;
      no_gpus(p);
      if (p.replicas > 1)
        error(p.pos, "distributed.replicas: a data-parallel trial step" + to +
                         " (its ranks rendezvous through kiln's process executor on one host)");
    }
  }

  // A tuning step's task: one pod running the whole search with kiln's
  // engine (pod_tuning.hpp). Its retries and timeout are the trials', as
  // under kiln run, so the pod itself is neither retried nor timed out.
  void fill_tuning_task(const PlannedStep& step, IrTask& task) {
    const StepSpec& s = step.spec;
    task.retries = RetryPolicy{};  // limit 0
    task.timeout_seconds.reset();
    const auto values_of = [&](const PlannedStep& part) {
      for (const auto& [name, value] : part.spec.parameters) collect_values(value.value, value.pos, step, task.values);
    };
    values_of(step);
    for (const auto& part : step.trial_steps) values_of(part);
    collect_values(s.tune->tuner_config(), s.tune->pos, step, task.values);
    for (const auto& [name, wire] : tuning_step_inputs(step)) {
      check_wire(step, name, wire);
      task.inputs.push_back({name, target_task_name(wire.step), wire.output});
    }
    std::set<std::string> outputs{kTrialsOutput};
    task.outputs.push_back(kTrialsOutput);
    const auto add_outputs = [&](const ComponentManifest& manifest) {
      for (const auto& o : manifest.outputs)
        if (outputs.insert(o.name).second) task.outputs.push_back(o.name);
    };
    if (step.trial_steps.empty()) add_outputs(step.component.manifest);
    for (const auto& part : step.trial_steps) add_outputs(part.component.manifest);
    for (const auto& item : s.tune->space.items()) task.output_parameters.push_back("best_" + item.key());
    for (const auto& name : tuning_output_parameters()) task.output_parameters.push_back(name);
    if (!s.tune->objectives.empty()) task.output_parameters.push_back(kParetoFrontOutput);  // as kiln run sets it
    task.request = request_base(step);
    task.request["tuning"] = tuning_step_json(step);
    // The trial component travels in "tuning" (its "component"): a request
    // naming one besides would be refused as two kinds of work (pod_request.cpp).
    task.request["outputs"] = task.outputs;
    task.request["output_parameters"] = task.output_parameters;
    task.request["values"] = value_kinds(task.values);
  }

  void check_wire(const PlannedStep& step, const std::string& name, const InputWire& wire) {
    const auto* producer = plan_.find(wire.step);
    if (producer && producer->spec.for_each)
      error(wire.pos, "inputs." + name + ": the artifacts of loop step '" + wire.step + "' cannot be compiled to " +
                          std::string(target()) + " (one artifact per item)");
    if (producer && producer->spec.is_finally != step.spec.is_finally)
      error(wire.pos, "inputs." + name + ": a finally step cannot read a step's artifact in " + std::string(target()));
  }

  // Notes the fields `kiln run`'s executors read and a pod does not, one per
  // field written (ExecutorFieldPositions): the step still compiles.
  void note_ignored_fields(const PlannedStep& step) {
    const StepSpec& s = step.spec;
    const std::string on = std::string(target()) + " pods";
    const auto note = [&](const SourcePos& at, const std::string& why) {
      if (at.line > 0) notes_.push_back({at, "step '" + s.name + "': " + why + "; ignored"});
    };
    const ExecutorFieldPositions& w = s.written;
    note(w.executor, "executor '" + s.executor + "' does not apply to " + on + " (every step runs as a pod)");
    note(w.image, "image '" + s.container.image + "' does not apply to " + on + " (every pod runs --image, '" +
                      options_.image + "')");
    note(w.network,
         "network '" + s.container.network + "' does not apply to " + on + " (a pod has the cluster's network)");
    note(w.user, "user does not apply to " + on + " (a pod runs as the image's user)");
    note(w.mounts, "mounts do not apply to " + on +
                       " (no host path is bound into a pod: what they name must be in the image)");
    note(w.slurm, "slurm options do not apply to " + on);
    if (!kfp() && s.cache)
      note(w.cache, "cache: true does not apply to argo pods (argo has no step cache: every step runs)");
  }

  PodValueKind kind_of(const Reference& ref, const SourcePos& pos, const PlannedStep& user) {
    switch (ref.kind) {
      case Reference::Kind::Param: {
        const auto* p = plan_.spec.find_parameter(ref.name);
        return p && p->spec.type == ValueType::String ? PodValueKind::String : PodValueKind::Json;
      }
      case Reference::Kind::StepOutput: {
        const auto* producer = plan_.find(ref.step);
        if (producer && producer->spec.is_finally != user.spec.is_finally)
          error(pos, "'" + ref.text() + "': a finally step cannot read a step's output in " + std::string(target()) +
                         " (its exit handler sees only the run's final status)");
        return producer && producer->spec.for_each ? PodValueKind::JsonList : PodValueKind::Json;
      }
      case Reference::Kind::RunStatus:
        return kfp() ? PodValueKind::KfpStatus : PodValueKind::RunStatus;
      case Reference::Kind::RunFailedSteps:
        if (kfp()) error(pos, "'run.failed_steps' cannot be expressed in kfp (an exit task sees one final status)");
        return PodValueKind::ArgoFailures;
      case Reference::Kind::RunId:
        return PodValueKind::String;
      default:
        return PodValueKind::Json;
    }
  }

  // The references `value`'s placeholders read, as pod values (pipeline.dir
  // and run.name are constants of the request).
  void collect_values(const Json& value, const SourcePos& pos, const PlannedStep& step, std::vector<IrValue>& values) {
    std::vector<Placeholder> placeholders;
    try {
      placeholders = find_placeholders(value);
    } catch (const ExpressionError&) {
      return;  // the plan already accepted it; nothing the pod reads
    }
    for (const auto& p : placeholders) add_uses(p.expression, pos, step, values);
  }

  void add_uses(const Expression& expression, const SourcePos& pos, const PlannedStep& step,
                std::vector<IrValue>& values) {
    for (const auto& use : expression.reference_uses()) {
      const auto* ref = std::get_if<Reference>(&use.binding);
      if (ref == nullptr || ref->kind == Reference::Kind::PipelineDir || ref->kind == Reference::Kind::RunName)
        continue;
      if (ref->kind == Reference::Kind::Item) {  // the loop's own value (IrTask::loop)
        saw_item_ = true;
        continue;
      }
      const bool seen = std::any_of(values.begin(), values.end(), [&](const IrValue& v) { return v.ref == *ref; });
      if (seen) continue;
      values.push_back({*ref, kind_of(*ref, pos, step), "v" + std::to_string(values.size())});
    }
  }

  Json request_base(const PlannedStep& step) const {
    return Json{{"kiln_pod", 1},
                {"pipeline", plan_.spec.name},
                {"step", step.spec.name},
                {"constants", {{"pipeline.dir", options_.pipeline_dir}, {"run.name", plan_.spec.name}}}};
  }

  static Json value_kinds(const std::vector<IrValue>& values) {
    Json kinds = Json::object();
    for (const auto& v : values) kinds[v.ref.text()] = pod_value_kind_name(v.kind);
    return kinds;
  }

  std::optional<IrLoop> loop_of(const PlannedStep& step) {
    const auto& for_each = step.spec.for_each;
    if (!for_each) return std::nullopt;
    IrLoop loop;
    loop.parallelism = step.spec.parallelism;
    if (for_each->value.is_array()) {
      const auto placeholders = find_placeholders(for_each->value);
      if (!placeholders.empty()) {
        error(for_each->pos, std::string("for_each: a literal list with placeholders cannot be compiled to ") +
                                 target() + "; give the list as one parameter (\"{{ params.items }}\")");
        return std::nullopt;
      }
      loop.items = for_each->value;
      return loop;
    }
    const auto whole = for_each->value.is_string() ? whole_placeholder(for_each->value.get<std::string>())
                                                   : std::nullopt;
    std::optional<Reference> ref;
    if (whole) {
      try {
        const auto first = whole->find_first_not_of(" \t"), last = whole->find_last_not_of(" \t");
        if (first != std::string::npos) ref = parse_reference(whole->substr(first, last - first + 1));
      } catch (const ReferenceError&) {
      }
    }
    if (!ref || (ref->kind != Reference::Kind::Param && ref->kind != Reference::Kind::StepOutput)) {
      error(for_each->pos, std::string("for_each: only a list, \"{{ params.X }}\" or \"{{ steps.S.outputs.O }}\" "
                                       "can be compiled to ") + target());
      return std::nullopt;
    }
    if (ref->kind == Reference::Kind::StepOutput) {
      const auto* producer = plan_.find(ref->step);
      if (producer && producer->spec.for_each)
        error(for_each->pos, "for_each over the collected output of loop step '" + ref->step +
                                 "' cannot be compiled to " + std::string(target()));
    }
    loop.source = ref;
    return loop;
  }

  void add_step(const PlannedStep& step, std::vector<IrTask>& tasks) {
    check_step(step);
    note_ignored_fields(step);
    const StepSpec& s = step.spec;
    IrTask task;
    task.name = task_name(step);
    task.step = s.name;
    task.pos = s.pos;
    task.is_finally = s.is_finally;
    task.loop = loop_of(step);
    task.retries = s.retries;
    task.timeout_seconds = s.timeout_seconds;
    task.memory_bytes = s.container.memory_bytes;
    task.cpus = s.container.cpus;
    task.gpus = s.container.gpus;
    task.cache = s.cache;
    for (const auto& up : step.upstream)
      (step.data_upstream.count(up) ? task.needs_success : task.needs_end).push_back(target_task_name(up));
    if (s.tune) {
      fill_tuning_task(step, task);
      if (step.when) task.gate = add_gate(step, tasks);
      tasks.push_back(std::move(task));
      return;
    }
    Json parameters = Json::object();
    for (const auto& [name, value] : s.parameters) {
      parameters[name] = value.value;
      collect_values(value.value, value.pos, step, task.values);
    }
    for (const auto& [name, wire] : s.inputs) {
      check_wire(step, name, wire);
      task.inputs.push_back({name, target_task_name(wire.step), wire.output});
    }
    for (const auto& o : step.component.manifest.outputs) task.outputs.push_back(o.name);
    for (const auto& o : step.component.manifest.output_parameters) task.output_parameters.push_back(o.name);
    if (kfp()) {
      static const std::set<std::string> pod_classes{"error", "crash", "timeout"};
      task.retries_in_pod = task.retries.limit > 0 &&
                            !std::includes(task.retries.on.begin(), task.retries.on.end(), pod_classes.begin(),
                                           pod_classes.end());
    }
    task.request = request_base(step);
    if (is_component_file(s.component)) {
      // A component file named by path: the pod's image has it on its plugin
      // path (kiln image build), where kiln step finds it by name, at exactly
      // the version planned here.
      task.request["component"] = step.component.manifest.name;
      task.request["version"] = "=" + step.component.manifest.version.str();
    } else {
      task.request["component"] = s.component;
      if (!s.version_range.empty()) task.request["version"] = s.version_range;
    }
    task.request["parameters"] = parameters;
    task.request["outputs"] = task.outputs;
    task.request["output_parameters"] = task.output_parameters;
    task.request["values"] = value_kinds(task.values);
    if (task.loop) task.request["values"]["item"] = pod_value_kind_name(PodValueKind::Json);
    if (task.timeout_seconds) task.request["timeout_seconds"] = *task.timeout_seconds;
    if (task.retries_in_pod) {
      const auto& r = task.retries;
      task.request["retries"] = {{"limit", r.limit},
                                 {"backoff_seconds", r.backoff_seconds},
                                 {"factor", r.factor},
                                 {"max_backoff_seconds", r.max_backoff_seconds},
                                 {"on", r.on}};
    }
    if (step.when) task.gate = add_gate(step, tasks);
    tasks.push_back(std::move(task));
  }

  // A `when:` as a condition task: kiln step evaluates it in a pod with
  // kiln's own expression language and writes true or false.
  std::string add_gate(const PlannedStep& step, std::vector<IrTask>& tasks) {
    const ValueSpec& when = *step.spec.when;
    IrTask gate;
    gate.kind = IrTaskKind::Condition;
    gate.name = task_name(step, kWhenSuffix);
    gate.step = step.spec.name;
    gate.pos = when.pos;
    gate.is_finally = step.spec.is_finally;
    saw_item_ = false;
    add_uses(*step.when, when.pos, step, gate.values);
    if (saw_item_)
      error(when.pos, "when: a condition on 'item' cannot be compiled to " + std::string(target()) +
                          " (the target decides a loop as a whole)");
    for (const auto& v : gate.values) {
      if (v.ref.kind == Reference::Kind::StepOutput) {
        const std::string producer = target_task_name(v.ref.step);
        if (std::find(gate.needs_success.begin(), gate.needs_success.end(), producer) == gate.needs_success.end())
          gate.needs_success.push_back(producer);
      }
    }
    gate.output_parameters = {"result"};
    gate.cache = false;
    gate.request = request_base(step);
    gate.request["condition"] = step.when->text();
    gate.request["values"] = value_kinds(gate.values);
    std::string name = gate.name;
    tasks.push_back(std::move(gate));
    return name;
  }

  const Plan& plan_;
  const CompileOptions& options_;
  std::vector<Diagnostic> problems_;
  std::vector<Diagnostic> notes_;
  std::map<std::string, std::string> names_;  // task name → its step
  bool saw_item_ = false;                     // add_uses met `item`
};

}  // namespace

PipelineIr build_pipeline_ir(const Plan& plan, const CompileOptions& options) {
  return IrBuilder(plan, options).build();
}

}  // namespace kiln::host

// PipelineIr → Kubeflow Pipelines v2 IR (PipelineSpec, schemaVersion 2.1.0),
// shaped as KFP's own compiler shapes it: a container component and
// executor per task, a DAG component per loop (parameterIterator) and one
// for the exit handler, conditions as triggerPolicy. docs/kubernetes.md.
#include <kiln/host/compile.hpp>

#include <cmath>
#include <cstdio>

#include "pod_command.hpp"

namespace kiln::host {
namespace {

using compile_detail::metadata_parameter;

constexpr const char* kExitHandler = "exit-handler-1";
const std::string kChannel = "pipelinechannel--";

std::string kfp_duration(double seconds) {
  char text[64];
  std::snprintf(text, sizeof text, "%.3fs", seconds);
  return text;
}

const char* parameter_type(ValueType type) {
  switch (type) {
    case ValueType::Int:
      return "NUMBER_INTEGER";
    case ValueType::Float:
      return "NUMBER_DOUBLE";
    case ValueType::Bool:
      return "BOOLEAN";
    case ValueType::List:
      return "LIST";
    case ValueType::Object:
      return "STRUCT";
    default:
      return "STRING";
  }
}

Json artifact_type() {
  return Json{{"artifactType", {{"schemaTitle", "system.Artifact"}, {"schemaVersion", "0.0.1"}}}};
}

std::string gate_channel(const IrTask& task) {
  return kChannel + task.gate + "-result";
}

class KfpEmitter {
 public:
  explicit KfpEmitter(const PipelineIr& ir) : ir_(ir) {
    for (const auto& t : ir_.tasks) has_finally_ |= t.is_finally;
  }

  std::vector<Json> emit() {
    Json root_tasks = Json::object(), main_tasks = Json::object();
    for (const auto& task : ir_.tasks) {
      const bool in_exit_handler = has_finally_ && !task.is_finally;
      Json& tasks = task.is_finally || !has_finally_ ? root_tasks : main_tasks;
      add_container(task);
      if (task.loop)
        tasks[task.name] = loop_task(task, in_exit_handler);
      else
        tasks[task.name] = component_task(task, "comp-" + task.name, in_exit_handler);
    }
    if (has_finally_) {
      Json inputs = Json::object(), definitions = Json::object();
      for (const auto& p : ir_.parameters) {
        inputs[kChannel + p.name] = {{"componentInputParameter", p.name}};
        definitions[kChannel + p.name] = {{"parameterType", parameter_type(p.type)}};
      }
      Json component{{"dag", {{"tasks", main_tasks}}}};
      if (!definitions.empty()) component["inputDefinitions"] = {{"parameters", definitions}};
      components_[std::string("comp-") + kExitHandler] = component;
      Json exit_task{{"taskInfo", {{"name", kExitHandler}}}, {"componentRef", {{"name", std::string("comp-") + kExitHandler}}}};
      if (!inputs.empty()) exit_task["inputs"] = {{"parameters", inputs}};
      root_tasks[kExitHandler] = exit_task;
    }
    Json root{{"dag", {{"tasks", root_tasks}}}};
    Json root_parameters = Json::object();
    for (const auto& p : ir_.parameters) {
      Json d{{"parameterType", parameter_type(p.type)}, {"isOptional", true}};
      if (!p.value.is_null()) d["defaultValue"] = p.value;
      if (!p.description.empty()) d["description"] = p.description;
      root_parameters[p.name] = d;
    }
    if (!root_parameters.empty()) root["inputDefinitions"] = {{"parameters", root_parameters}};
    Json info{{"name", ir_.name}};
    if (!ir_.description.empty()) info["description"] = ir_.description;
    Json spec{{"pipelineInfo", info},
              {"components", components_},
              {"deploymentSpec", {{"executors", executors_}}},
              {"root", root},
              {"schemaVersion", "2.1.0"},
              {"sdkVersion", "kiln"}};
    std::vector<Json> documents{spec};
    if (ir_.timeout_seconds) {
      const auto seconds = static_cast<int64_t>(std::ceil(*ir_.timeout_seconds));
      documents.push_back(
          {{"platforms", {{"kubernetes", {{"pipelineConfig", {{"activeDeadlineSeconds", seconds}}}}}}}});
    }
    return documents;
  }

 private:
  // Where a value comes from in the DAG holding the task.
  Json value_source(const IrValue& v, bool in_exit_handler) const {
    switch (v.ref.kind) {
      case Reference::Kind::Param:
        return {{"componentInputParameter", (in_exit_handler ? kChannel : "") + v.ref.name}};
      case Reference::Kind::StepOutput:
        return {{"taskOutputParameter",
                 {{"producerTask", target_task_name(v.ref.step)}, {"outputParameterKey", v.ref.output}}}};
      case Reference::Kind::RunStatus:
        return {{"taskFinalStatus", {{"producerTask", kExitHandler}}}};
      default:
        return Json();
    }
  }

  static bool wired(const IrValue& v) {
    return v.ref.kind != Reference::Kind::RunId && v.ref.kind != Reference::Kind::Item;
  }

  const char* value_type(const IrValue& v) const {
    if (v.kind == PodValueKind::KfpStatus) return "TASK_FINAL_STATUS";
    if (v.kind == PodValueKind::JsonList) return "LIST";
    if (v.ref.kind == Reference::Kind::Param)
      for (const auto& p : ir_.parameters)
        if (p.name == v.ref.name) return parameter_type(p.type);
    return "STRING";
  }

  // The loop item's type, from the literal list or the parameter's default.
  const char* item_type(const IrTask& task) const {
    Json items = task.loop->items.value_or(Json());
    if (task.loop->source && task.loop->source->kind == Reference::Kind::Param)
      for (const auto& p : ir_.parameters)
        if (p.name == task.loop->source->name) items = p.value;
    if (!items.is_array() || items.empty()) return "STRING";
    bool strings = true, numbers = true, objects = true;
    for (const auto& i : items) {
      strings &= i.is_string();
      numbers &= i.is_number();
      objects &= i.is_object();
    }
    return numbers ? "NUMBER_DOUBLE" : objects ? "STRUCT" : strings ? "STRING" : "STRING";
  }

  void add_container(const IrTask& task) {
    compile_detail::PodPlaces places;
    places.value = [](const IrValue& v) {
      return v.ref.kind == Reference::Kind::RunId ? std::string("{{$.pipeline_job_name}}")
                                                  : "{{$.inputs.parameters['" + v.port + "']}}";
    };
    places.item = [] { return std::string("{{$.inputs.parameters['item']}}"); };
    places.input_path = [](const std::string& n) { return "{{$.inputs.artifacts['" + n + "'].path}}"; };
    places.input_metadata = [](const std::string& n) {
      return "{{$.inputs.parameters['" + metadata_parameter(n) + "']}}";
    };
    places.output_path = [](const std::string& n) { return "{{$.outputs.artifacts['" + n + "'].path}}"; };
    places.metadata_path = [](const std::string& n) {
      return "{{$.outputs.parameters['" + metadata_parameter(n) + "'].output_file}}";
    };
    places.parameter_path = [](const std::string& n) { return "{{$.outputs.parameters['" + n + "'].output_file}}"; };
    Json container{{"image", ir_.options.image},
                   {"command", Json::array({"kiln"})},
                   {"args", compile_detail::pod_arguments(task, places)}};
    if (const Json r = resources(task); !r.empty()) container["resources"] = r;
    executors_["exec-" + task.name] = {{"container", container}};

    Json in_params = Json::object(), in_artifacts = Json::object(), out_params = Json::object(),
         out_artifacts = Json::object();
    for (const auto& v : task.values)
      if (wired(v)) in_params[v.port] = {{"parameterType", value_type(v)}};
    if (task.loop) in_params["item"] = {{"parameterType", item_type(task)}};
    if (!task.gate.empty() && !task.loop) in_params[gate_channel(task)] = {{"parameterType", "STRING"}};
    for (const auto& in : task.inputs) {
      in_params[metadata_parameter(in.name)] = {{"parameterType", "STRING"}};
      in_artifacts[in.name] = artifact_type();
    }
    for (const auto& o : task.outputs) {
      out_artifacts[o] = artifact_type();
      out_params[metadata_parameter(o)] = {{"parameterType", "STRING"}};
    }
    for (const auto& p : task.output_parameters) out_params[p] = {{"parameterType", "STRING"}};
    Json component{{"executorLabel", "exec-" + task.name}};
    Json inputs = Json::object(), outputs = Json::object();
    if (!in_params.empty()) inputs["parameters"] = in_params;
    if (!in_artifacts.empty()) inputs["artifacts"] = in_artifacts;
    if (!out_params.empty()) outputs["parameters"] = out_params;
    if (!out_artifacts.empty()) outputs["artifacts"] = out_artifacts;
    if (!inputs.empty()) component["inputDefinitions"] = inputs;
    if (!outputs.empty()) component["outputDefinitions"] = outputs;
    components_["comp-" + task.name] = component;
  }

  // The task's dependencies, condition, retries and caching (a loop's:
  // on its DAG task).
  void add_task_policy(const IrTask& task, Json& t, bool with_retries) const {
    Json dependent = Json::array();
    for (const auto& d : task.needs_success) dependent.push_back(d);
    for (const auto& d : task.needs_end) dependent.push_back(d);
    if (!task.gate.empty()) {
      dependent.push_back(task.gate);
      t["triggerPolicy"] = {{"condition", "inputs.parameter_values['" + gate_channel(task) + "'] == 'true'"}};
    }
    if (task.is_finally && has_finally_) {
      dependent.push_back(kExitHandler);
      t["triggerPolicy"]["strategy"] = "ALL_UPSTREAM_TASKS_COMPLETED";
    }
    if (!dependent.empty()) t["dependentTasks"] = dependent;
    if (with_retries && task.retries.limit > 0 && !task.retries_in_pod)
      t["retryPolicy"] = {{"maxRetryCount", task.retries.limit},
                          {"backoffDuration", kfp_duration(task.retries.backoff_seconds)},
                          {"backoffFactor", task.retries.factor},
                          {"backoffMaxDuration", kfp_duration(task.retries.max_backoff_seconds)}};
  }

  // The wiring of a task's inputs in the DAG holding it.
  Json task_inputs(const IrTask& task, bool in_exit_handler) const {
    Json parameters = Json::object(), artifacts = Json::object();
    for (const auto& v : task.values)
      if (wired(v)) parameters[v.port] = value_source(v, in_exit_handler);
    if (!task.gate.empty())
      parameters[gate_channel(task)] = {
          {"taskOutputParameter", {{"producerTask", task.gate}, {"outputParameterKey", "result"}}}};
    for (const auto& in : task.inputs) {
      parameters[metadata_parameter(in.name)] = {
          {"taskOutputParameter", {{"producerTask", in.task}, {"outputParameterKey", metadata_parameter(in.output)}}}};
      artifacts[in.name] = {{"taskOutputArtifact", {{"producerTask", in.task}, {"outputArtifactKey", in.output}}}};
    }
    Json inputs = Json::object();
    if (!parameters.empty()) inputs["parameters"] = parameters;
    if (!artifacts.empty()) inputs["artifacts"] = artifacts;
    return inputs;
  }

  Json component_task(const IrTask& task, const std::string& component, bool in_exit_handler) const {
    Json t{{"taskInfo", {{"name", task.name}}}, {"componentRef", {{"name", component}}}};
    if (const Json inputs = task_inputs(task, in_exit_handler); !inputs.empty()) t["inputs"] = inputs;
    t["cachingOptions"] = {{"enableCache", task.cache}};
    add_task_policy(task, t, true);
    return t;
  }

  // A loop: a DAG component iterating the task (KFP's ParallelFor shape);
  // its output parameters are collected into lists.
  Json loop_task(const IrTask& task, bool in_exit_handler) {
    const std::string item = kChannel + task.name + "-loop-item";
    Json inner{{"taskInfo", {{"name", task.name}}}, {"componentRef", {{"name", "comp-" + task.name}}}};
    Json inner_params = Json::object(), inner_artifacts = Json::object();
    Json definitions = Json::object(), artifact_definitions = Json::object();
    const Json outer = task_inputs(task, in_exit_handler);
    const Json outer_parameter_sources = outer.value("parameters", Json::object());
    const Json outer_artifact_sources = outer.value("artifacts", Json::object());
    for (const auto& entry : outer_parameter_sources.items()) {
      const std::string name = entry.key();  // a copy: a lambda below uses it (clang: no structured bindings in captures)
      if (name == gate_channel(task)) continue;
      inner_params[name] = {{"componentInputParameter", kChannel + name}};
      const auto* port = [&]() -> const IrValue* {
        for (const auto& v : task.values)
          if (v.port == name) return &v;
        return nullptr;
      }();
      definitions[kChannel + name] = {{"parameterType", port ? value_type(*port) : "STRING"}};
    }
    for (const auto& in : task.inputs) {
      inner_artifacts[in.name] = {{"componentInputArtifact", kChannel + in.name}};
      artifact_definitions[kChannel + in.name] = artifact_type();
    }
    inner_params["item"] = {{"componentInputParameter", item}};
    definitions[item] = {{"parameterType", item_type(task)}};
    inner["inputs"] = {{"parameters", inner_params}};
    if (!inner_artifacts.empty()) inner["inputs"]["artifacts"] = inner_artifacts;
    inner["cachingOptions"] = {{"enableCache", task.cache}};
    if (task.retries.limit > 0 && !task.retries_in_pod) {
      IrTask retry_only;
      retry_only.retries = task.retries;
      add_task_policy(retry_only, inner, true);
    }

    Json outer_params = Json::object(), outer_artifacts = Json::object();
    for (const auto& [name, source] : outer_parameter_sources.items())
      outer_params[name == gate_channel(task) ? name : kChannel + name] = source;
    for (const auto& [name, source] : outer_artifact_sources.items())
      outer_artifacts[kChannel + name] = source;
    if (!task.gate.empty()) definitions[gate_channel(task)] = {{"parameterType", "STRING"}};
    Json t{{"taskInfo", {{"name", task.name}}}, {"componentRef", {{"name", "comp-for-loop-" + task.name}}}};
    Json iterator{{"itemInput", item}};
    if (task.loop->items) {
      iterator["items"] = {{"raw", task.loop->items->dump()}};
    } else {
      const IrValue list{*task.loop->source, PodValueKind::Json, "kiln-items"};
      outer_params[kChannel + "kiln-items"] = value_source(list, in_exit_handler);
      definitions[kChannel + "kiln-items"] = {{"parameterType", "LIST"}};
      iterator["items"] = {{"inputParameter", kChannel + "kiln-items"}};
    }
    t["parameterIterator"] = iterator;
    if (task.loop->parallelism > 0) t["iteratorPolicy"] = {{"parallelismLimit", task.loop->parallelism}};
    if (!outer_params.empty()) t["inputs"]["parameters"] = outer_params;
    if (!outer_artifacts.empty()) t["inputs"]["artifacts"] = outer_artifacts;
    add_task_policy(task, t, false);

    Json outputs = Json::object(), collected = Json::object();
    for (const auto& p : task.output_parameters) {
      collected[p] = {{"valueFromParameter", {{"producerSubtask", task.name}, {"outputParameterKey", p}}}};
      outputs[p] = {{"parameterType", "LIST"}};
    }
    Json component{{"dag", {{"tasks", {{task.name, inner}}}}}};
    if (!collected.empty()) component["dag"]["outputs"] = {{"parameters", collected}};
    Json input_definitions{{"parameters", definitions}};
    if (!artifact_definitions.empty()) input_definitions["artifacts"] = artifact_definitions;
    component["inputDefinitions"] = input_definitions;
    if (!outputs.empty()) component["outputDefinitions"] = {{"parameters", outputs}};
    components_["comp-for-loop-" + task.name] = component;
    return t;
  }

  static Json resources(const IrTask& task) {
    Json r = Json::object();
    if (task.cpus) {
      char text[32];
      std::snprintf(text, sizeof text, "%lldm", static_cast<long long>(std::llround(*task.cpus * 1000)));
      r["resourceCpuLimit"] = r["resourceCpuRequest"] = text;
    }
    if (task.memory_bytes) r["resourceMemoryLimit"] = r["resourceMemoryRequest"] = std::to_string(*task.memory_bytes);
    if (task.gpus)
      r["accelerator"] = {{"resourceType", "nvidia.com/gpu"}, {"resourceCount", std::to_string(*task.gpus)}};
    return r;
  }

  const PipelineIr& ir_;
  bool has_finally_ = false;
  Json components_ = Json::object();
  Json executors_ = Json::object();
};

}  // namespace

std::vector<Json> emit_kfp_pipeline(const PipelineIr& ir) {
  return KfpEmitter(ir).emit();
}

}  // namespace kiln::host

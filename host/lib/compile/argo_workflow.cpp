// PipelineIr → an Argo Workflow (argoproj.io/v1alpha1): a DAG template of
// the main tasks, one for the finally tasks (onExit), a container template
// per task and a DAG wrapper per loop (its parallelism). docs/kubernetes.md
// has the mapping table.
#include <kiln/host/compile.hpp>

#include <cmath>

#include "pod_command.hpp"

namespace kiln::host {
namespace {

using compile_detail::duration_text;
using compile_detail::metadata_parameter;

constexpr const char* kMainTemplate = "kiln-main";
constexpr const char* kExitTemplate = "kiln-finally";
constexpr const char* kInputs = "/tmp/kiln/inputs/";
constexpr const char* kOutputs = "/tmp/kiln/outputs/";
constexpr const char* kMetadata = "/tmp/kiln/metadata/";
constexpr const char* kParameters = "/tmp/kiln/parameters/";

std::string tasks_ref(const std::string& task, const std::string& kind, const std::string& name) {
  return "{{tasks." + task + ".outputs." + kind + "." + name + "}}";
}

// The value's text in the DAG that runs the task.
std::string dag_value(const IrValue& v) {
  switch (v.ref.kind) {
    case Reference::Kind::Param:
      return "{{workflow.parameters." + v.ref.name + "}}";
    case Reference::Kind::StepOutput:
      return tasks_ref(target_task_name(v.ref.step), "parameters", v.ref.output);
    case Reference::Kind::RunStatus:
      return "{{workflow.status}}";
    case Reference::Kind::RunId:
      return "{{workflow.name}}";
    case Reference::Kind::RunFailedSteps:
      return "{{workflow.failures}}";
    default:
      return "{{item}}";
  }
}

std::string argument_text(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

class ArgoEmitter {
 public:
  explicit ArgoEmitter(const PipelineIr& ir) : ir_(ir) {}

  Json emit() {
    Json main_tasks = Json::array(), exit_tasks = Json::array();
    for (const auto& task : ir_.tasks) {
      (task.is_finally ? exit_tasks : main_tasks).push_back(dag_task(task));
      templates_.push_back(container_template(task));
      if (task.loop) templates_.push_back(loop_template(task));
    }
    Json main{{"name", kMainTemplate}, {"dag", {{"tasks", main_tasks}}}};
    if (!ir_.fail_fast) main["dag"]["failFast"] = false;
    templates_.insert(templates_.begin(), main);
    Json spec{{"entrypoint", kMainTemplate}};
    Json parameters = Json::array();
    for (const auto& p : ir_.parameters) {
      Json param{{"name", p.name}, {"value", argument_text(p.value)}};
      if (!p.description.empty()) param["description"] = p.description;
      parameters.push_back(param);
    }
    if (!parameters.empty()) spec["arguments"] = {{"parameters", parameters}};
    if (!exit_tasks.empty()) {
      templates_.insert(templates_.begin() + 1, Json{{"name", kExitTemplate}, {"dag", {{"tasks", exit_tasks}}}});
      spec["onExit"] = kExitTemplate;
    }
    if (ir_.timeout_seconds) spec["activeDeadlineSeconds"] = static_cast<int64_t>(std::ceil(*ir_.timeout_seconds));
    spec["templates"] = templates_;
    Json metadata{{"generateName", ir_.name + "-"}, {"labels", {{"kiln.dev/pipeline", ir_.name}}}};
    if (!ir_.description.empty()) metadata["annotations"] = {{"kiln.dev/description", ir_.description}};
    return Json{{"apiVersion", "argoproj.io/v1alpha1"}, {"kind", "Workflow"}, {"metadata", metadata}, {"spec", spec}};
  }

 private:
  // The task in its DAG: dependencies, condition, arguments (for a loop: its wrapper).
  Json dag_task(const IrTask& task) const {
    Json t{{"name", task.name}, {"template", task.loop ? task.name + "-loop" : task.name}};
    std::string depends;
    const auto add = [&](const std::string& term) { depends += (depends.empty() ? "" : " && ") + term; };
    for (const auto& d : task.needs_success) add(d + ".Succeeded");
    for (const auto& d : task.needs_end) add(d);
    if (!task.gate.empty()) {
      add(task.gate + ".Succeeded");
      t["when"] = tasks_ref(task.gate, "parameters", "result") + " == true";
    }
    if (!depends.empty()) t["depends"] = depends;
    Json parameters = Json::array(), artifacts = Json::array();
    for (const auto& v : task.values) parameters.push_back({{"name", v.port}, {"value", dag_value(v)}});
    for (const auto& in : task.inputs) {
      parameters.push_back({{"name", metadata_parameter(in.name)},
                            {"value", tasks_ref(in.task, "parameters", metadata_parameter(in.output))}});
      artifacts.push_back({{"name", in.name}, {"from", tasks_ref(in.task, "artifacts", in.output)}});
    }
    if (task.loop && task.loop->source) {
      IrValue list{*task.loop->source, PodValueKind::Json, "items"};
      parameters.push_back({{"name", "kiln-items"}, {"value", dag_value(list)}});
    }
    Json arguments = Json::object();
    if (!parameters.empty()) arguments["parameters"] = parameters;
    if (!artifacts.empty()) arguments["artifacts"] = artifacts;
    if (!arguments.empty()) t["arguments"] = arguments;
    return t;
  }

  // A loop's wrapper: a DAG of the one looping task, bounding its parallelism
  // and collecting its output parameters (Argo gathers them as a JSON list).
  Json loop_template(const IrTask& task) const {
    Json inner{{"name", task.name}, {"template", task.name}};
    Json parameters = Json::array(), artifacts = Json::array(), in_params = Json::array(), in_artifacts = Json::array();
    for (const auto& v : task.values) {
      in_params.push_back({{"name", v.port}});
      parameters.push_back({{"name", v.port}, {"value", "{{inputs.parameters." + v.port + "}}"}});
    }
    parameters.push_back({{"name", "item"}, {"value", "{{item}}"}});
    for (const auto& in : task.inputs) {
      const std::string meta = metadata_parameter(in.name);
      in_params.push_back({{"name", meta}});
      parameters.push_back({{"name", meta}, {"value", "{{inputs.parameters." + meta + "}}"}});
      in_artifacts.push_back({{"name", in.name}});
      artifacts.push_back({{"name", in.name}, {"from", "{{inputs.artifacts." + in.name + "}}"}});
    }
    if (task.loop->source) {
      in_params.push_back({{"name", "kiln-items"}});
      inner["withParam"] = "{{inputs.parameters.kiln-items}}";
    } else {
      inner["withItems"] = *task.loop->items;
    }
    inner["arguments"] = {{"parameters", parameters}};
    if (!artifacts.empty()) inner["arguments"]["artifacts"] = artifacts;
    Json outputs = Json::array();
    for (const auto& p : task.output_parameters)
      outputs.push_back({{"name", p}, {"valueFrom", {{"parameter", tasks_ref(task.name, "parameters", p)}}}});
    Json t{{"name", task.name + "-loop"}, {"dag", {{"tasks", Json::array({inner})}}}};
    Json inputs = Json::object();
    if (!in_params.empty()) inputs["parameters"] = in_params;
    if (!in_artifacts.empty()) inputs["artifacts"] = in_artifacts;
    if (!inputs.empty()) t["inputs"] = inputs;
    if (!outputs.empty()) t["outputs"] = {{"parameters", outputs}};
    if (task.loop->parallelism > 0) t["parallelism"] = task.loop->parallelism;
    return t;
  }

  Json container_template(const IrTask& task) const {
    compile_detail::PodPlaces places;
    places.value = [](const IrValue& v) { return "{{inputs.parameters." + v.port + "}}"; };
    places.item = [] { return std::string("{{inputs.parameters.item}}"); };
    places.input_path = [](const std::string& n) { return kInputs + n; };
    places.input_metadata = [](const std::string& n) { return "{{inputs.parameters." + metadata_parameter(n) + "}}"; };
    places.output_path = [](const std::string& n) { return kOutputs + n; };
    places.metadata_path = [](const std::string& n) { return kMetadata + n + ".json"; };
    places.parameter_path = [](const std::string& n) { return kParameters + n; };
    Json container{{"image", ir_.options.image},
                   {"command", Json::array({"kiln"})},
                   {"args", compile_detail::pod_arguments(task, places)}};
    if (const Json r = resources(task); !r.empty()) container["resources"] = r;
    Json t{{"name", task.name}, {"container", container}};
    Json in_params = Json::array(), in_artifacts = Json::array(), out_params = Json::array(),
         out_artifacts = Json::array();
    for (const auto& v : task.values) in_params.push_back({{"name", v.port}});
    if (task.loop) in_params.push_back({{"name", "item"}});
    for (const auto& in : task.inputs) {
      in_params.push_back({{"name", metadata_parameter(in.name)}});
      in_artifacts.push_back({{"name", in.name}, {"path", kInputs + in.name}});
    }
    for (const auto& o : task.outputs) {
      out_artifacts.push_back({{"name", o}, {"path", kOutputs + o}});
      out_params.push_back({{"name", metadata_parameter(o)}, {"valueFrom", {{"path", kMetadata + o + ".json"}}}});
    }
    for (const auto& p : task.output_parameters)
      out_params.push_back({{"name", p}, {"valueFrom", {{"path", kParameters + p}, {"default", "null"}}}});
    Json inputs = Json::object(), outputs = Json::object();
    if (!in_params.empty()) inputs["parameters"] = in_params;
    if (!in_artifacts.empty()) inputs["artifacts"] = in_artifacts;
    if (!out_params.empty()) outputs["parameters"] = out_params;
    if (!out_artifacts.empty()) outputs["artifacts"] = out_artifacts;
    if (!inputs.empty()) t["inputs"] = inputs;
    if (!outputs.empty()) t["outputs"] = outputs;
    if (task.retries.limit > 0) t["retryStrategy"] = retry_strategy(task.retries);
    // kiln step stops the step at its timeout itself (exit 3, class timeout);
    // Argo's deadline is the backstop for a pod that hangs outside it.
    if (task.timeout_seconds)
      t["activeDeadlineSeconds"] = std::to_string(static_cast<int64_t>(std::ceil(*task.timeout_seconds)) + 30);
    return t;
  }

  static Json resources(const IrTask& task) {
    Json requests = Json::object(), limits = Json::object();
    if (task.cpus) {
      char text[32];
      std::snprintf(text, sizeof text, "%lldm", static_cast<long long>(std::llround(*task.cpus * 1000)));
      requests["cpu"] = limits["cpu"] = text;
    }
    if (task.memory_bytes) requests["memory"] = limits["memory"] = std::to_string(*task.memory_bytes);
    if (task.gpus) limits["nvidia.com/gpu"] = std::to_string(*task.gpus);
    Json r = Json::object();
    if (!requests.empty()) r["requests"] = requests;
    if (!limits.empty()) r["limits"] = limits;
    return r;
  }

  // kiln step's exit status names the failure class (pod_step.hpp); Argo
  // retries only the classes the step retries.
  static Json retry_strategy(const RetryPolicy& r) {
    std::string expression;
    const auto add = [&](const std::string& term) { expression += (expression.empty() ? "" : " || ") + term; };
    if (r.on.count("error")) add("asInt(lastRetry.exitCode) == 1");
    if (r.on.count("crash")) add("asInt(lastRetry.exitCode) == 2");
    if (r.on.count("timeout")) add("asInt(lastRetry.exitCode) == 3");
    if (r.on.count("out_of_memory")) add("asInt(lastRetry.exitCode) == 137");
    if (r.on.count("lost")) add("lastRetry.status == \"Error\"");
    Json backoff{{"duration", duration_text(r.backoff_seconds)},
                 {"factor", std::to_string(static_cast<int64_t>(std::llround(r.factor)))},
                 {"cap", duration_text(r.max_backoff_seconds)}};
    return Json{{"limit", std::to_string(r.limit)},
                {"retryPolicy", "Always"},
                {"expression", expression.empty() ? "false" : expression},
                {"backoff", backoff}};
  }

  const PipelineIr& ir_;
  Json templates_ = Json::array();
};

}  // namespace

Json emit_argo_workflow(const PipelineIr& ir) {
  return ArgoEmitter(ir).emit();
}

}  // namespace kiln::host

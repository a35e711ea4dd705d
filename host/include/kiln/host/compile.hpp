// `kiln compile`: a planned pipeline → what a Kubernetes workflow engine
// reads (docs/kubernetes.md). One intermediate form, PipelineIr, built from
// the same Plan `kiln run` uses; each target is an emitter of it:
//
//   Plan ─► build_ir (what the target cannot express: SpecError at file:line:col)
//        ─► emit_argo_workflow  (Argo Workflows: a Workflow with a DAG template)
//        ─► emit_kfp_pipeline   (Kubeflow Pipelines v2 IR: a PipelineSpec)
//
// Every step becomes a pod running `kiln step --request-json REQUEST` in the
// image (pod_step.hpp is the pod's side of the contract); a `when:` becomes
// a small condition task evaluated by kiln's own expression language.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/reference.hpp>
#include <kiln/host/spec.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

enum class CompileTarget { Argo, Kfp };
const char* compile_target_name(CompileTarget target);
std::optional<CompileTarget> parse_compile_target(const std::string& name);

struct CompileOptions {
  CompileTarget target = CompileTarget::Argo;
  std::string image = "kiln:latest";  // holds kiln, the plugins and the pipeline's directory
  // Where the image holds the pipeline's directory: what `{{ pipeline.dir }}` is in a pod.
  std::string pipeline_dir = "/kiln/pipeline";
};

// How a pod decodes the text the engine passes for a value (pod_step.hpp).
enum class PodValueKind {
  String,       // the text itself (a string pipeline parameter)
  Json,         // JSON text, or the text itself when it is not JSON (numbers, lists, items)
  JsonList,     // a list whose elements are JSON texts (a loop step's collected output)
  RunStatus,    // Argo's workflow.status: Succeeded / Failed / Error
  KfpStatus,    // KFP's PipelineTaskFinalStatus (JSON with "state")
  ArgoFailures  // Argo's workflow.failures (JSON list of failed nodes)
};
const char* pod_value_kind_name(PodValueKind kind);
std::optional<PodValueKind> parse_pod_value_kind(const std::string& name);

// A value a pod reads at run time: the reference it fills in the step's
// parameters (or condition) and how its text is decoded.
struct IrValue {
  Reference ref;
  PodValueKind kind = PodValueKind::Json;
  std::string port;  // its name on the target: "v0", "v1", ... (safe in every engine)
};

// An artifact input: the output `output` of task `task`.
struct IrInput {
  std::string name, task, output;
};

struct IrLoop {
  std::optional<Json> items;       // a literal list
  std::optional<Reference> source; // or params.X / steps.S.outputs.O holding the list
  int parallelism = 0;             // 0: unbounded
};

enum class IrTaskKind { Step, Condition };

struct IrTask {
  IrTaskKind kind = IrTaskKind::Step;
  std::string name;  // the task's name on the target (DNS-1123 label)
  std::string step;  // the kiln step it comes from
  SourcePos pos;
  Json request;  // the pod request: `kiln step --request-json` (pod_step.hpp)
  std::vector<IrValue> values;
  std::vector<IrInput> inputs;
  std::vector<std::string> outputs;            // artifacts (directories)
  std::vector<std::string> output_parameters;  // as JSON text files
  std::vector<std::string> needs_success;      // tasks whose outputs it reads
  std::vector<std::string> needs_end;          // `after:` (a skipped one satisfies it)
  std::string gate;                            // the condition task deciding it runs, or ""
  std::optional<IrLoop> loop;
  RetryPolicy retries;
  bool retries_in_pod = false;  // the target cannot filter failure classes: kiln step retries
  std::optional<double> timeout_seconds;
  std::optional<int64_t> memory_bytes;
  std::optional<double> cpus;
  std::optional<int64_t> gpus;
  bool cache = true;
  bool is_finally = false;
};

struct IrParameter {
  std::string name;
  ValueType type = ValueType::String;
  Json value;  // the resolved value (default or --param)
  std::string description;
};

struct PipelineIr {
  std::string name, description, file;
  CompileOptions options;
  std::vector<IrParameter> parameters;
  std::vector<IrTask> tasks;  // main tasks (run order), then finally tasks
  bool fail_fast = true;      // failure_policy stop
  std::optional<double> timeout_seconds;
  // What the target ignores (a step's executor, container or Slurm options...):
  // one note per field written, at its file:line:col. Not errors: the step
  // still runs, as a pod.
  std::vector<Diagnostic> notes;
  const IrTask* find(const std::string& name) const;
};

// The task name of a step on the targets: lower case, '_' and '.' → '-'.
std::string target_task_name(const std::string& step);

// Builds the IR for `options.target`. Throws SpecError with every feature
// the target cannot express, each at its file:line:col naming the feature.
PipelineIr build_pipeline_ir(const Plan& plan, const CompileOptions& options);

// The Argo Workflow (one document).
Json emit_argo_workflow(const PipelineIr& ir);
// The KFP documents: the PipelineSpec, then a PlatformSpec when the pipeline
// has a timeout (KFP keeps a run's deadline there).
std::vector<Json> emit_kfp_pipeline(const PipelineIr& ir);

// YAML text of `documents` ("---" between them), keys in JSON order.
std::string to_yaml_documents(const std::vector<Json>& documents);

struct CompiledPipeline {
  std::string yaml;
  std::vector<Diagnostic> notes;  // PipelineIr::notes
};

// The whole compilation: plan → IR → target → YAML text, and the IR's notes.
CompiledPipeline compile_pipeline(const Plan& plan, const CompileOptions& options);

// The pod request as one argument: compact JSON with every "{{" written
// "{\u007b", so that neither engine's own {{ }} substitution touches kiln's
// placeholders (JSON reads it back unchanged).
std::string pod_request_argument(const Json& request);

}  // namespace kiln::host

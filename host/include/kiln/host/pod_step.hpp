// `kiln step --request-json REQUEST …`: one compiled step inside a pod of
// Argo Workflows or Kubeflow Pipelines (docs/kubernetes.md, "The image
// contract"). The request is what `kiln compile` wrote (compile.hpp); the
// engine fills the rest on the command line:
//
//   --value REF=TEXT              a value the parameters read (params.x, steps.s.outputs.o, item, run.status)
//   --input NAME=DIR              an input artifact's directory
//   --input-metadata NAME=JSON    its metadata, as its producer wrote it
//   --output NAME=DIR             where output NAME goes
//   --output-metadata NAME=FILE   where its metadata goes (JSON)
//   --output-parameter NAME=FILE  where an output parameter goes (JSON text)
//
// The step runs in a child `kiln step` process (crash isolation) watched by
// this one: its timeout, and retries when the target cannot filter failure
// classes. The exit status names the failure class: 0 success, 1 error,
// 2 crash, 3 timeout, 64 a bad request or command line. A request with
// `condition` evaluates it instead and writes true or false to the output
// parameter `result`; one with `tuning` is run by run_pod_tuning
// (pod_tuning.hpp) instead of run_pod_step.
#pragma once

#include <kiln/host/compile.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/spec.hpp>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::host {

// The most a request, and each value's text, may hold.
inline constexpr size_t kMaxPodRequestBytes = size_t{1} << 20;
inline constexpr size_t kMaxPodValueBytes = size_t{1} << 20;
// The most --value/--input/--output… arguments one pod may get.
inline constexpr size_t kMaxPodArguments = 4096;

// Exit statuses of a pod step (Argo's retry expressions test them).
inline constexpr int kPodExitError = 1;
inline constexpr int kPodExitCrash = 2;
inline constexpr int kPodExitTimeout = 3;
inline constexpr int kPodExitUsage = 64;

// A request or an argument the pod cannot use; what() says which and why.
class PodRequestError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The command line as given (each flag's NAME=VALUE texts, in order).
struct PodStepArguments {
  std::string request_json;
  std::vector<std::string> values, inputs, input_metadata, outputs, output_metadata, output_parameters;
};

// What `kiln compile` put in the request.
struct PodRequest {
  std::string pipeline, step;
  std::string component, version;  // a step (empty for a condition)
  std::optional<std::string> condition;
  // A tuning step (tuning_request.hpp): the pod runs its whole search
  // (pod_tuning.hpp). `component` is its trial component, if any.
  std::optional<Json> tuning;
  Json parameters = Json::object();
  std::vector<std::string> outputs, output_parameters;
  std::map<std::string, PodValueKind> value_kinds;  // reference text → how its text is read
  std::map<std::string, std::string> constants;     // pipeline.dir, run.name
  std::optional<double> timeout_seconds;
  std::optional<RetryPolicy> retries;  // retried here (the target cannot filter classes)
};

// Everything checked and decoded, before anything runs.
struct PodStep {
  PodRequest request;
  std::map<std::string, Json> values;  // reference text → value
  std::map<std::string, std::string> input_paths;
  std::map<std::string, Json> input_metadata;
  std::map<std::string, std::string> output_paths, metadata_paths, parameter_paths;
};

// Parses the request (at most kMaxPodRequestBytes, nested at most
// kMaxOutputValueDepth). Throws PodRequestError naming the field.
PodRequest parse_pod_request(std::string_view text);

// A value's text as its kind reads it (pod_value_kind_name). Throws
// PodRequestError when the text cannot be that kind.
Json decode_pod_value(PodValueKind kind, std::string_view text);

// The request and every argument, checked against each other: each value the
// request names is given once, each output has its places, no unknown names.
PodStep parse_pod_step(const PodStepArguments& arguments);

// Runs it; returns the exit status above. Each attempt is a forked child
// running the component as `kiln step` does; logs go to stderr.
int run_pod_step(const PodStep& step);

}  // namespace kiln::host

// The pod step's inputs (host/lib/execution/pod_request.cpp): the input's
// first line is `kiln step --request-json`'s text, each further line one
// argument "FLAG NAME=VALUE" (value, input, input-metadata, output,
// output-metadata, output-parameter) or "KIND TEXT" for decode_pod_value.
// Only PodRequestError may come out; what parses is self-consistent. A
// request's "tuning" step is decoded against catalog.json
// (tuning_request.cpp): only TuningRequestError may come out of that, and
// what decodes holds 0 or 2 to kMaxTuningObjectives objectives, the first
// the step's objective.
#include <kiln/host/pod_step.hpp>
#include <kiln/host/tuning_request.hpp>

#include <sstream>

#include "fuzz_catalog.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln::host;
  const std::string text = kiln::fuzz::text_of(data, size);
  std::istringstream lines(text);
  PodStepArguments arguments;
  std::getline(lines, arguments.request_json);
  for (std::string line; std::getline(lines, line);) {
    const auto space = line.find(' ');
    const std::string flag = line.substr(0, space), rest = space == std::string::npos ? "" : line.substr(space + 1);
    if (const auto kind = parse_pod_value_kind(flag)) {
      try {
        (void)decode_pod_value(*kind, rest);
      } catch (const PodRequestError&) {
      }
      continue;
    }
    auto* list = flag == "value"             ? &arguments.values
                 : flag == "input"           ? &arguments.inputs
                 : flag == "input-metadata"  ? &arguments.input_metadata
                 : flag == "output"          ? &arguments.outputs
                 : flag == "output-metadata" ? &arguments.output_metadata
                                             : &arguments.output_parameters;
    list->push_back(rest);
  }
  try {
    const PodStep step = parse_pod_step(arguments);
    for (const auto& [ref, kind] : step.request.value_kinds)
      if (!step.values.count(ref)) kiln::fuzz::fail("a value the request names was not given");
    for (const auto& o : step.request.outputs)
      if (!step.output_paths.count(o) || !step.metadata_paths.count(o)) kiln::fuzz::fail("an output without its places");
    if (step.request.condition && !step.parameter_paths.count("result"))
      kiln::fuzz::fail("a condition without its result");
    const bool runs = !step.request.component.empty() || step.request.tuning.has_value();
    if (step.request.condition.has_value() == runs)
      kiln::fuzz::fail("a request that is neither a step nor a condition");
    if (step.request.tuning) {
      try {
        const kiln::host::PlannedStep tuning = tuning_step_from_json(*step.request.tuning, kiln::fuzz::catalog());
        if (!tuning.spec.tune || tuning.trial_steps.size() != tuning.spec.tune->trial_steps.size())
          kiln::fuzz::fail("a tuning step without its tune block or trial steps");
        if (!tuning.upstream.empty()) kiln::fuzz::fail("a tuning step that waits for a step outside its pod");
        const auto& objectives = tuning.spec.tune->objectives;
        if (objectives.size() == 1 || objectives.size() > kMaxTuningObjectives)
          kiln::fuzz::fail("a multi-objective tuning step with too few or too many objectives");
        if (!objectives.empty() && objectives.front().metric != tuning.spec.tune->metric)
          kiln::fuzz::fail("a multi-objective tuning step whose first objective is not its objective");
      } catch (const TuningRequestError&) {
      }
    }
  } catch (const PodRequestError&) {
  }
  return 0;
}

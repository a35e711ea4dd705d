// A planned tuning step as JSON: what `kiln compile` puts in a tuning task's
// pod request ("tuning", compile.hpp) and what `kiln step` turns back into a
// PlannedStep to run the whole search in the pod (pod_tuning.hpp). It holds
// the step as the planner left it: the `tune:` block, the tuning step's
// parameters and input wires (with a multi-objective step's `objectives`), and each trial template step with the tuning
// step's parameters and inputs already merged in. Placeholders stay as
// written: the pod's engine resolves them.
#pragma once

#include <kiln/host/catalog.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/plan.hpp>

#include <map>
#include <stdexcept>
#include <string>

namespace kiln::host {

// A request's "tuning" field the pod cannot use; what() names the field.
class TuningRequestError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The most trial template steps a request may hold.
inline constexpr size_t kMaxTuningRequestSteps = 256;
// The most objectives (`tune.objectives`) a request may hold: the Pareto
// front is O(trials² · objectives); compile refuses more at their position.
inline constexpr size_t kMaxTuningObjectives = 16;

Json tuning_step_json(const PlannedStep& step);

// The artifacts from outside the search a tuning step reads, by the name its
// pod gets them under (--input NAME=DIR): the tuning step's own inputs, then
// a trial step's wire to a step outside the trial as "PART-INPUT". Compile
// and pod both call it on the same step, so the names agree.
std::map<std::string, InputWire> tuning_step_inputs(const PlannedStep& step);

// The step again, each component (the trial's, each trial step's, the tuner)
// bound from `catalog`. Throws TuningRequestError naming the field, or the
// component the catalog lacks. Its upstream steps are left out: the pod reads
// them as bound steps (Plan::bound_steps).
PlannedStep tuning_step_from_json(const Json& json, const PluginCatalog& catalog);

}  // namespace kiln::host

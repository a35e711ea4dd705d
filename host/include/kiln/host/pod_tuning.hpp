// `kiln step --request-json` for a compiled tuning step (docs/kubernetes.md,
// "Tuning steps"): the pod runs the whole search with kiln's own engine,
// tuners and process executor, as `kiln run` would run that one step. Its
// plan is the step alone (tuning_request.hpp) over bound steps
// (Plan::bound_steps): the pod's --input directories and --value values
// stand for the upstream steps that ran in other pods. The run lives in a
// scratch directory under $TMPDIR; afterwards the best_* output parameters,
// the trials artifact and the best trial's artifacts are copied where the
// target collects them. Trials run at once: tune.parallel_trials, else the
// step's parallelism, else its whole resources.cpus, else 1.
#pragma once

#include <kiln/host/engine.hpp>
#include <kiln/host/pod_step.hpp>

#include <functional>

namespace kiln::host {

// The engine's jobs in the pod (above) for `tuning`, a PlannedStep.
int pod_tuning_jobs(const PlannedStep& tuning);

// Runs the search; `run` runs the engine (the CLI forwards SIGTERM to it).
// Returns the pod's exit status (pod_step.hpp): 0 when the tuning step
// succeeded, 1 when it failed, 64 for a request the image cannot run.
int run_pod_tuning(const PodStep& step, const std::function<Json(Engine&)>& run);

}  // namespace kiln::host

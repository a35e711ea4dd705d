// A tuning step's trials as the run state and the step's tuning controller
// know them: the objective a trial reached and its row of the trials table
// (trials.json). Reads only: no tuner call, no file.
#pragma once

#include "run_state.hpp"
#include "tuning_controller.hpp"

#include <map>

namespace kiln::host {

// The output parameter in which a trial keeps its objective curve
// ({"step": value}); the engine adds it, the component never sees it.
inline constexpr const char* kCurveOutput = "kiln.curve";

// The objective a finished trial reached: the output parameter of the
// metric's name of its last step that set one, else the last value it
// reported, else NaN.
double trial_value(const RunState& state, const TuningController& tuner, size_t step, int trial);
// The same for another metric of a multi-objective step (`objectives:`): its
// output parameter, else NaN (only the first objective's curve is followed).
double trial_value(const RunState& state, const TuningController& tuner, size_t step, int trial,
                   const std::string& metric);

// A multi-objective step's values of every objective for `trial`, in the
// spec's order (NaN: none), as its tuner's observe_objectives takes them;
// empty for a single objective.
std::vector<double> objective_values(const RunState& state, const TuningController& tuner, size_t step, int trial);

// A multi-objective step's Pareto front (docs/tuning.md): the succeeded
// trials with a value for every objective that no other such trial
// dominates, each as {"trial", "parameters", "values": {metric: value}},
// ordered by the first objective (best first). Empty for a single objective.
Json trials_pareto_front(const RunState& state, const TuningController& tuner, size_t step,
                         const std::vector<int>& succeeded);

// A multi-objective step's result is its front: each row marked "pareto",
// and the values of trials off the front dropped from the candidates for
// best_* (the front's best on the first objective).
void keep_to_pareto_front(const Json& front, Json& rows, std::map<int, double>& values);

// The trials table (trials.json): the objective (and objectives) and the rows.
Json trials_table(const TuneSpec& spec, const Json& rows);

// A succeeded tuning step's outputs from its winning trial: best_parameters
// (without engine directives), best_value, best_trial, best_<parameter>,
// the Pareto front when given, and the winner's artifacts (a trial
// template's later steps win a name several produce) with the trials table.
void set_tuning_outputs(const RunState& state, StepState& step, size_t index, int best_trial, double best_value,
                        const Json* front, const InputArtifact& trials);

// One row of the trials table: the trial, its parameters, `status`, its
// objective, curve and outputs (without the curve), and its attempts' `duration_seconds`.
Json trial_row(const RunState& state, const TuningController& tuner, size_t step, int trial, StepStatus status,
               double duration_seconds);

}  // namespace kiln::host

#include "trials.hpp"

#include "checkpoint_handoff.hpp"

#include <cmath>

namespace kiln::host {

double trial_value(const RunState& state, const TuningController& tuner, size_t step, int trial) {
  const std::vector<int>& units = state.trial_units(step, trial);
  const std::string& metric = state.step(step).planned->spec.tune->metric;
  for (auto u = units.rbegin(); u != units.rend(); ++u) {
    const UnitState& unit = state.unit(*u);
    const Json& outputs = unit.result.output_parameters;
    if (is_success(unit.status()) && outputs.contains(metric) && outputs[metric].is_number())
      return outputs[metric].get<double>();
  }
  const Curve curve = tuner.curve_of(units);
  return curve.empty() ? std::nan("") : curve.rbegin()->second;
}

Json trial_row(const RunState& state, const TuningController& tuner, size_t step, int trial, StepStatus status,
               double duration_seconds) {
  const PlannedStep& planned = *state.step(step).planned;
  const std::vector<int>& units = state.trial_units(step, trial);
  const double value = trial_value(state, tuner, step, trial);
  Json outputs = Json::object(), curve = Json::object();
  for (const int u : units) {
    const UnitState& unit = state.unit(u);
    Json own = Json::object();
    if (is_success(unit.status())) {
      own = unit.result.output_parameters;
      own.erase(kCurveOutput);
    }
    if (unit.part < 0)
      outputs = own;
    else
      outputs[planned.trial_steps[static_cast<size_t>(unit.part)].spec.name] = own;
  }
  for (const auto& [at, v] : tuner.curve_of(units)) curve[std::to_string(at)] = v;
  Json parameters = state.unit(units.front()).item;
  const Json* pbt = pbt_directive(state.unit(units.front()));
  Json lineage = pbt ? *pbt : Json(nullptr);
  if (parameters.is_object()) parameters.erase("kiln.pbt");
  Json row{{"trial", trial},
           {"parameters", parameters},
           {"status", to_string(status)},
           {planned.spec.tune->metric, std::isfinite(value) ? Json(value) : Json(nullptr)},
           {"curve", curve},
           {"outputs", outputs},
           {"duration_seconds", duration_seconds}};
  if (!lineage.is_null()) row["pbt"] = lineage;  // member, round, the trial whose checkpoint it continued
  return row;
}

}  // namespace kiln::host

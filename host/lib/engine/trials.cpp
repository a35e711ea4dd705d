#include "trials.hpp"

#include <kiln/host/pareto.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "checkpoint_handoff.hpp"

namespace kiln::host {

double trial_value(const RunState& state, const TuningController& tuner, size_t step, int trial,
                   const std::string& metric) {
  const std::vector<int>& units = state.trial_units(step, trial);
  for (auto u = units.rbegin(); u != units.rend(); ++u) {
    const UnitState& unit = state.unit(*u);
    const Json& outputs = unit.result.output_parameters;
    if (is_success(unit.status()) && outputs.contains(metric) && outputs[metric].is_number())
      return outputs[metric].get<double>();
  }
  if (metric != state.step(step).planned->spec.tune->metric) return std::nan("");
  const Curve curve = tuner.curve_of(units);
  return curve.empty() ? std::nan("") : curve.rbegin()->second;
}

double trial_value(const RunState& state, const TuningController& tuner, size_t step, int trial) {
  return trial_value(state, tuner, step, trial, state.step(step).planned->spec.tune->metric);
}

std::vector<double> objective_values(const RunState& state, const TuningController& tuner, size_t step, int trial) {
  std::vector<double> out;
  for (const auto& o : state.step(step).planned->spec.tune->objectives)
    out.push_back(trial_value(state, tuner, step, trial, o.metric));
  return out;
}

Json trials_pareto_front(const RunState& state, const TuningController& tuner, size_t step,
                         const std::vector<int>& succeeded) {
  const auto& objectives = state.step(step).planned->spec.tune->objectives;
  Json out = Json::array();
  if (objectives.empty()) return out;
  std::vector<int> candidates;
  std::vector<std::vector<double>> scores;
  for (const int trial : succeeded) {
    std::vector<double> row;
    for (const auto& o : objectives) {
      const double v = trial_value(state, tuner, step, trial, o.metric);
      row.push_back(o.maximize ? -v : v);
    }
    if (std::all_of(row.begin(), row.end(), [](double v) { return std::isfinite(v); })) {
      candidates.push_back(trial);
      scores.push_back(std::move(row));
    }
  }
  std::vector<size_t> front = pareto_front(scores);
  std::stable_sort(front.begin(), front.end(), [&](size_t a, size_t b) { return scores[a][0] < scores[b][0]; });
  for (const size_t i : front) {
    Json values = Json::object();
    for (size_t k = 0; k < objectives.size(); ++k)
      values[objectives[k].metric] = objectives[k].maximize ? -scores[i][k] : scores[i][k];
    const int trial = candidates[i];
    out.push_back({{"trial", trial},
                   {"parameters", state.unit(state.trial_units(step, trial).front()).item},
                   {"values", values}});
  }
  return out;
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
  for (const auto& o : planned.spec.tune->objectives) {
    const double v = trial_value(state, tuner, step, trial, o.metric);
    row[o.metric] = std::isfinite(v) ? Json(v) : Json(nullptr);
  }
  if (!lineage.is_null()) row["pbt"] = lineage;  // member, round, the trial whose checkpoint it continued
  return row;
}

void keep_to_pareto_front(const Json& front, Json& rows, std::map<int, double>& values) {
  std::set<int> on_front;
  for (const Json& f : front) on_front.insert(f["trial"].get<int>());
  for (Json& row : rows) row["pareto"] = on_front.count(row["trial"].get<int>()) > 0;
  for (auto it = values.begin(); it != values.end();) it = on_front.count(it->first) ? std::next(it) : values.erase(it);
}

Json trials_table(const TuneSpec& spec, const Json& rows) {
  Json table{{"objective", {{"metric", spec.metric}, {"goal", spec.maximize ? "maximize" : "minimize"}}},
             {"trials", rows}};
  if (!spec.objectives.empty()) table["objectives"] = spec.tuner_config()["objectives"];
  return table;
}

void set_tuning_outputs(const RunState& state, StepState& step, size_t index, int best_trial, double best_value,
                        const Json* front, const InputArtifact& trials) {
  const std::vector<int> winner = state.trial_units(index, best_trial);
  Json parameters = Json::object();  // the component's: without engine directives ("kiln.pbt")
  for (const auto& [name, value] : state.unit(winner.front()).item.items())
    if (!is_engine_directive(name)) parameters[name] = value;
  step.outputs = Json{{"best_parameters", parameters}, {"best_value", best_value}, {"best_trial", best_trial}};
  if (front != nullptr) step.outputs[kParetoFrontOutput] = *front;
  for (const auto& [name, value] : parameters.items()) step.outputs["best_" + name] = value;
  step.artifacts.clear();
  for (const int u : winner)  // a trial template's later steps win a name several produce
    for (const auto& [name, artifact] : state.unit(u).artifacts) step.artifacts[name] = artifact;
  step.artifacts[kTrialsOutput] = trials;
}

}  // namespace kiln::host

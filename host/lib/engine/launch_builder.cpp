// Builds a unit's StepLaunch from the plan and the run's state (launch_builder.hpp).
#include <kiln/host/invoke.hpp>
#include <kiln/host/placeholders.hpp>

#include "checkpoint_handoff.hpp"
#include "launch_builder.hpp"

#include <stdexcept>
#include <vector>

namespace kiln::host {

LaunchBuilder::LaunchBuilder(const RunState& state, std::string default_executor, double grace_seconds)
    : state_(state), default_executor_(std::move(default_executor)), grace_seconds_(grace_seconds) {}

StepLaunch LaunchBuilder::build(const UnitState& unit) const {
  const PlannedStep& planned = state_.planned_of(unit);
  const auto& spec = planned.spec;
  StepLaunch launch;
  launch.step = unit.name.display;
  launch.component = planned.component;
  launch.attempt_dir = unit.attempt_dir();
  launch.output_dir = launch.attempt_dir / "outputs";
  launch.temp_dir = launch.attempt_dir / "tmp";
  launch.checkpoint_dir = unit.dir / "checkpoint";
  launch.container = spec.container;
  launch.replicas = spec.replicas;
  launch.slurm = spec.slurm;
  launch.timeout_seconds = spec.timeout_seconds;
  launch.grace_seconds = grace_seconds_;
  launch.parameters = render_parameters(unit);
  launch.inputs = wired_inputs(unit);
  launch.reuse_process = state_.step(unit.step).planned->spec.tune.has_value();
  return launch;
}

std::string LaunchBuilder::executor_of(const UnitState& unit) const {
  const auto& e = state_.planned_of(unit).spec.executor;
  return e.empty() ? default_executor_ : e;
}

Json LaunchBuilder::describe_inputs(const UnitState& unit, const std::map<std::string, InputArtifact>& inputs) const {
  Json out = Json::object();
  for (const auto& [name, wire] : state_.planned_of(unit).spec.inputs) {
    const auto given = inputs.find(name);
    if (given == inputs.end()) continue;
    const UnitState* sibling = unit.part < 0 ? nullptr : state_.sibling_named(unit, wire.step);
    Json entry{{"step", sibling ? sibling->name.display : wire.step}, {"output", wire.output}};
    const InputArtifact& artifact = given->second;
    if (!artifact.digest.empty()) entry["digest"] = artifact.digest;
    if (!artifact.items.empty()) entry["items"] = artifact.items;
    if (artifact.digest.empty() && artifact.items.empty()) entry["path"] = state_.relative_to_run(artifact.path);
    out[name] = std::move(entry);
  }
  return out;
}

Json LaunchBuilder::render_parameters(const UnitState& unit) const {
  const PlannedStep& planned = state_.planned_of(unit);
  Json given = Json::object();
  for (const auto& [name, value] : planned.spec.parameters)
    given[name] = render_placeholders(value.value, state_.resolver(&unit));
  if (state_.step(unit.step).planned->spec.tune)  // a trial: the suggestion wins over the step's own values
    for (const auto& [name, value] : unit.item.items())
      if (!is_engine_directive(name) && (unit.part < 0 || planned.component.manifest.find_parameter(name) != nullptr))
        given[name] = value;
  std::vector<std::string> problems;
  Json resolved = resolve_parameters(planned.component.manifest, given, problems);
  if (!problems.empty()) throw std::runtime_error(problems.front());
  return resolved;
}

std::map<std::string, InputArtifact> LaunchBuilder::wired_inputs(const UnitState& unit) const {
  std::map<std::string, InputArtifact> inputs;
  for (const auto& [name, wire] : state_.planned_of(unit).spec.inputs) {
    if (const UnitState* sibling = unit.part < 0 ? nullptr : state_.sibling_named(unit, wire.step)) {  // the same trial's step
      const auto it = sibling->artifacts.find(wire.output);
      if (it == sibling->artifacts.end())
        throw std::runtime_error("step '" + sibling->name.display + "' produced no output '" + wire.output + "'");
      inputs[name] = it->second;
      continue;
    }
    const StepState& source = state_.step_named(wire.step);
    const auto it = source.artifacts.find(wire.output);
    if (it == source.artifacts.end())
      throw std::runtime_error("step '" + wire.step + "' produced no output '" + wire.output + "'");
    inputs[name] = it->second;
  }
  return inputs;
}

}  // namespace kiln::host

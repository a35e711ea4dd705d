// What an executor needs to start one attempt of a unit (a StepLaunch), built
// from the plan and the run's state: the attempt's directories, the step's
// container, replicas, Slurm and timeout settings, its parameters rendered
// (placeholders resolved against upstream outputs; a trial's suggestion
// wins) and its inputs wired to the artifacts upstream steps produced. It
// reads the state and changes nothing: the engine decides when to launch and
// carries the launch out (as Ninja's Builder asks its Plan what to build).
#pragma once

#include <kiln/host/executor.hpp>

#include "run_state.hpp"

#include <map>
#include <string>

namespace kiln::host {

class LaunchBuilder {
 public:
  // `default_executor` runs the steps that name none; `grace_seconds` is the
  // time between a stop request and the kill.
  LaunchBuilder(const RunState& state, std::string default_executor, double grace_seconds);

  // The launch of the unit's current attempt (`unit.attempt`). Throws
  // std::runtime_error when a parameter does not resolve or an input has no
  // artifact (the unit fails: "cannot prepare the step").
  StepLaunch build(const UnitState& unit) const;

  // The executor that runs the unit: its step's own, else the run's default.
  std::string executor_of(const UnitState& unit) const;

  // The launch's inputs as the run's record shows them: {input: {step (the
  // unit that produced it), output, digest? (in the store), items? (a loop's
  // collected output: its items' digests), path? (no store)}}.
  Json describe_inputs(const UnitState& unit, const std::map<std::string, InputArtifact>& inputs) const;

 private:
  Json render_parameters(const UnitState& unit) const;
  std::map<std::string, InputArtifact> wired_inputs(const UnitState& unit) const;

  const RunState& state_;
  std::string default_executor_;
  double grace_seconds_;
};

}  // namespace kiln::host

// A validated pipeline, ready to run: every step bound to a component of the
// catalog, every reference checked, the graph acyclic and in run order.
#pragma once

#include <kiln/host/catalog.hpp>
#include <kiln/host/expression.hpp>
#include <kiln/host/spec.hpp>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kiln::host {

struct PlannedStep {
  StepSpec spec;
  CatalogComponent component;
  std::set<std::string> upstream;       // steps that must finish first
  std::set<std::string> data_upstream;  // those whose outputs it reads (a subset of upstream)
  std::optional<Expression> when;
  std::optional<CatalogComponent> tuner;  // a tuning step's tuner component
  // `tune.trial: TEMPLATE`: the steps of one trial, each bound to its
  // component, with the tuning step's parameters and inputs merged into
  // those that declare them. Their `upstream` names only each other.
  std::vector<PlannedStep> trial_steps;
};

// The output parameters a tuning step sets besides best_<space parameter>.
inline const std::vector<std::string>& tuning_output_parameters() {
  static const std::vector<std::string> names{"best_parameters", "best_value", "best_trial"};
  return names;
}
// A multi-objective tuning step's (`tune.objectives`) further output
// parameter: its Pareto front, [{trial, parameters, values}] (trials.hpp).
inline constexpr const char* kParetoFrontOutput = "pareto_front";
// The artifact every tuning step writes: one row per trial.
inline constexpr const char* kTrialsOutput = "trials";
inline constexpr const char* kTrialsArtifactType = "TuningTrials";

// A step outside the plan whose results the plan's steps read, already done
// elsewhere: `kiln step` runs a compiled tuning step alone in a pod, over
// the directories and values its upstream steps' pods left (pod_tuning.hpp).
// An input wired to STEP.outputs.NAME reads artifacts[NAME]'s directory as it
// is; `{{ steps.STEP.outputs.NAME }}` reads outputs[NAME].
struct BoundStep {
  struct Artifact {
    std::string path;  // an existing directory
    Json metadata = Json::object();
  };
  std::map<std::string, Artifact> artifacts;  // by output name
  Json outputs = Json::object();              // output parameters
};

struct Plan {
  PipelineSpec spec;
  Json parameters = Json::object();  // resolved pipeline parameters
  std::vector<PlannedStep> steps;    // main steps in a topological order, then the finally steps
  // Steps no step of the plan waits for, read as done (by name; a step of
  // `steps` wins). plan_pipeline leaves it empty.
  std::map<std::string, BoundStep> bound_steps;
  const PlannedStep* find(const std::string& name) const;
};

// Converts a command-line value ("--param k=v") to the declared type: numbers
// and booleans as written, lists and objects as YAML/JSON flow text, strings
// verbatim. Throws std::invalid_argument naming the problem.
Json parse_parameter_text(const ParamSpec& spec, const std::string& text);

// Validates `spec` against `catalog` and the parameter overrides (a JSON
// object; `overrides_origin` names where they came from in messages).
// Throws SpecError with every problem found, each at its file:line:col.
Plan plan_pipeline(PipelineSpec spec, const PluginCatalog& catalog, const Json& overrides,
                   const std::string& overrides_origin = "--param");

}  // namespace kiln::host

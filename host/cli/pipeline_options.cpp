// The options kiln validate, run and compile share (pipeline_options.hpp).
#include "pipeline_options.hpp"

#include <kiln/host/catalog.hpp>
#include <kiln/host/yaml_json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

namespace kiln::cli {

using host::Json;

void add_pipeline_options(CLI::App* app, PipelineOptions& options) {
  app->add_option("FILE", options.file, "The pipeline (YAML)")->required();
  app->add_option("--param,-p", options.params, "Set a pipeline parameter: --param name=value (repeatable)");
  app->add_option("--params-file", options.params_file, "Pipeline parameters from a YAML or JSON mapping");
}

// --params-file first, then each --param over it; typed by the declaration.
Json parameter_overrides(const host::PipelineSpec& spec, const PipelineOptions& options) {
  Json overrides = Json::object();
  if (!options.params_file.empty()) {
    std::ifstream in(options.params_file);
    if (!in) throw CommandError("cannot read parameters file " + options.params_file);
    std::ostringstream text;
    text << in.rdbuf();
    try {
      overrides = host::parse_yaml_value(text.str());
    } catch (const std::invalid_argument& e) {
      throw CommandError(options.params_file + ": " + e.what());
    }
    if (!overrides.is_object()) throw CommandError(options.params_file + ": must be a mapping of name: value");
  }
  for (const auto& assignment : options.params) {
    const auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
      throw CommandError("--param " + assignment + ": write it as name=value", kExitUsage);
    const std::string name = assignment.substr(0, eq), text = assignment.substr(eq + 1);
    const auto* declared = spec.find_parameter(name);
    try {
      overrides[name] = declared ? host::parse_parameter_text(declared->spec, text) : Json(text);
    } catch (const std::invalid_argument& e) {
      throw CommandError("--param " + assignment + ": " + e.what(), kExitUsage);
    }
  }
  return overrides;
}

// Parses and validates; on problems prints every one and fails.
host::Plan load_plan(const PipelineOptions& options) {
  try {
    auto spec = host::parse_pipeline_file(options.file);
    const Json overrides = parameter_overrides(spec, options);
    const auto catalog = host::discover_default_catalog();
    return host::plan_pipeline(std::move(spec), catalog, overrides);
  } catch (const host::SpecError& e) {
    throw spec_problems(e, options.file);
  }
}

CommandError spec_problems(const host::SpecError& e, const std::string& file) {
  for (const auto& d : e.diagnostics()) std::cerr << d.str() << "\n";
  const size_t n = e.diagnostics().size();
  return CommandError(std::to_string(n) + (n == 1 ? " problem" : " problems") + " in " + file);
}

}  // namespace kiln::cli

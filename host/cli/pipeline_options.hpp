// The options every command that reads a pipeline shares (kiln validate,
// run, compile): the file and its parameters, and loading the plan.
#pragma once

#include <kiln/host/plan.hpp>

#include <string>
#include <vector>

#include "cli.hpp"

namespace kiln::cli {

struct PipelineOptions {
  std::string file;
  std::vector<std::string> params;
  std::string params_file;
};

void add_pipeline_options(CLI::App* app, PipelineOptions& options);

// --params-file first, then each --param over it; typed by the declaration.
host::Json parameter_overrides(const host::PipelineSpec& spec, const PipelineOptions& options);

// Parses and validates; on problems prints every one and fails.
host::Plan load_plan(const PipelineOptions& options);

// Prints every diagnostic of `e` to stderr and returns the CommandError "N problems in FILE".
CommandError spec_problems(const host::SpecError& e, const std::string& file);

}  // namespace kiln::cli

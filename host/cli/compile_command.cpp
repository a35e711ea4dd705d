// `kiln compile PIPELINE --target argo|kfp`: the pipeline as an Argo
// Workflow or a Kubeflow Pipelines IR (docs/kubernetes.md).
#include <kiln/host/compile.hpp>
#include <kiln/host/files.hpp>

#include <iostream>

#include "cli.hpp"
#include "pipeline_options.hpp"

namespace kiln::cli {
namespace {

struct CompileCommandOptions {
  PipelineOptions pipeline;
  std::string target;
  std::string output;  // "" or "-": stdout
  host::CompileOptions compile;
};

int compile(const CompileCommandOptions& options) {
  host::CompileOptions compile = options.compile;
  compile.target = *host::parse_compile_target(options.target);
  const auto plan = load_plan(options.pipeline);
  host::CompiledPipeline compiled;
  try {
    compiled = host::compile_pipeline(plan, compile);
  } catch (const host::SpecError& e) {
    throw spec_problems(e, options.pipeline.file);
  }
  // Notes go to stderr, so that the YAML on stdout stays the whole of stdout.
  for (const auto& note : compiled.notes) std::cerr << note.pos.str() << ": note: " << note.message << "\n";
  if (options.output.empty() || options.output == "-") {
    std::cout << compiled.yaml;
    return kExitOk;
  }
  host::write_file_atomic(options.output, compiled.yaml);
  std::cerr << options.pipeline.file << ": compiled for " << options.target << " into " << options.output << "\n";
  return kExitOk;
}

}  // namespace

void add_compile_command(CLI::App& app, Commands& commands) {
  static CompileCommandOptions options;
  auto* cmd = commands.add(app, "compile", "Compile a pipeline for Argo Workflows or Kubeflow Pipelines",
                           [] { return compile(options); });
  add_pipeline_options(cmd, options.pipeline);
  cmd->add_option("--target,-t", options.target, "argo (an Argo Workflow) or kfp (a Kubeflow Pipelines v2 IR)")
      ->required()
      ->check(CLI::IsMember({"argo", "kfp"}));
  cmd->add_option("--output,-o", options.output, "Write it to this file (default: standard output)");
  cmd->add_option("--image", options.compile.image, "The image every step's pod runs (kiln, its plugins, the pipeline)")
      ->capture_default_str();
  cmd->add_option("--pipeline-dir", options.compile.pipeline_dir,
                  "Where the image holds the pipeline's directory ({{ pipeline.dir }} in a pod)")
      ->capture_default_str();
}

}  // namespace kiln::cli

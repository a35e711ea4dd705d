// `kiln image build PIPELINE -o oci:LAYOUT:TAG`: an OCI image holding kiln,
// the plugins the pipeline uses with their shared libraries, and the
// pipeline's directory (docs/kubernetes.md, "Building the image").
#include <kiln/host/image_build.hpp>
#include <kiln/host/paths.hpp>

#include <iostream>

#include "cli.hpp"
#include "pipeline_options.hpp"

namespace kiln::cli {
namespace {

struct ImageBuildCommandOptions {
  PipelineOptions pipeline;
  std::string output;  // oci:LAYOUT:TAG
  std::string pipeline_dir = "/kiln/pipeline";
  std::vector<std::string> adds;  // SRC:DEST
};

int build(const ImageBuildCommandOptions& options) {
  const std::string& out = options.output;
  const auto last = out.rfind(':');
  if (out.rfind("oci:", 0) != 0 || last <= 4 || last + 1 == out.size())
    throw CommandError("--output " + out + ": write it as oci:LAYOUT_DIR:TAG (as a step's image: names it)", kExitUsage);
  if (const std::filesystem::path dir = options.pipeline_dir; !dir.is_absolute() || dir.lexically_normal() != dir)
    throw CommandError("--pipeline-dir " + options.pipeline_dir + ": must be an absolute, normal path in the image",
                       kExitUsage);
  const auto plan = load_plan(options.pipeline);
  host::ImageBuildOptions build;
  build.layout = out.substr(4, last - 4);
  build.tag = out.substr(last + 1);
  build.kiln = host::executable_path();
  build.components = host::plugins_of(plan);
  build.pipeline_source = std::filesystem::absolute(options.pipeline.file).parent_path();
  build.image.pipeline_dir = options.pipeline_dir;
  for (const auto& add : options.adds) {
    const auto colon = add.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == add.size() || add[colon + 1] != '/')
      throw CommandError("--add " + add + ": write it as HOST_PATH:/PATH_IN_IMAGE", kExitUsage);
    build.extra.emplace_back(add.substr(0, colon), add.substr(colon + 1));
  }
  build.progress = [](const std::string& line) { std::cerr << "kiln image build: " << line << "\n"; };
  const host::BuiltImage built = host::build_image(build);
  std::cerr << "kiln image build: " << built.libraries.size() << " shared libraries, " << (built.bytes >> 20)
            << " MiB before compression\n";
  std::cout << built.reference << " " << built.digest << "\n";
  return kExitOk;
}

}  // namespace

void add_image_commands(CLI::App& app, Commands& commands) {
  static ImageBuildCommandOptions options;
  auto* group = Commands::add_group(app, "image", "Build OCI images that run a pipeline's steps (pods, containers)");
  auto* cmd = commands.add(*group, "build", "Build an OCI image with kiln, the plugins PIPELINE uses and its directory",
                           [] { return build(options); });
  add_pipeline_options(cmd, options.pipeline);
  cmd->add_option("--output,-o", options.output, "The image: oci:LAYOUT_DIR:TAG (the layout is created when absent)")
      ->required();
  cmd->add_option("--pipeline-dir", options.pipeline_dir,
                  "Where the image holds the pipeline's directory (kiln compile's --pipeline-dir)")
      ->capture_default_str();
  cmd->add_option("--add", options.adds, "Also copy HOST_PATH (a file or directory) to /PATH_IN_IMAGE; repeatable");
}

}  // namespace kiln::cli

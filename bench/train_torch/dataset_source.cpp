// bench.dataset: publishes an existing Dataset directory (given by path) as
// a step output, so `kiln run` can feed train.torch the exact bytes the
// PyTorch baseline reads. Benchmark-only; run.sh compiles it directly.
#include <kiln/sdk.hpp>

#include <filesystem>

struct DatasetSource {
  static kiln::Manifest manifest() {
    return kiln::Manifest("bench.dataset", "1.0.0", kiln::Kind::Data)
        .description("Copy a Dataset directory into the run (benchmark input)")
        .param(kiln::Param::String("path").description("a directory with data.safetensors and schema.json"))
        .output(kiln::Port("data", "Dataset"));
  }

  void run(kiln::Context& ctx) {
    namespace fs = std::filesystem;
    const fs::path source = ctx.param_string("path");
    if (!fs::exists(source / "schema.json"))
      throw kiln::Error(source.string() + " is not a Dataset directory", KILN_ERROR_INVALID_ARGUMENT);
    const auto out = ctx.output_path("data");
    fs::create_directories(out);
    fs::copy(source, out, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  }
};

KILN_PLUGIN(DatasetSource)

// The pipeline spec (host/lib/pipeline/spec_parser.cpp, yaml_json.cpp) and
// the plan (plan.cpp): the input as a spec file's YAML; a spec that parses is
// planned against a small catalog of manifests (catalog.json: components of
// the util, tune and sample plugins, no library loaded). Only SpecError may come out.
#include <kiln/host/catalog.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/spec.hpp>

#include "fuzz_catalog.hpp"
#include "fuzz_support.hpp"

using kiln::host::Json;

using kiln::fuzz::catalog;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)catalog();
  // Imports are resolved against the spec's directory: an empty scratch one.
  std::filesystem::current_path(kiln::fuzz::scratch_dir());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = kiln::fuzz::text_of(data, size);
  try {
    auto spec = kiln::host::parse_pipeline_text(text, "fuzz.yaml");
    (void)kiln::host::plan_pipeline(std::move(spec), catalog(), Json::object());
  } catch (const kiln::host::SpecError& error) {
    if (error.diagnostics().empty()) kiln::fuzz::fail("a SpecError without a diagnostic");
  }
  return 0;
}

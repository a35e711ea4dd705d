// The workspace configuration (host/lib/pipeline/profile.cpp, slurm_options.cpp):
// the input as a kiln.yaml's YAML. Only SpecError may come out, always with a
// diagnostic; every profile of a configuration that parses can be looked up.
#include <kiln/host/profile.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = kiln::fuzz::text_of(data, size);
  try {
    const auto config = kiln::host::parse_workspace_config_text(text, "/fuzz/kiln.yaml");
    for (const auto& [name, profile] : config.profiles) {
      if (&config.profile(name) != &profile) kiln::fuzz::fail("a profile is not found by its own name");
      (void)profile.slurm.sbatch_args();
    }
    if (config.default_profile && !config.profiles.count(*config.default_profile))
      kiln::fuzz::fail("default_profile names a profile that is not there");
  } catch (const kiln::host::SpecError& error) {
    if (error.diagnostics().empty()) kiln::fuzz::fail("a SpecError without a diagnostic");
  }
  return 0;
}

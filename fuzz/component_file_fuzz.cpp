// Component files (host/lib/pipeline/component_file.cpp) and the command
// report protocol (host/lib/execution/command_runner.cpp): the input is
// parsed as a component file (relative `files:` against an empty scratch
// directory), then each of its lines as a report line against a fixed
// manifest. Only SpecError may come out of the first; the second never throws.
#include <kiln/host/command_runner.hpp>
#include <kiln/host/component_file.hpp>

#include "fuzz_support.hpp"

namespace {

const kiln::host::ComponentManifest& manifest() {
  static const auto m = kiln::host::parse_manifest(kiln::host::Json{
      {"name", "fuzz.cmd"},
      {"version", "1.0.0"},
      {"kind", "generic"},
      {"output_parameters",
       {{{"name", "n"}, {"type", "int"}}, {{"name", "s"}, {"type", "string"}}, {{"name", "l"}, {"type", "list"}}}}});
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)manifest();
  std::filesystem::current_path(kiln::fuzz::scratch_dir());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = kiln::fuzz::text_of(data, size);
  try {
    const auto component = kiln::host::parse_component_text(text, "fuzz.yaml");
    if (component.digest.size() != 64) kiln::fuzz::fail("a component without a digest");
  } catch (const kiln::host::SpecError& error) {
    if (error.diagnostics().empty()) kiln::fuzz::fail("a SpecError without a diagnostic");
  }
  std::map<std::string, int64_t> steps;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const auto line = kiln::host::parse_report_line(std::string_view(text).substr(start, end - start), manifest(), steps);
    if (line.event && !line.error.empty()) kiln::fuzz::fail("a report line both read and refused");
    start = end + 1;
  }
  return 0;
}

#include <fstream>
#include <string>

#include "components.hpp"

namespace kiln::util {

Manifest Flaky::manifest() {
  return Manifest("util.flaky", "1.0.0", Kind::Generic)
      .description("Fail the first `failures` times it runs, then succeed (for testing retries)")
      .param(Param::Int("failures").default_value(1).min(0).max(1000).description("how many runs fail first"))
      .param(Param::String("counter_file")
                 .default_value("")
                 .description("a file that counts the runs across attempts (default: in the step's checkpoint dir)"))
      .output_parameter(Port("runs", "int").description("how many times it has run, this one included"));
}

void Flaky::run(Context& ctx) {
  std::string path = ctx.param_string("counter_file");
  if (path.empty()) path = (ctx.checkpoint_dir() / "runs").string();
  int64_t runs = 0;
  std::ifstream(path) >> runs;
  ++runs;
  std::ofstream out(path, std::ios::trunc);
  out << runs;
  if (!out.flush()) throw Error("cannot write " + path, KILN_ERROR_IO);
  if (runs <= ctx.param_int("failures")) throw Error("flaky failure " + std::to_string(runs), KILN_ERROR_UNKNOWN);
  ctx.set_output("runs", runs);
}

}  // namespace kiln::util

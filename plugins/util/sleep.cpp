#include <chrono>
#include <cstdio>
#include <thread>

#include "components.hpp"

namespace kiln::util {

Manifest Sleep::manifest() {
  return Manifest("util.sleep", "1.0.0", Kind::Generic)
      .description("Sleep for a while, reporting progress and honouring cancellation")
      .param(Param::Float("seconds").default_value(1.0).min(0).max(86400).description("how long to sleep"))
      .param(Param::Bool("print").default_value(false).description(
          "also print each progress report to stdout: a log that grows while it runs"));
}

void Sleep::run(Context& ctx) {
  using clock = std::chrono::steady_clock;
  const double seconds = ctx.param_float("seconds");
  const auto start = clock::now();
  const auto total = std::chrono::duration<double>(seconds);
  const bool print = ctx.param_bool("print");
  double last_reported = -1;
  for (auto elapsed = clock::now() - start; elapsed < total; elapsed = clock::now() - start) {
    ctx.throw_if_cancelled();
    const double fraction = std::chrono::duration<double>(elapsed) / total;
    if (fraction - last_reported >= 0.1) {
      ctx.progress(fraction, "sleeping");
      if (print) {
        std::printf("sleeping: %.0f%%\n", fraction * 100);
        std::fflush(stdout);
      }
      last_reported = fraction;
    }
    const auto left = std::chrono::duration_cast<clock::duration>(total - elapsed);
    std::this_thread::sleep_for(std::min<clock::duration>(std::chrono::milliseconds(10), left));
  }
  ctx.progress(1.0, "slept " + std::to_string(seconds) + " s");
  if (print) {
    std::printf("slept %g s\n", seconds);
    std::fflush(stdout);
  }
}

}  // namespace kiln::util

#include <chrono>
#include <cmath>
#include <thread>

#include "components.hpp"

namespace kiln::util {

Manifest Objective::manifest() {
  return Manifest("util.objective", "1.0.0", Kind::Train)
      .description(
          "A synthetic trial for tuning tests: loss = (x - 0.3)^2 + (y - 2)^2 / 10 + 1 / epoch, "
          "reported as metric 'loss' each epoch; output 'cost' = x^2 + y^2 / 10, a second objective that "
          "pulls the other way (to (0, 0))")
      .param(Param::Float("x").default_value(0.0).min(-10).max(10).description("first coordinate"))
      .param(Param::Int("y").default_value(0).min(-100).max(100).description("second coordinate"))
      .param(Param::Int("epochs").default_value(5).min(1).max(10000).description("epochs to 'train'"))
      .param(Param::Float("epoch_seconds").default_value(0.0).min(0).max(60).description("sleep per epoch"))
      .param(Param::Float("fail_above").default_value(1e9).description("fail (an error) when x is above this"))
      .output_parameter(Port("loss", "float").description("the loss at the last epoch"))
      .output_parameter(Port("cost", "float").description("x^2 + y^2 / 10"));
}

void Objective::run(Context& ctx) {
  const double x = ctx.param_float("x");
  const double y = static_cast<double>(ctx.param_int("y"));
  const int64_t epochs = ctx.param_int("epochs");
  const auto pause = std::chrono::duration<double>(ctx.param_float("epoch_seconds"));
  if (x > ctx.param_float("fail_above")) throw Error("x = " + std::to_string(x) + " is above fail_above");
  double loss = 0;
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    ctx.throw_if_cancelled();
    std::this_thread::sleep_for(pause);
    loss = (x - 0.3) * (x - 0.3) + (y - 2) * (y - 2) / 10.0 + 1.0 / static_cast<double>(epoch);
    ctx.metric("loss", loss, epoch);
    ctx.progress(static_cast<double>(epoch) / static_cast<double>(epochs));
  }
  ctx.set_output("loss", loss);
  ctx.set_output("cost", x * x + y * y / 10.0);
}

}  // namespace kiln::util

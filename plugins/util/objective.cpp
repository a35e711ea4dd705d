#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "components.hpp"

namespace kiln::util {

namespace {

// What a drifting objective keeps in its checkpoint: the last epoch done and
// the gain accumulated up to it ("EPOCH GAIN" in objective.state).
struct ObjectiveState {
  int64_t epoch = 0;
  double gain = 0;
};

ObjectiveState read_objective_state(const std::filesystem::path& dir) {
  ObjectiveState s;
  std::ifstream in(dir / "objective.state");
  if (!(in >> s.epoch >> s.gain) || s.epoch < 0 || !std::isfinite(s.gain)) return ObjectiveState{};
  return s;
}

void write_objective_state(const std::filesystem::path& dir, const ObjectiveState& s) {
  std::filesystem::create_directories(dir);
  const auto partial = dir / "objective.state.partial";
  {
    std::ofstream out(partial);
    out.precision(17);
    out << s.epoch << ' ' << s.gain << '\n';
    if (!out) throw Error("cannot write " + partial.string());
  }
  std::filesystem::rename(partial, dir / "objective.state");
}

// drift > 0: each epoch adds a gain that peaks where x is at the moving
// target exp(drift * (epoch - 1)) (width 20% of the target); the loss is
// 1 / (1 + the gain so far). The gain lives in the checkpoint, so a trial
// that starts from another's checkpoint keeps that trial's gain: population-
// based training (which follows the target) beats any fixed x.
void run_drifting(Context& ctx, double x, int64_t epochs, std::chrono::duration<double> pause, double drift) {
  const std::filesystem::path dir = ctx.checkpoint_dir();
  ObjectiveState state = read_objective_state(dir);
  if (state.epoch > 0)
    ctx.log(KILN_LOG_INFO,
            "resuming at epoch " + std::to_string(state.epoch + 1) + " with gain " + std::to_string(state.gain));
  double loss = 1.0 / (1.0 + state.gain);
  for (int64_t epoch = state.epoch + 1; epoch <= epochs; ++epoch) {
    ctx.throw_if_cancelled();
    std::this_thread::sleep_for(pause);
    const double target = std::exp(drift * static_cast<double>(epoch - 1));
    const double z = (x - target) / (0.2 * target);
    state.gain += std::exp(-z * z);
    state.epoch = epoch;
    write_objective_state(dir, state);
    loss = 1.0 / (1.0 + state.gain);
    ctx.metric("loss", loss, epoch);
    ctx.progress(static_cast<double>(epoch) / static_cast<double>(epochs));
  }
  ctx.set_output("loss", loss);
  ctx.set_output("cost", x * x + static_cast<double>(ctx.param_int("y") * ctx.param_int("y")) / 10.0);
  ctx.set_output("gain", state.gain);
}

}  // namespace

Manifest Objective::manifest() {
  return Manifest("util.objective", "1.1.0", Kind::Train)
      .description(
          "A synthetic trial for tuning tests: loss = (x - 0.3)^2 + (y - 2)^2 / 10 + 1 / epoch, "
          "reported as metric 'loss' each epoch; output 'cost' = x^2 + y^2 / 10, a second objective that "
          "pulls the other way (to (0, 0)); with drift > 0 a stateful objective whose optimum x moves "
          "(exp(drift * (epoch - 1))) and whose accumulated gain is kept in the checkpoint (for population-based "
          "training)")
      .param(Param::Float("x").default_value(0.0).min(-10).max(10).description("first coordinate"))
      .param(Param::Int("y").default_value(0).min(-100).max(100).description("second coordinate"))
      .param(Param::Int("epochs").default_value(5).min(1).max(10000).description("epochs to 'train'"))
      .param(Param::Float("epoch_seconds").default_value(0.0).min(0).max(60).description("sleep per epoch"))
      .param(Param::Float("fail_above").default_value(1e9).description("fail (an error) when x is above this"))
      .param(Param::Float("drift").default_value(0.0).min(0).max(1).description(
          "> 0: the drifting, checkpointed objective: loss = 1 / (1 + sum over epochs of "
          "exp(-((x - target) / (0.2 target))^2)), target = exp(drift * (epoch - 1)); resumes from the checkpoint"))
      .output_parameter(Port("loss", "float").description("the loss at the last epoch"))
      .output_parameter(Port("cost", "float").description("x^2 + y^2 / 10"))
      .output_parameter(Port("gain", "float").description("drift > 0: the gain accumulated (in the checkpoint)"));
}

void Objective::run(Context& ctx) {
  const double x = ctx.param_float("x");
  const double y = static_cast<double>(ctx.param_int("y"));
  const int64_t epochs = ctx.param_int("epochs");
  const auto pause = std::chrono::duration<double>(ctx.param_float("epoch_seconds"));
  if (x > ctx.param_float("fail_above")) throw Error("x = " + std::to_string(x) + " is above fail_above");
  if (const double drift = ctx.param_float("drift"); drift > 0) return run_drifting(ctx, x, epochs, pause, drift);
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

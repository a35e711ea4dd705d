// The compute placement of train.torch, evaluate and serve.torch: the device
// a `device` parameter resolves to, seeds for it, autocast for a precision,
// and fp16's dynamic loss scaling. Nothing here touches CUDA until a step asks
// for it (never at plugin load, describe or warm-up: CUDA does not survive
// the step server's fork).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "compute_options.hpp"

namespace kiln::ml {

// auto: CUDA (cuda:0) when LibTorch has it and the step sees a GPU, else the
// CPU. cpu never touches CUDA. cuda / cuda:N without such a GPU throws
// std::invalid_argument naming the parameter and saying a step sees only the
// GPUs given to it by `resources: {gpus: N}`.
at::Device resolve_device(const DeviceRequest& request);
// fp16 needs CUDA; throws std::invalid_argument naming `precision` otherwise.
void check_precision(Precision precision, const at::Device& device);
// Seeds the CPU generator, and every visible GPU's when `device` is CUDA.
void seed_generators(uint64_t seed, const at::Device& device);

// Autocast for bf16 / fp16 on `device` while alive (nothing for fp32);
// restores the previous state and clears autocast's cast cache on exit.
class AutocastScope {
 public:
  AutocastScope(const at::Device& device, Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

struct LossScalerOptions {
  double initial_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // good steps in a row before the scale grows
};

// fp16's dynamic loss scaling (LibTorch's C++ API has no GradScaler): the
// loss is multiplied by the scale before backward; before the optimizer
// steps, gradients with an inf or nan skip the step and halve the scale,
// finite ones are divided by it; after growth_interval good steps in a row
// the scale doubles.
class LossScaler {
 public:
  explicit LossScaler(LossScalerOptions options = {});
  at::Tensor scale(const at::Tensor& loss) const { return loss * scale_; }
  // True when every gradient is finite, and then divides them by the scale;
  // false leaves them as they are (the caller skips the optimizer step).
  bool unscale(const std::vector<at::Tensor>& parameters) const;
  // After each step: `finite` is what unscale returned.
  void update(bool finite);
  double scale_value() const { return scale_; }
  int64_t skipped_steps() const { return skipped_; }

 private:
  LossScalerOptions options_;
  double scale_;
  int64_t good_steps_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace kiln::ml

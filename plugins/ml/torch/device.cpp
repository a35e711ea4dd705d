#include "device.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

namespace kiln::ml {
namespace {

// LibTorch 2.4 replaced the per-device autocast functions with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_enabled(bool cuda) {
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
}
void set_autocast(bool cuda, bool enabled) {
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, enabled);
}
at::ScalarType autocast_dtype(bool cuda) {
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
}
void set_autocast_dtype(bool cuda, at::ScalarType dtype) {
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
}
#else
bool autocast_enabled(bool cuda) {
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void set_autocast(bool cuda, bool enabled) {
  if (cuda)
    at::autocast::set_enabled(enabled);
  else
    at::autocast::set_cpu_enabled(enabled);
}
at::ScalarType autocast_dtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(bool cuda, at::ScalarType dtype) {
  if (cuda)
    at::autocast::set_autocast_gpu_dtype(dtype);
  else
    at::autocast::set_autocast_cpu_dtype(dtype);
}
#endif

constexpr const char* kGpusGiven = "a step sees only the GPUs given to it by resources: {gpus: N} (docs/gpu.md)";

std::string visible_devices() {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  return visible == nullptr ? "unset" : "'" + std::string(visible) + "'";
}

}  // namespace

at::Device resolve_device(const DeviceRequest& request) {
  if (request.kind == DeviceKind::Cpu) return at::kCPU;
  const bool cuda = torch::cuda::is_available();
  if (request.kind == DeviceKind::Auto) return cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  const std::string asked = "device: " + request.text;
#ifndef KILN_TORCH_CUDA_VERSION  // a compile-time fact: CMake found a LibTorch built without CUDA
  throw std::invalid_argument(asked + " needs a GPU, but this kiln_torch was built against a LibTorch without CUDA " +
                              "(build it against a CUDA LibTorch, docs/gpu.md), and " + kGpusGiven +
                              "; use device: auto or cpu to train on the CPU");
#endif
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (!cuda || count == 0)
    throw std::invalid_argument(asked + " needs a GPU, and this step sees none (CUDA_VISIBLE_DEVICES " +
                                visible_devices() + "): " + kGpusGiven + "; use device: auto or cpu to run on the CPU");
  if (request.index >= count)
    throw std::invalid_argument(asked + ", but this step sees " + std::to_string(count) + " GPU" +
                                (count == 1 ? "" : "s") + " (cuda:0 to cuda:" + std::to_string(count - 1) +
                                "): " + kGpusGiven + ", numbered from 0");
  return at::Device(at::kCUDA, static_cast<at::DeviceIndex>(request.index));
}

void check_precision(Precision precision, const at::Device& device) {
  if (precision == Precision::Fp16 && !device.is_cuda())
    throw std::invalid_argument(
        "precision: fp16 needs a CUDA device, and this step computes on the CPU; use bf16 "
        "(or fp32) on the CPU");
}

void seed_generators(uint64_t seed, const at::Device& device) {
  {
    auto generator = at::detail::getDefaultCPUGenerator();  // a handle sharing the default generator
    const std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(seed);
  }
  if (device.is_cuda()) torch::cuda::manual_seed_all(seed);
}

AutocastScope::AutocastScope(const at::Device& device, Precision precision) {
  if (precision == Precision::Fp32) return;
  active_ = true;
  cuda_ = device.is_cuda();
  previous_enabled_ = autocast_enabled(cuda_);
  previous_dtype_ = autocast_dtype(cuda_);
  set_autocast(cuda_, true);
  set_autocast_dtype(cuda_, precision == Precision::Bf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // Casts of the weights are cached while autocast is on; the optimizer
  // changes the weights next, so the cache must go (as torch.autocast does).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(cuda_, previous_enabled_);
  set_autocast_dtype(cuda_, previous_dtype_);
}

LossScaler::LossScaler(LossScalerOptions options) : options_(options), scale_(options.initial_scale) {}

bool LossScaler::unscale(const std::vector<at::Tensor>& parameters) const {
  std::vector<at::Tensor> grads;
  for (const auto& p : parameters)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return true;
  // One host synchronisation for all gradients.
  at::Tensor bad = at::zeros({}, grads.front().options().dtype(at::kLong));
  for (const auto& g : grads) bad = bad + at::logical_not(at::isfinite(g)).sum();
  if (bad.item<int64_t>() > 0) return false;
  const double inverse = 1.0 / scale_;
  for (auto& g : grads) g.mul_(inverse);
  return true;
}

void LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= options_.backoff_factor;
    good_steps_ = 0;
    ++skipped_;
    return;
  }
  if (++good_steps_ >= options_.growth_interval) {
    scale_ *= options_.growth_factor;
    good_steps_ = 0;
  }
}

}  // namespace kiln::ml

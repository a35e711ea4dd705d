// The network behind a Model artifact, in LibTorch: built from a ModelSpec,
// saved as model.json + weights.safetensors, loaded back for evaluation and
// (later) serving. Static library kiln_torch_model; link it with LibTorch.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <optional>

#include "model_spec.hpp"
#include "predict.hpp"
#include "safetensors.hpp"

namespace kiln::ml {

class TorchModel {
 public:
  explicit TorchModel(ModelSpec spec);

  const ModelSpec& spec() const { return spec_; }
  torch::nn::Sequential& net() { return net_; }
  const torch::Device& device() const { return device_; }
  // Moves the parameters and buffers (the same tensors, so an optimizer made
  // before keeps them); the model's files stay device-independent.
  void to(const torch::Device& device);

  // Raw outputs (logits, or standardised regression values) for a batch of
  // dataset-valued features [B, ...feature_shape]; train or eval mode as set.
  torch::Tensor forward(const torch::Tensor& features);
  // What serving returns: eval mode, no autograd; class probabilities
  // (softmax) [B, classes] or regression predictions in label units [B, 1],
  // on the CPU whatever the model's device (features may be on either).
  torch::Tensor predict(const torch::Tensor& features);

 private:
  ModelSpec spec_;
  torch::nn::Sequential net_;
  torch::Device device_ = torch::kCPU;
};

// Builds a freshly initialised network (initialisation follows torch's RNG).
TorchModel build_model(const ModelSpec& spec);
// Reads model.json and weights.safetensors onto `device` (the files hold CPU
// tensors, whatever device trained them); throws std::runtime_error naming
// the directory and the tensor that is missing or mis-shaped.
TorchModel load_model(const std::filesystem::path& dir, const torch::Device& device = torch::kCPU);
// Writes model.json and weights.safetensors (always from CPU copies) into `dir` (created), and copies
// `transform_dir` verbatim to dir/transform when given.
void save_model(TorchModel& model, const std::filesystem::path& dir,
                const std::optional<std::filesystem::path>& transform_dir = std::nullopt);

// The network's state (parameters and buffers) by state_dict name, and back.
TensorFile state_to_tensors(torch::nn::Module& module);
void load_state(torch::nn::Module& module, const TensorFile& file, const std::string& where);

// A dataset tensor as a float torch tensor (a copy; U8 values kept, not scaled).
torch::Tensor to_torch_float(const Tensor& tensor);
torch::Tensor to_torch_labels(const Tensor& tensor);  // I64 stays I64, others become F32
Tensor from_torch(const torch::Tensor& tensor);       // contiguous CPU F32 / I64 only

}  // namespace kiln::ml

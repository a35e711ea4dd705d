// The torch-free half of the Model artifact (type "Model", format
// "kiln.model/v1"): the architecture description in model.json, complete
// enough to rebuild the network, and the file names of the artifact.
// train.torch writes it, evaluate and the serving runtime read it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dataset.hpp"

namespace kiln::ml {

inline constexpr const char* kModelFormat = "kiln.model/v1";
inline constexpr const char* kModelJson = "model.json";
inline constexpr const char* kModelWeights = "weights.safetensors";
inline constexpr const char* kModelTransformDir = "transform";

struct ModelSpec {
  std::string architecture = "mlp";    // mlp | cnn
  std::vector<int64_t> feature_shape;  // one example: [D] or [C, H, W] ([H, W] means one channel)
  std::vector<int64_t> hidden_sizes;   // mlp: dense layers
  std::vector<int64_t> conv_channels;  // cnn: one conv block each
  int64_t kernel_size = 3;             // cnn: odd, "same" padding
  std::string pooling = "max";         // cnn: max | avg | none (2x2 after each block)
  std::vector<int64_t> dense_sizes;    // cnn: dense layers after the conv blocks
  std::string activation = "relu";     // relu | tanh | gelu | sigmoid
  double dropout = 0.0;                // after each dense hidden layer
  bool batch_norm = false;             // after each hidden linear / conv layer
  int64_t num_outputs = 1;             // classes, or 1 for regression
  Task task = Task::Classification;
  std::vector<std::string> classes;  // classification
  std::string label_name;
  // The network multiplies its input by this first: 1/255 when the training
  // features were U8 pixels, so serving feeds the dataset's raw values.
  double input_scale = 1.0;
  // Regression targets are standardised for training; predictions are
  // un-standardised with these (prediction = output * std + mean).
  double target_mean = 0.0;
  double target_std = 1.0;
  // "transform/transform.json" when the training step was given a transform.
  std::optional<std::string> transform;
};

std::string model_spec_to_json(const ModelSpec& spec);
// Throws std::runtime_error naming `source` and what is wrong.
ModelSpec model_spec_from_json(const std::string& text, const std::filesystem::path& source);
ModelSpec read_model_spec(const std::filesystem::path& model_dir);

// Throws std::runtime_error when `shape` (one example) differs from the model's input.
void check_feature_shape(const ModelSpec& spec, const std::vector<int64_t>& shape, const std::string& where);

}  // namespace kiln::ml

#include "model.hpp"

#include <cstring>
#include <stdexcept>

#include "device.hpp"
#include "heap_tuning.hpp"

namespace kiln::ml {
namespace fs = std::filesystem;
namespace nn = torch::nn;

namespace {

void add_activation(nn::Sequential& net, const std::string& name) {
  if (name == "relu") {
    net->push_back(nn::ReLU());
  } else if (name == "tanh") {
    net->push_back(nn::Tanh());
  } else if (name == "gelu") {
    net->push_back(nn::GELU());
  } else if (name == "sigmoid") {
    net->push_back(nn::Sigmoid());
  } else {
    throw std::runtime_error("unknown activation '" + name + "' (relu, tanh, gelu, sigmoid)");
  }
}

// Linear -> [BatchNorm] -> activation -> [Dropout], for each size; returns the width left.
int64_t add_dense_stack(nn::Sequential& net, int64_t width, const std::vector<int64_t>& sizes, const ModelSpec& s) {
  for (const int64_t size : sizes) {
    if (size <= 0) throw std::runtime_error("dense layer sizes must be positive");
    net->push_back(nn::Linear(width, size));
    if (s.batch_norm) net->push_back(nn::BatchNorm1d(size));
    add_activation(net, s.activation);
    if (s.dropout > 0) net->push_back(nn::Dropout(s.dropout));
    width = size;
  }
  return width;
}

std::vector<int64_t> image_shape(const ModelSpec& s) {
  if (s.feature_shape.size() == 3) return s.feature_shape;
  if (s.feature_shape.size() == 2) return {1, s.feature_shape[0], s.feature_shape[1]};
  throw std::runtime_error("a cnn needs image features [C, H, W] or [H, W], not " +
                           std::to_string(s.feature_shape.size()) + "-dimensional ones");
}

// Conv blocks; returns the flattened width after them.
int64_t add_conv_stack(nn::Sequential& net, const ModelSpec& s) {
  const auto chw = image_shape(s);
  if (s.feature_shape.size() == 2) net->push_back(nn::Unflatten(nn::UnflattenOptions(1, {1, chw[1]})));
  if (s.kernel_size < 1 || s.kernel_size % 2 == 0) throw std::runtime_error("kernel_size must be odd and positive");
  int64_t channels = chw[0], h = chw[1], w = chw[2];
  for (const int64_t out : s.conv_channels) {
    net->push_back(nn::Conv2d(nn::Conv2dOptions(channels, out, s.kernel_size).padding(s.kernel_size / 2)));
    if (s.batch_norm) net->push_back(nn::BatchNorm2d(out));
    add_activation(net, s.activation);
    if (s.pooling == "max") {
      net->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
    } else if (s.pooling == "avg") {
      net->push_back(nn::AvgPool2d(nn::AvgPool2dOptions(2)));
    } else if (s.pooling != "none") {
      throw std::runtime_error("unknown pooling '" + s.pooling + "' (max, avg, none)");
    }
    if (s.pooling != "none") h /= 2, w /= 2;
    if (h < 1 || w < 1)
      throw std::runtime_error("too many pooling blocks for a " + std::to_string(chw[1]) + "x" +
                               std::to_string(chw[2]) + " image");
    channels = out;
  }
  net->push_back(nn::Flatten());
  return channels * h * w;
}

int64_t flat_width(const std::vector<int64_t>& shape) {
  int64_t width = 1;
  for (const int64_t d : shape) width *= d;
  return width;
}

nn::Sequential build_net(const ModelSpec& s) {
  if (s.num_outputs < 1) throw std::runtime_error("num_outputs must be positive");
  nn::Sequential net;
  int64_t width = 0;
  if (s.architecture == "cnn") {
    width = add_dense_stack(net, add_conv_stack(net, s), s.dense_sizes, s);
  } else if (s.architecture == "mlp") {
    if (s.feature_shape.size() != 1) net->push_back(nn::Flatten());
    width = add_dense_stack(net, flat_width(s.feature_shape), s.hidden_sizes, s);
  } else {
    throw std::runtime_error("unknown architecture '" + s.architecture + "' (mlp, cnn)");
  }
  net->push_back(nn::Linear(width, s.num_outputs));
  return net;
}

DType dtype_of(const torch::Tensor& t) {
  if (t.scalar_type() == torch::kFloat32) return DType::F32;
  if (t.scalar_type() == torch::kInt64) return DType::I64;
  throw std::runtime_error("only F32 and I64 tensors are stored");
}

}  // namespace

TorchModel::TorchModel(ModelSpec spec) : spec_(std::move(spec)), net_(build_net(spec_)) {}

torch::Tensor TorchModel::forward(const torch::Tensor& features) {
  const auto scaled = spec_.input_scale == 1.0 ? features : features * spec_.input_scale;
  return net_->forward(scaled);
}

void TorchModel::to(const torch::Device& device) {
  net_->to(device);
  device_ = device;
}

torch::Tensor TorchModel::predict(const torch::Tensor& features) {
  const torch::NoGradGuard no_grad;
  net_->eval();
  const auto out = forward(features.to(device_));
  if (spec_.task == Task::Classification) return torch::softmax(out, 1).to(torch::kCPU);
  return (out * spec_.target_std + spec_.target_mean).to(torch::kCPU);
}

TorchModel build_model(const ModelSpec& spec) {
  return TorchModel(spec);
}

TensorFile state_to_tensors(nn::Module& module) {
  TensorFile file;
  for (const auto& item : module.named_parameters()) file.tensors[item.key()] = from_torch(item.value().detach());
  for (const auto& item : module.named_buffers()) file.tensors[item.key()] = from_torch(item.value());
  return file;
}

void load_state(nn::Module& module, const TensorFile& file, const std::string& where) {
  const torch::NoGradGuard no_grad;
  auto assign = [&](const std::string& name, torch::Tensor& target) {
    const auto found = file.tensors.find(name);
    if (found == file.tensors.end()) throw std::runtime_error(where + ": no tensor '" + name + "'");
    const auto value =
        found->second.dtype == DType::I64 ? to_torch_labels(found->second) : to_torch_float(found->second);
    if (value.sizes() != target.sizes() || value.scalar_type() != target.scalar_type())
      throw std::runtime_error(where + ": tensor '" + name + "' has the wrong shape or type for this architecture");
    target.copy_(value);
  };
  for (auto& item : module.named_parameters()) assign(item.key(), item.value());
  for (auto& item : module.named_buffers()) assign(item.key(), item.value());
}

TorchModel load_model(const fs::path& dir, const torch::Device& device) {
  TorchModel model(read_model_spec(dir));
  const auto weights = dir / kModelWeights;
  if (!fs::exists(weights)) throw std::runtime_error(dir.string() + ": not a Model artifact (no weights.safetensors)");
  load_state(*model.net(), read_safetensors(weights), weights.string());
  model.to(device);
  model.net()->eval();
  return model;
}

void save_model(TorchModel& model, const fs::path& dir, const std::optional<fs::path>& transform_dir) {
  fs::create_directories(dir);
  ModelSpec spec = model.spec();
  if (transform_dir) {
    fs::remove_all(dir / kModelTransformDir);
    copy_tree_writable(*transform_dir, dir / kModelTransformDir);
    spec.transform = std::string(kModelTransformDir) + "/transform.json";
  }
  auto file = state_to_tensors(*model.net());
  file.metadata["format"] = kModelFormat;
  write_safetensors(dir / kModelWeights, file);
  write_text_atomic(dir / kModelJson, model_spec_to_json(spec));
}

torch::Tensor to_torch_float(const Tensor& tensor) {
  // from_blob borrows the bytes; clone / to() make the copy the result owns.
  auto* bytes = const_cast<std::byte*>(tensor.bytes.data());
  if (tensor.dtype == DType::F32) return torch::from_blob(bytes, tensor.shape, torch::kFloat32).clone();
  if (tensor.dtype == DType::U8) return torch::from_blob(bytes, tensor.shape, torch::kUInt8).to(torch::kFloat32);
  return torch::tensor(tensor.to_float(), torch::kFloat32).reshape(tensor.shape);
}

torch::Tensor to_torch_labels(const Tensor& tensor) {
  if (tensor.dtype != DType::I64) return to_torch_float(tensor);
  auto out = torch::empty(tensor.shape, torch::kInt64);
  std::memcpy(out.data_ptr<int64_t>(), tensor.data<int64_t>(), tensor.bytes.size());
  return out;
}

Tensor from_torch(const torch::Tensor& tensor) {
  const auto t = tensor.contiguous().cpu();
  Tensor out(dtype_of(t), t.sizes().vec());
  std::memcpy(out.bytes.data(), t.data_ptr(), out.bytes.size());
  return out;
}

}  // namespace kiln::ml

namespace kiln::ml {

Predictions predict_dataset(const fs::path& model_dir, const Dataset& data, int64_t batch_size, int64_t threads,
                            const DeviceRequest& device) {
  retain_freed_memory();
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  auto model = load_model(model_dir, resolve_device(device));
  check_feature_shape(model.spec(), data.schema.feature_shape, model_dir.string() + " on this dataset");
  const auto features = to_torch_float(data.features);
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < features.size(0); start += batch_size)
    parts.push_back(model.predict(features.slice(0, start, std::min(start + batch_size, features.size(0)))));
  const auto all = parts.empty() ? torch::empty({0, 1}) : torch::cat(parts).contiguous();
  Predictions out;
  out.spec = model.spec();
  out.rows = all.size(0);
  out.width = all.size(1);
  out.values.assign(all.data_ptr<float>(), all.data_ptr<float>() + all.numel());
  return out;
}

}  // namespace kiln::ml

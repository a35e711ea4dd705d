// serve.torch: the built-in serving runtime (KilnServingApi). It serves a kiln
// Model artifact (model.json + weights.safetensors [+ transform/], applying
// the fitted transform to raw rows) or a TorchScript module saved by PyTorch
// (torch.jit.save) described by the model config's "inputs"/"outputs".
// The only LibTorch TU of the runtime; the registration is in plugin.cpp.
#include <torch/script.h>
#include <kiln/sdk.hpp>

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "bad_argument.hpp"
#include "components.hpp"
#include "device.hpp"
#include "model.hpp"
#include "torch_build.hpp"
#include "transform.hpp"

namespace kiln::ml {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct TensorInfo {
  std::string name;
  KilnDataType datatype = KILN_DT_FP32;
  std::vector<int64_t> shape;  // -1 for a variable dimension
};

json tensor_info_json(const TensorInfo& t) {
  return {{"name", t.name}, {"datatype", datatype_name(t.datatype)}, {"shape", t.shape}};
}

std::vector<TensorInfo> tensor_infos(const json& config, const char* key) {
  if (!config.contains(key) || !config[key].is_array() || config[key].empty())
    bad(std::string("a TorchScript model's config needs \"") + key + "\": [{\"name\", \"datatype\", \"shape\"}, ...]");
  std::vector<TensorInfo> out;
  for (const auto& item : config[key]) {
    TensorInfo t;
    t.name = item.value("name", "");
    t.datatype = datatype_from_name(item.value("datatype", ""));
    if (t.name.empty() || t.datatype == 0 || !item.contains("shape") || !item["shape"].is_array())
      bad(std::string("config \"") + key + "\" entry " + item.dump() + " needs a name, a datatype and a shape");
    t.shape = item["shape"].get<std::vector<int64_t>>();
    out.push_back(std::move(t));
  }
  return out;
}

torch::ScalarType scalar_type(KilnDataType type) {
  switch (type) {
    case KILN_DT_BOOL:
      return torch::kBool;
    case KILN_DT_UINT8:
      return torch::kByte;
    case KILN_DT_INT8:
      return torch::kChar;
    case KILN_DT_INT16:
      return torch::kShort;
    case KILN_DT_INT32:
      return torch::kInt;
    case KILN_DT_INT64:
      return torch::kLong;
    case KILN_DT_FP16:
      return torch::kHalf;
    case KILN_DT_FP32:
      return torch::kFloat;
    case KILN_DT_FP64:
      return torch::kDouble;
    default:
      throw Error("LibTorch has no tensor type for " + datatype_name(type), KILN_ERROR_UNSUPPORTED);
  }
}

// A request tensor as a torch tensor (a copy, so the model may keep it).
torch::Tensor to_torch(const KilnTensor& t) {
  const std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
  return torch::from_blob(const_cast<void*>(t.data), shape, torch::TensorOptions().dtype(scalar_type(t.datatype)))
      .clone();
}

// Runs `f` with LibTorch's errors as bad input (KILN_ERROR_INVALID_ARGUMENT)
// and any other exception as an internal error carrying its message.
template <class F>
auto torch_errors(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Error(e.what_without_backtrace(), KILN_ERROR_INVALID_ARGUMENT);
  } catch (const std::exception& e) {
    throw Error(e.what(), KILN_ERROR_INTERNAL);
  }
}

// A loaded model behind the SDK's serving wrapper (kiln::serving_table):
// load() picks the kind from the directory, infer() checks the request
// against the signature and runs it; unloading is the destructor.
class ServedModel {
 public:
  virtual ~ServedModel() = default;
  ServedModel() = default;
  ServedModel(const ServedModel&) = delete;
  ServedModel& operator=(const ServedModel&) = delete;

  static std::unique_ptr<ServedModel> load(const fs::path& dir, const std::string& config_json);
  std::string metadata() const { return metadata_; }
  std::vector<Output> infer(const Inputs& inputs) {
    return torch_errors([&] { return infer_checked(inputs); });
  }

  // Runs one batch; returns the outputs in declaration order.
  virtual std::vector<torch::Tensor> run(const std::vector<const KilnTensor*>& inputs) = 0;

  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }

 protected:
  void set_signature(std::vector<TensorInfo> inputs, std::vector<TensorInfo> outputs, json extra) {
    inputs_ = std::move(inputs);
    outputs_ = std::move(outputs);
    extra["inputs"] = json::array();
    extra["outputs"] = json::array();
    for (const auto& t : inputs_) extra["inputs"].push_back(tensor_info_json(t));
    for (const auto& t : outputs_) extra["outputs"].push_back(tensor_info_json(t));
    metadata_ = extra.dump();
  }
  std::mutex run_mutex_;  // LibTorch modules are run one batch at a time

 private:
  std::vector<TensorInfo> inputs_, outputs_;
  std::string metadata_;

  std::vector<Output> infer_checked(const Inputs& inputs);
};

// A kiln Model artifact: raw rows -> transform -> network -> probabilities.
class KilnArtifactModel : public ServedModel {
 public:
  KilnArtifactModel(const fs::path& dir, const json& config, const torch::Device& device)
      : model_(load_model(dir, device)) {
    const auto& spec = model_.spec();
    std::vector<int64_t> raw_shape = spec.feature_shape;
    if (spec.transform) {
      transform_ = load_transform(dir / "transform");
      raw_shape = transform_->input_shape;
      if (transform_->output_shape() != spec.feature_shape)
        bad(dir.string() + ": the transform's output shape does not match the model's features");
    }
    TensorInfo input{config.value("input_name", std::string("input")), KILN_DT_FP32, {-1}};
    input.shape.insert(input.shape.end(), raw_shape.begin(), raw_shape.end());
    const bool classify = spec.task == Task::Classification;
    TensorInfo output{classify ? "probabilities" : "predictions", KILN_DT_FP32, {-1, spec.num_outputs}};
    json extra{{"platform", "kiln_torch"}, {"task", task_name(spec.task)}, {"device", device.str()}};
    if (classify) extra["classes"] = spec.classes;
    set_signature({input}, {output}, extra);
    model_.net()->eval();
  }

  std::vector<torch::Tensor> run(const std::vector<const KilnTensor*>& inputs) override {
    const KilnTensor& in = *inputs.at(0);
    const int64_t rows = in.shape[0];
    std::vector<int64_t> shape{rows};
    const auto& feature_shape = model_.spec().feature_shape;
    shape.insert(shape.end(), feature_shape.begin(), feature_shape.end());
    torch::Tensor features;
    if (transform_) {
      features = torch::empty(shape, torch::kFloat);
      apply_transform(*transform_, static_cast<const float*>(in.data), rows, features.data_ptr<float>());
    } else {
      features = torch::from_blob(const_cast<void*>(in.data), shape, torch::kFloat);
    }
    const std::lock_guard<std::mutex> lock(run_mutex_);
    return {model_.predict(features).contiguous()};
  }

 private:
  TorchModel model_;
  std::optional<Transform> transform_;
};

// A TorchScript module: forward(inputs in config order) -> a tensor or a tuple.
class TorchScriptModel : public ServedModel {
 public:
  TorchScriptModel(const fs::path& dir, const json& config, const torch::Device& device) : device_(device) {
    const fs::path file = dir / config.value("file", std::string("model.pt"));
    if (!fs::exists(file)) bad(file.string() + " does not exist (set \"file\" in the model config)");
    try {
      module_ = torch::jit::load(file.string(), device);
    } catch (const c10::Error& e) {
      bad("cannot load TorchScript " + file.string() + ": " + e.what_without_backtrace());
    }
    module_.eval();
    auto ins = tensor_infos(config, "inputs");
    auto outs = tensor_infos(config, "outputs");
    for (const auto& t : ins) scalar_type(t.datatype);
    for (const auto& t : outs) scalar_type(t.datatype);
    set_signature(std::move(ins), std::move(outs), {{"platform", "pytorch_torchscript"}, {"device", device.str()}});
  }

  std::vector<torch::Tensor> run(const std::vector<const KilnTensor*>& inputs) override {
    std::vector<torch::jit::IValue> args;
    for (const KilnTensor* t : inputs) args.emplace_back(to_torch(*t).to(device_));
    const torch::NoGradGuard no_grad;
    torch::jit::IValue result;
    {
      const std::lock_guard<std::mutex> lock(run_mutex_);
      result = module_.forward(args);
    }
    std::vector<torch::Tensor> values;
    if (result.isTensor()) {
      values.push_back(result.toTensor());
    } else if (result.isTuple()) {
      for (const auto& v : result.toTuple()->elements()) values.push_back(v.toTensor());
    } else if (result.isTensorList()) {
      for (const auto& v : result.toTensorVector()) values.push_back(v);
    } else {
      throw Error("the TorchScript module returned neither a tensor nor a tuple of tensors", KILN_ERROR_INTERNAL);
    }
    if (values.size() != outputs().size())
      throw Error("the TorchScript module returned " + std::to_string(values.size()) + " tensors, the config names " +
                      std::to_string(outputs().size()),
                  KILN_ERROR_INTERNAL);
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = values[i].to(torch::kCPU, scalar_type(outputs()[i].datatype)).contiguous();
    return values;
  }

 private:
  torch::jit::Module module_;
  torch::Device device_;
};

std::unique_ptr<ServedModel> ServedModel::load(const fs::path& dir, const std::string& config_json) {
  return torch_errors([&]() -> std::unique_ptr<ServedModel> {
    const json config = json::parse(config_json.empty() ? "{}" : config_json);
    const int64_t threads = config.value("threads", int64_t{0});
    if (threads > 0) at::set_num_threads(static_cast<int>(threads));
    if (config.contains("device") && !config["device"].is_string())
      bad("the model config's \"device\" must be a string: auto, cpu, cuda or cuda:N");
    torch::Device device = torch::kCPU;
    try {
      device = resolve_device(parse_device(config.value("device", std::string("auto"))));
    } catch (const std::invalid_argument& e) {
      bad(std::string("the model config's ") + e.what());
    }
    if (fs::exists(dir / "model.json")) return std::make_unique<KilnArtifactModel>(dir, config, device);
    return std::make_unique<TorchScriptModel>(dir, config, device);
  });
}

std::vector<Output> ServedModel::infer_checked(const Inputs& inputs) {
  std::vector<const KilnTensor*> ordered;
  for (const auto& info : inputs_) {
    const KilnTensor* found = inputs.find(info.name);
    if (found == nullptr) bad("input '" + info.name + "' is missing");
    if (found->datatype != info.datatype)
      bad("input '" + info.name + "' must be " + datatype_name(info.datatype) + ", not " +
          datatype_name(found->datatype));
    if (found->ndim != info.shape.size() || found->ndim == 0) bad("input '" + info.name + "' has the wrong rank");
    ordered.push_back(found);
  }
  const std::vector<torch::Tensor> values = run(ordered);
  std::vector<Output> out;
  for (size_t i = 0; i < values.size(); ++i) {
    auto value = std::make_shared<const torch::Tensor>(values[i]);  // contiguous CPU; kept until released
    out.push_back(Output{outputs_[i].name, outputs_[i].datatype, value->sizes().vec(), value->data_ptr(),
                         static_cast<uint64_t>(value->nbytes()), value});
  }
  return out;
}

}  // namespace

Manifest ServeTorch::manifest() {
  return Manifest("serve.torch", "1.0.0", Kind::Serve)
      .description(with_torch_build("Serving runtime: kiln Model artifacts (the fitted transform applied to raw rows) "
                                    "and TorchScript modules, on the CPU or a GPU (model config \"device\")"));
}

const KilnServingApi* ServeTorch::serving() {
  return serving_table<ServedModel>();
}

}  // namespace kiln::ml

#include "model_spec.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace kiln::ml {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  return json(shape).dump();
}

json architecture_json(const ModelSpec& s) {
  json a = {{"type", s.architecture}, {"feature_shape", s.feature_shape}, {"activation", s.activation},
            {"dropout", s.dropout},   {"batch_norm", s.batch_norm},       {"num_outputs", s.num_outputs}};
  if (s.architecture == "cnn") {
    a["conv_channels"] = s.conv_channels;
    a["kernel_size"] = s.kernel_size;
    a["pooling"] = s.pooling;
    a["dense_sizes"] = s.dense_sizes;
  } else {
    a["hidden_sizes"] = s.hidden_sizes;
  }
  return a;
}

json io_json(const std::string& name, const std::vector<int64_t>& one_example) {
  std::vector<int64_t> shape{-1};
  shape.insert(shape.end(), one_example.begin(), one_example.end());
  return {{"name", name}, {"datatype", "FP32"}, {"shape", shape}};
}

void parse_architecture(const json& a, ModelSpec& s) {
  s.architecture = a.at("type").get<std::string>();
  if (s.architecture != "mlp" && s.architecture != "cnn")
    throw std::runtime_error("architecture.type must be mlp or cnn, not '" + s.architecture + "'");
  s.feature_shape = a.at("feature_shape").get<std::vector<int64_t>>();
  s.activation = a.at("activation").get<std::string>();
  s.dropout = a.at("dropout").get<double>();
  s.batch_norm = a.at("batch_norm").get<bool>();
  s.num_outputs = a.at("num_outputs").get<int64_t>();
  if (s.architecture == "cnn") {
    s.conv_channels = a.at("conv_channels").get<std::vector<int64_t>>();
    s.kernel_size = a.at("kernel_size").get<int64_t>();
    s.pooling = a.at("pooling").get<std::string>();
    s.dense_sizes = a.at("dense_sizes").get<std::vector<int64_t>>();
  } else {
    s.hidden_sizes = a.at("hidden_sizes").get<std::vector<int64_t>>();
  }
}

}  // namespace

std::string model_spec_to_json(const ModelSpec& s) {
  const bool classify = s.task == Task::Classification;
  json j = {{"format", kModelFormat},
            {"task", task_name(s.task)},
            {"architecture", architecture_json(s)},
            {"label", {{"name", s.label_name}}},
            {"input", io_json("input", s.feature_shape)},
            {"output", io_json(classify ? "probabilities" : "predictions", {s.num_outputs})},
            {"weights", kModelWeights},
            {"transform", s.transform ? json(*s.transform) : json(nullptr)}};
  j["input"]["scale"] = s.input_scale;
  if (classify) {
    j["label"]["classes"] = s.classes;
  } else {
    j["target"] = {{"mean", s.target_mean}, {"std", s.target_std}};
  }
  return j.dump(2) + "\n";
}

ModelSpec model_spec_from_json(const std::string& text, const fs::path& source) {
  try {
    const json j = json::parse(text);
    if (j.value("format", "") != kModelFormat)
      throw std::runtime_error("format must be \"" + std::string(kModelFormat) + "\"");
    ModelSpec s;
    const auto task = j.at("task").get<std::string>();
    if (task != "classification" && task != "regression")
      throw std::runtime_error("task must be classification or regression, not '" + task + "'");
    s.task = task == "classification" ? Task::Classification : Task::Regression;
    parse_architecture(j.at("architecture"), s);
    s.label_name = j.at("label").value("name", "");
    if (s.task == Task::Classification) {
      s.classes = j.at("label").at("classes").get<std::vector<std::string>>();
      if (static_cast<int64_t>(s.classes.size()) != s.num_outputs)
        throw std::runtime_error("label.classes has " + std::to_string(s.classes.size()) +
                                 " names but num_outputs is " + std::to_string(s.num_outputs));
    } else {
      s.target_mean = j.at("target").at("mean").get<double>();
      s.target_std = j.at("target").at("std").get<double>();
    }
    s.input_scale = j.at("input").value("scale", 1.0);
    if (j.contains("transform") && j["transform"].is_string()) s.transform = j["transform"].get<std::string>();
    return s;
  } catch (const std::exception& e) {
    throw std::runtime_error(source.string() + ": not a valid model description: " + e.what());
  }
}

ModelSpec read_model_spec(const fs::path& model_dir) {
  const auto path = model_dir / kModelJson;
  if (!fs::exists(path)) throw std::runtime_error(model_dir.string() + ": not a Model artifact (no model.json)");
  return model_spec_from_json(read_text(path), path);
}

void check_feature_shape(const ModelSpec& spec, const std::vector<int64_t>& shape, const std::string& where) {
  if (shape != spec.feature_shape)
    throw std::runtime_error(where + ": features have shape " + shape_text(shape) +
                             " per example but the model expects " + shape_text(spec.feature_shape));
}

}  // namespace kiln::ml

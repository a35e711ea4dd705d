// evaluate: predictions from model.cpp, metric math from metrics.cpp; this
// file checks the inputs fit together and writes the Metrics artifact.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <thread>

#include "bad_argument.hpp"
#include "components.hpp"
#include "dataset_cache.hpp"
#include "metrics.hpp"
#include "predict.hpp"
#include "torch_build.hpp"
#include "trainer.hpp"

namespace kiln::ml {
namespace {

using nlohmann::json;
constexpr const char* kMetricsFormat = "kiln.metrics/v1";

void check_compatible(const ModelSpec& spec, const Dataset& test) {
  if (!test.labels || !test.schema.label) bad("the test dataset has no labels");
  const Task test_task = test.schema.label->task;
  if (spec.task != test_task)
    bad("a " + task_name(spec.task) + " model cannot be evaluated on a " + task_name(test_task) + " test set");
  if (spec.task == Task::Classification && test.schema.label->classes != spec.classes)
    bad("the test set's classes differ from the model's");
  check_feature_shape(spec, test.schema.feature_shape, "test dataset");
}

std::map<std::string, double> parse_thresholds(const std::string& text) {
  const json j = json::parse(text);
  if (!j.is_object()) bad("thresholds must be an object of metric name to number");
  std::map<std::string, double> out;
  for (const auto& [name, value] : j.items()) {
    if (!value.is_number()) bad("threshold '" + name + "' must be a number");
    out[name] = value.get<double>();
  }
  return out;
}

json classification_json(const ClassificationMetrics& m, const std::vector<std::string>& classes) {
  json j = json::object();
  for (const auto& [name, value] : scalar_metrics(m)) j[name] = value;
  if (!m.roc_auc) j["roc_auc"] = nullptr;
  json per_class = json::object();
  for (size_t k = 0; k < classes.size(); ++k) {
    const auto& c = m.per_class[k];
    per_class[classes[k]] = {{"precision", c.precision}, {"recall", c.recall}, {"f1", c.f1}, {"support", c.support}};
  }
  j["classes"] = classes;
  j["per_class"] = per_class;
  j["confusion_matrix"] = m.confusion;
  return j;
}

std::string predictions_csv(const Predictions& p, const Dataset& test) {
  const bool classify = p.spec.task == Task::Classification;
  std::string out = classify ? "label,predicted,probability\n" : "target,prediction\n";
  const auto targets = test.labels->to_float();
  for (int64_t i = 0; i < p.rows; ++i) {
    const float* row = p.values.data() + i * p.width;
    if (classify) {
      const auto best = static_cast<size_t>(argmax_row(row, p.width));  // as the confusion matrix counts it
      out += p.spec.classes[static_cast<size_t>(targets[i])] + "," + p.spec.classes[best] + "," +
             std::to_string(row[best]) + "\n";
    } else {
      out += std::to_string(targets[i]) + "," + std::to_string(row[0]) + "\n";
    }
  }
  return out;
}

json compute(const Predictions& p, const Dataset& test) {
  if (p.spec.task == Task::Classification)
    return classification_json(classification_metrics(p.values, test.class_labels(), p.width), p.spec.classes);
  json j = json::object();
  for (const auto& [name, value] : scalar_metrics(regression_metrics(p.values, test.labels->to_float())))
    j[name] = value;
  return j;
}

}  // namespace

Manifest Evaluate::manifest() {
  return Manifest("evaluate", "1.0.0", Kind::Evaluate)
      .description(with_torch_build("Evaluate a Model on a test Dataset; metrics and a pass/fail gate on thresholds"))
      .input(Port("model", "Model"))
      .input(Port("test", "Dataset").description("labelled test data, same features as the training data"))
      .output(Port("metrics", "Metrics").description("metrics.json (+ predictions.csv)"))
      .param(Param::Object("thresholds")
                 .default_json("{}")
                 .description("e.g. {\"accuracy\": 0.95}: >= for scores, <= for log_loss, mse, rmse, mae"))
      .param(Param::Int("batch_size").default_value(kEvalBatchRows).min(1))
      .param(Param::Int("threads").default_value(0).min(0).description("intra-op threads; 0 = all cores"))
      .param(Param::String("device").default_value("auto").description(
          "auto | cpu | cuda | cuda:N; auto = the step's first GPU when LibTorch has CUDA and the step was given one "
          "(resources: {gpus: N}), else the CPU"))
      .param(Param::Bool("predictions").default_value(true).description("also write predictions.csv"))
      .output_parameter(Port("passed", "bool").description("every threshold met"))
      .output_parameter(Port("accuracy", "float"))
      .output_parameter(Port("f1_macro", "float"))
      .output_parameter(Port("roc_auc", "float"))
      .output_parameter(Port("log_loss", "float"))
      .output_parameter(Port("r2", "float"))
      .output_parameter(Port("rmse", "float"))
      .output_parameter(Port("mae", "float"));
}

void Evaluate::warm_up() {
  torch_warm_up();
}

void Evaluate::run(Context& ctx) {
  const auto model_dir = ctx.input_path("model");
  const CachedDataset cached = cached_dataset(ctx.input_path("test"));
  const Dataset& test = *cached.data;
  check_compatible(read_model_spec(model_dir), test);
  const auto thresholds = parse_thresholds(ctx.param_json("thresholds"));
  const int64_t threads = ctx.param_int("threads");
  DeviceRequest device;
  try {
    device = parse_device(ctx.param_string("device"));
  } catch (const std::invalid_argument& e) {
    bad(e.what());
  }
  Predictions predictions;
  try {
    predictions = predict_dataset(model_dir, test, ctx.param_int("batch_size"),
                                  threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency()), device);
  } catch (const std::invalid_argument& e) {  // the device is not usable here
    bad(e.what());
  }
  json metrics = compute(predictions, test);
  std::map<std::string, double> scalars;
  for (const auto& [name, value] : metrics.items())
    if (value.is_number_float()) scalars[name] = value.get<double>();
  std::vector<std::string> unmet;
  try {
    unmet = unmet_thresholds(scalars, thresholds);
  } catch (const std::invalid_argument& e) {
    bad(e.what());
  }
  for (const auto& [name, value] : scalars) {
    ctx.metric(name, value);
    static const std::set<std::string> kOutputs{"accuracy", "f1_macro", "roc_auc", "log_loss", "r2", "rmse", "mae"};
    if (kOutputs.count(name)) ctx.set_output(name, value);
  }
  for (const auto& line : unmet) ctx.warning("threshold not met: " + line);
  metrics["format"] = kMetricsFormat;
  metrics["task"] = task_name(predictions.spec.task);
  metrics["rows"] = predictions.rows;
  metrics["thresholds"] = thresholds;
  metrics["passed"] = unmet.empty();
  metrics["unmet"] = unmet;
  const auto out = ctx.output_path("metrics");
  std::filesystem::create_directories(out);
  write_text_atomic(out / "metrics.json", metrics.dump(2) + "\n");
  if (ctx.param_bool("predictions")) write_text_atomic(out / "predictions.csv", predictions_csv(predictions, test));
  ctx.set_output("passed", unmet.empty());
}

}  // namespace kiln::ml

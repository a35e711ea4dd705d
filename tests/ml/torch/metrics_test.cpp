// evaluate's metric math against values computed by hand (no LibTorch).
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "compute_options.hpp"
#include "history.hpp"
#include "metrics.hpp"
#include "model_spec.hpp"
#include "schedule.hpp"

namespace kiln::ml {
namespace {

// 4 examples, 3 classes: predictions 0, 1, 1, 2 for labels 0, 1, 2, 1.
const std::vector<float> kProbs{0.7f, 0.2f, 0.1f, 0.1f, 0.6f, 0.3f, 0.2f, 0.5f, 0.3f, 0.3f, 0.3f, 0.4f};
const std::vector<int64_t> kLabels{0, 1, 2, 1};

TEST(Metrics, ClassificationMatchesHandComputedValues) {
  const auto m = classification_metrics(kProbs, kLabels, 3);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.5);
  const std::vector<std::vector<int64_t>> confusion{{1, 0, 0}, {0, 1, 1}, {0, 1, 0}};
  EXPECT_EQ(m.confusion, confusion);
  EXPECT_DOUBLE_EQ(m.per_class[0].precision, 1.0);
  EXPECT_DOUBLE_EQ(m.per_class[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(m.per_class[1].recall, 0.5);
  EXPECT_DOUBLE_EQ(m.per_class[2].precision, 0.0);
  EXPECT_EQ(m.per_class[1].support, 2);
  EXPECT_DOUBLE_EQ(m.precision_macro, 0.5);
  EXPECT_DOUBLE_EQ(m.recall_macro, 0.5);
  EXPECT_DOUBLE_EQ(m.f1_macro, 0.5);
  const double log_loss = -(std::log(0.7) + std::log(0.6) + std::log(0.3) + std::log(0.3)) / 4;
  EXPECT_NEAR(m.log_loss, log_loss, 1e-6);
  // One-vs-rest AUCs by hand: class 0 = 1, class 1 = 3/4, class 2 = 1.5/3 (a tie).
  ASSERT_TRUE(m.roc_auc.has_value());
  EXPECT_NEAR(*m.roc_auc, (1.0 + 0.75 + 0.5) / 3, 1e-12);
}

// LibTorch's argmax: the first of equal scores, and a NaN wins over any
// number (torch.tensor([[1., nan, 2.]]).argmax(1) is 1); train.torch's CPU
// accuracy tally and evaluate's confusion matrix both count with it.
TEST(Metrics, ArgmaxTakesTheFirstOfEqualScoresAndANan) {
  const float nan = std::nanf("");
  const std::vector<float> scores{0.2f,  0.5f,  0.5f,    // tie: 1
                                  0.9f,  0.1f,  0.0f,    // 0
                                  1.0f,  nan,   2.0f,    // NaN: 1
                                  nan,   3.0f,  nan,     // the first NaN: 0
                                  -1.0f, -1.0f, -0.5f};  // 2
  const std::vector<int64_t> predicted{1, 0, 1, 0, 2};
  for (size_t r = 0; r < predicted.size(); ++r) EXPECT_EQ(argmax_row(scores.data() + 3 * r, 3), predicted[r]) << r;
  const std::vector<int64_t> labels{1, 1, 1, 0, 0};
  EXPECT_EQ(correct_predictions(scores.data(), labels.data(), 5, 3), 3);
  EXPECT_EQ(correct_predictions(scores.data(), predicted.data(), 5, 3), 5);
  // evaluate's confusion matrix, on the rows without a NaN (predicted 1, 0, 2).
  const std::vector<float> numbers{0.2f, 0.5f, 0.5f, 0.9f, 0.1f, 0.0f, -1.0f, -1.0f, -0.5f};
  EXPECT_EQ(classification_metrics(numbers, {1, 1, 0}, 3).confusion,
            (std::vector<std::vector<int64_t>>{{0, 0, 1}, {1, 1, 0}, {0, 0, 0}}));
}

TEST(Metrics, ClassNeverPredictedHasZeroPrecision) {
  const auto m = classification_metrics({0.9f, 0.1f, 0.8f, 0.2f}, {0, 1}, 2);
  EXPECT_DOUBLE_EQ(m.per_class[1].precision, 0.0);
  EXPECT_DOUBLE_EQ(m.per_class[1].f1, 0.0);
  EXPECT_DOUBLE_EQ(m.per_class[0].precision, 0.5);
  EXPECT_NEAR(m.per_class[0].f1, 2.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(*m.roc_auc, 1.0);  // the scores still rank each class's positive first
}

TEST(Metrics, LogLossClipsZeroProbabilities) {
  const auto m = classification_metrics({1.0f, 0.0f}, {1}, 2);
  EXPECT_NEAR(m.log_loss, -std::log(1e-15), 1e-9);
  EXPECT_FALSE(m.roc_auc.has_value());  // one example: no negatives for either class
}

TEST(Metrics, RocAucAveragesTiedRanks) {
  EXPECT_DOUBLE_EQ(*roc_auc_binary({0.5, 0.5, 0.5, 0.5}, {true, false, true, false}), 0.5);
  EXPECT_DOUBLE_EQ(*roc_auc_binary({0.1, 0.4, 0.35, 0.8}, {false, false, true, true}), 0.75);
  EXPECT_FALSE(roc_auc_binary({0.1, 0.2}, {true, true}).has_value());
}

TEST(Metrics, RegressionMatchesHandComputedValues) {
  const auto m = regression_metrics({1, 2, 3, 4}, {1, 3, 2, 5});
  EXPECT_DOUBLE_EQ(m.mse, 0.75);
  EXPECT_DOUBLE_EQ(m.rmse, std::sqrt(0.75));
  EXPECT_DOUBLE_EQ(m.mae, 0.75);
  EXPECT_NEAR(m.r2, 1 - 3.0 / 8.75, 1e-12);
}

TEST(Metrics, ThresholdsUseTheMetricsDirection) {
  const auto scalars = scalar_metrics(classification_metrics(kProbs, kLabels, 3));
  EXPECT_TRUE(unmet_thresholds(scalars, {{"accuracy", 0.5}, {"log_loss", 0.9}}).empty());
  EXPECT_EQ(unmet_thresholds(scalars, {{"accuracy", 0.6}}).size(), 1u);
  EXPECT_EQ(unmet_thresholds(scalars, {{"log_loss", 0.5}}).size(), 1u);
  EXPECT_THROW(unmet_thresholds(scalars, {{"r2", 0.5}}), std::invalid_argument);
}

TEST(Schedule, WarmUpThenStepOrCosine) {
  LrSchedule s;
  s.lr = 1.0;
  s.warmup_epochs = 1;
  s.kind = "step";
  s.step_size = 2;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(lr_at_epoch(s, 0), 0.5);  // warm-up: (0 + 1) / (1 + 1)
  EXPECT_DOUBLE_EQ(lr_at_epoch(s, 1), 1.0);
  EXPECT_DOUBLE_EQ(lr_at_epoch(s, 2), 1.0);
  EXPECT_DOUBLE_EQ(lr_at_epoch(s, 3), 0.5);
  EXPECT_DOUBLE_EQ(lr_at_epoch(s, 5), 0.25);
  s.kind = "cosine";
  s.epochs = 5;  // 4 epochs after warm-up: 1, cos half-way at epoch 3
  EXPECT_DOUBLE_EQ(lr_at_epoch(s, 1), 1.0);
  EXPECT_NEAR(lr_at_epoch(s, 3), 0.5, 1e-12);
  s.kind = "none";
  EXPECT_DOUBLE_EQ(lr_at_epoch(s, 4), 1.0);
}

TEST(ModelSpec, JsonRoundTrips) {
  ModelSpec s;
  s.architecture = "cnn";
  s.feature_shape = {1, 28, 28};
  s.conv_channels = {32, 64};
  s.dense_sizes = {128};
  s.num_outputs = 2;
  s.classes = {"no", "yes"};
  s.input_scale = 1.0 / 255;
  s.transform = "transform/transform.json";
  const auto back = model_spec_from_json(model_spec_to_json(s), "model.json");
  EXPECT_EQ(back.conv_channels, s.conv_channels);
  EXPECT_EQ(back.classes, s.classes);
  EXPECT_DOUBLE_EQ(back.input_scale, s.input_scale);
  EXPECT_EQ(back.transform, s.transform);
  EXPECT_THROW(model_spec_from_json("{\"format\": \"other\"}", "model.json"), std::runtime_error);
}

TEST(History, JsonRoundTripsAndCsvHasOneRowPerEpoch) {
  History h;
  h.metric = "rmse";
  h.best_epoch = 2;
  h.rows = {{1, 0.5, 0.7, 0.6, std::nullopt, 1e-3, 0.1}, {2, 0.4, 0.6, 0.5, 0.65, 1e-3, 0.1}};
  const auto back = history_from_json(history_to_json(h));
  ASSERT_EQ(back.rows.size(), 2u);
  EXPECT_FALSE(back.rows[0].val_metric.has_value());
  EXPECT_DOUBLE_EQ(*back.rows[1].val_metric, 0.65);
  EXPECT_EQ(back.best_epoch, 2);
  const auto csv = history_to_csv(h);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_EQ(csv.rfind("epoch,train_loss,train_rmse,val_loss,val_rmse,lr,seconds\n", 0), 0u);
}

// train.torch / evaluate / serve.torch's `device` and `precision` values.
TEST(ComputeOptions, DeviceAndPrecisionParseOrNameTheParameter) {
  EXPECT_EQ(parse_device("auto").kind, DeviceKind::Auto);
  EXPECT_EQ(parse_device("cpu").kind, DeviceKind::Cpu);
  const auto cuda = parse_device("cuda");
  EXPECT_EQ(cuda.kind, DeviceKind::Cuda);
  EXPECT_EQ(cuda.index, 0);
  const auto third = parse_device("cuda:2");
  EXPECT_EQ(third.kind, DeviceKind::Cuda);
  EXPECT_EQ(third.index, 2);
  EXPECT_EQ(third.text, "cuda:2");
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:x", "CUDA", "cuda:99999", ""}) {
    try {
      parse_device(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("device must be auto, cpu, cuda or cuda:N"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(parse_precision("fp32"), Precision::Fp32);
  EXPECT_EQ(parse_precision("bf16"), Precision::Bf16);
  EXPECT_EQ(parse_precision("fp16"), Precision::Fp16);
  for (const auto p : {Precision::Fp32, Precision::Bf16, Precision::Fp16})
    EXPECT_EQ(parse_precision(precision_name(p)), p);
  EXPECT_THROW(parse_precision("fp8"), std::invalid_argument);
}

}  // namespace
}  // namespace kiln::ml

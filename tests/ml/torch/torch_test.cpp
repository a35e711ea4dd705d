// train.torch and evaluate through the real ABI, on tiny data with known answers.
#include <gtest/gtest.h>

#include <fstream>

#include "safetensors.hpp"
#include "torch_test_data.hpp"

namespace kiln::test {
namespace {
namespace fs = std::filesystem;
using host::Json;

// A checkpoint after every epoch (checkpoint_seconds: 0): the resume tests
// fail a step after epoch N and expect the retry to resume from it.
Json quick_mlp(int epochs) {
  return {{"architecture", "mlp"},
          {"hidden_sizes", Json::array({16})},
          {"epochs", epochs},
          {"batch_size", 16},
          {"lr", 0.01},
          {"threads", 1},
          {"seed", 7},
          {"checkpoint_seconds", 0}};
}

size_t count_metric(RecordingSink& sink, const std::string& name) {
  return static_cast<size_t>(
      std::count_if(sink.metrics.begin(), sink.metrics.end(), [&](const auto& m) { return m.name == name; }));
}

bool logged(RecordingSink& sink, const std::string& text) {
  return std::any_of(sink.logs.begin(), sink.logs.end(),
                     [&](const auto& log) { return log.second.find(text) != std::string::npos; });
}

TEST(TrainTorch, ClassifiesSeparableDataAndReportsEveryEpoch) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(200, 3, 4, 1));
  const auto val_dir = save(dir / "val", blobs(60, 3, 4, 2));
  write_text(dir / "transform" / "transform.json", "{\"steps\": []}\n");
  RecordingSink sink;
  const auto outcome = train(dir / "step", quick_mlp(8), sink, train_dir, val_dir, dir / "transform");
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_EQ(count_metric(sink, "val_accuracy"), 8u);
  EXPECT_EQ(count_metric(sink, "train_loss"), 8u);
  EXPECT_EQ(sink.progress.size(), 8u);
  EXPECT_GE(sink.output_parameters["val_accuracy"].get<double>(), 0.95);
  const auto model = dir / "step" / "out" / "model";
  const auto spec = read_json(model / "model.json");
  EXPECT_EQ(spec["format"], "kiln.model/v1");
  EXPECT_EQ(spec["output"]["name"], "probabilities");
  EXPECT_EQ(spec["input"]["shape"], Json::array({-1, 4}));
  EXPECT_EQ(spec["transform"], "transform/transform.json");
  EXPECT_TRUE(fs::exists(model / "transform" / "transform.json"));
  EXPECT_TRUE(fs::exists(model / "weights.safetensors"));
  const auto history = read_json(dir / "step" / "out" / "history" / "history.json");
  ASSERT_EQ(history["epochs"].size(), 8u);
  EXPECT_TRUE(history["epochs"][7].contains("val_accuracy"));
  EXPECT_TRUE(fs::exists(dir / "step" / "out" / "history" / "history.csv"));
}

TEST(TrainTorch, RegressionLearnsALine) {
  TempDir dir;
  const auto train_dir = save(dir / "train", line(256, 1));
  const auto test_dir = save(dir / "test", line(64, 2));
  Json params = quick_mlp(40);
  params["hidden_sizes"] = Json::array();  // a linear model fits y = 2x + 1 exactly
  params["lr"] = 0.05;
  RecordingSink sink;
  const auto outcome = train(dir / "step", params, sink, train_dir);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_EQ(count_metric(sink, "train_rmse"), 40u);
  EXPECT_EQ(sink.output_parameters["best_epoch"], 40);  // no validation: the last epoch's weights
  RecordingSink eval_sink;
  const auto evaluated = evaluate(dir / "eval", {{"thresholds", {{"rmse", 0.05}, {"r2", 0.99}}}}, eval_sink,
                                  dir / "step" / "out" / "model", test_dir);
  ASSERT_TRUE(evaluated.ok) << evaluated.message;
  EXPECT_LT(eval_sink.output_parameters["rmse"].get<double>(), 0.05);
  EXPECT_TRUE(eval_sink.output_parameters["passed"].get<bool>());
  const auto metrics = read_json(dir / "eval" / "out" / "metrics" / "metrics.json");
  EXPECT_EQ(metrics["task"], "regression");
  EXPECT_TRUE(metrics.contains("mae"));
}

TEST(TrainTorch, CnnLearnsU8Images) {
  TempDir dir;
  const auto train_dir = save(dir / "train", halves(128, 1));
  const auto test_dir = save(dir / "test", halves(32, 2));
  const Json params = {{"architecture", "cnn"},
                       {"conv_channels", Json::array({4})},
                       {"dense_sizes", Json::array({8})},
                       {"epochs", 6},
                       {"batch_size", 16},
                       {"lr", 0.01},
                       {"threads", 1},
                       {"batch_norm", true},
                       {"dropout", 0.1}};
  RecordingSink sink;
  const auto outcome = train(dir / "step", params, sink, train_dir);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto spec = read_json(dir / "step" / "out" / "model" / "model.json");
  EXPECT_NEAR(spec["input"]["scale"].get<double>(), 1.0 / 255, 1e-9);
  RecordingSink eval_sink;
  const auto evaluated = evaluate(dir / "eval", {}, eval_sink, dir / "step" / "out" / "model", test_dir);
  ASSERT_TRUE(evaluated.ok) << evaluated.message;
  EXPECT_GE(eval_sink.output_parameters["accuracy"].get<double>(), 0.95);
}

// A failure injected after epoch 2 of 4; the retry (same checkpoint
// directory) resumes at epoch 3 and ends with the weights of an unbroken run,
// for each optimizer: the checkpoint restores Adam's and AdamW's moments and
// step counts and SGD's momentum buffers (without them the weights differ).
class TrainTorchResume : public ::testing::TestWithParam<const char*> {};

TEST_P(TrainTorchResume, ResumesFromTheCheckpointWhenRetried) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(96, 2, 3, 1));
  const auto val_dir = save(dir / "val", blobs(32, 2, 3, 2));
  Json params = quick_mlp(4);
  params["deterministic"] = true;
  params["dropout"] = 0.2;
  params["optimizer"] = GetParam();
  if (params["optimizer"] == "sgd") params["momentum"] = 0.9;
  EXPECT_FALSE(train_failing_after(2, dir / "step", params, train_dir, val_dir).ok);
  RecordingSink retry;
  const auto outcome = train(dir / "step", params, retry, train_dir, val_dir);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_TRUE(logged(retry, "resuming from epoch 2"));
  EXPECT_EQ(count_metric(retry, "train_loss"), 2u);  // epochs 3 and 4 only
  const auto history = read_json(dir / "step" / "out" / "history" / "history.json");
  ASSERT_EQ(history["epochs"].size(), 4u);
  for (int e = 0; e < 4; ++e) EXPECT_EQ(history["epochs"][e]["epoch"], e + 1);
  RecordingSink unbroken;
  ASSERT_TRUE(train(dir / "whole", params, unbroken, train_dir, val_dir).ok);
  const auto a = ml::read_safetensors(dir / "step" / "out" / "model" / "weights.safetensors");
  const auto b = ml::read_safetensors(dir / "whole" / "out" / "model" / "weights.safetensors");
  for (const auto& [name, tensor] : a.tensors) EXPECT_EQ(tensor.bytes, b.tensors.at(name).bytes) << name;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, TrainTorchResume, ::testing::Values("adam", "adamw", "sgd"));

// A checkpoint directory of an earlier layout (current/state.json ...) is
// named and ignored: the step trains from epoch 1.
TEST(TrainTorch, ACheckpointOfTheEarlierLayoutIsIgnored) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(96, 2, 3, 1));
  const auto val_dir = save(dir / "val", blobs(32, 2, 3, 2));
  fs::create_directories(dir / "step" / "checkpoint" / "current");
  std::ofstream(dir / "step" / "checkpoint" / "current" / "state.json") << "{}";
  RecordingSink sink;
  const auto outcome = train(dir / "step", quick_mlp(2), sink, train_dir, val_dir);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_TRUE(logged(sink, "it has the layout of an earlier kiln"));
  EXPECT_EQ(count_metric(sink, "train_loss"), 2u);
  EXPECT_TRUE(fs::exists(dir / "step" / "checkpoint" / "checkpoint-0.safetensors"));
}

// Steps of one process (the plugin stays loaded, as in a tuning step's warm
// worker, where train.torch and evaluate keep the datasets they read and
// their digest: dataset_cache_test.cpp): a retry on the same data resumes
// from the checkpoint; after the train set was written anew, the retry
// finds that checkpoint made on other data and trains the new rows from
// epoch 1, ending with the weights of a fresh run on them.
TEST(TrainTorch, ARetryOnRewrittenDataInTheSameProcessStartsOver) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(96, 2, 3, 1));
  const auto val_dir = save(dir / "val", blobs(32, 2, 3, 2));
  Json params = quick_mlp(3);
  params["deterministic"] = true;
  RecordingSink first;
  ASSERT_TRUE(train(dir / "step", params, first, train_dir, val_dir).ok);
  RecordingSink again;
  ASSERT_TRUE(train(dir / "step", params, again, train_dir, val_dir).ok);
  EXPECT_TRUE(logged(again, "resuming from epoch 3"));
  EXPECT_EQ(count_metric(again, "train_loss"), 0u);
  save(dir / "train", blobs(96, 2, 3, 5));  // the same shape and size, other rows
  RecordingSink rewritten;
  ASSERT_TRUE(train(dir / "step", params, rewritten, train_dir, val_dir).ok);
  EXPECT_TRUE(logged(rewritten, "it was made with other parameters or data"));
  EXPECT_EQ(count_metric(rewritten, "train_loss"), 3u);
  save(dir / "fresh-train", blobs(96, 2, 3, 5));
  RecordingSink fresh;
  ASSERT_TRUE(train(dir / "fresh", params, fresh, dir / "fresh-train", val_dir).ok);
  const auto a = ml::read_safetensors(dir / "step" / "out" / "model" / "weights.safetensors");
  const auto b = ml::read_safetensors(dir / "fresh" / "out" / "model" / "weights.safetensors");
  for (const auto& [name, tensor] : a.tensors) EXPECT_EQ(tensor.bytes, b.tensors.at(name).bytes) << name;
  // evaluate, having read the old rows, reads the rewritten ones too: the
  // fresh model's log loss on them is the one on their copy, not on the old.
  save(dir / "old-train", blobs(96, 2, 3, 1));
  const auto log_loss = [&](const std::string& name, const fs::path& test) {
    RecordingSink sink;
    const auto outcome = evaluate(dir / name, {}, sink, dir / "fresh" / "out" / "model", test);
    EXPECT_TRUE(outcome.ok) << outcome.message;
    return read_json(dir / name / "out" / "metrics" / "metrics.json")["log_loss"].get<double>();
  };
  const double old_rows = log_loss("eval-old", dir / "old-train");
  EXPECT_EQ(log_loss("eval-new", train_dir), log_loss("eval-copy", dir / "fresh-train"));
  EXPECT_NE(log_loss("eval-new-again", train_dir), old_rows);
}

// A checkpoint that cannot be written (a directory stands where slot 0
// goes) fails the step with an error naming the file, though it is written
// on the checkpoint thread while the next epoch trains.
TEST(TrainTorch, ACheckpointThatCannotBeWrittenFailsTheStepNamingIt) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(96, 2, 3, 1));
  fs::create_directories(dir / "step" / "checkpoint" / "checkpoint-0.safetensors");
  RecordingSink sink;
  const auto outcome = train(dir / "step", quick_mlp(3), sink, train_dir);
  EXPECT_FALSE(outcome.ok);
  EXPECT_NE(outcome.message.find("checkpoint-0.safetensors"), std::string::npos) << outcome.message;
  EXPECT_FALSE(fs::exists(dir / "step" / "out" / "model" / "weights.safetensors"));
}

// checkpoint_seconds (default 10): epochs of a few milliseconds write no
// checkpoint before the last one, so a step failing after epoch 2 of 4
// leaves none and its retry starts over; the last epoch writes one, and a
// step with checkpoint_seconds: 0 leaves epoch 2's (the retry resumes
// there). Either retry ends with an unbroken run's weights.
TEST(TrainTorch, CheckpointSecondsSkipsEpochsThatEndSoonAfterTheLastCheckpoint) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(96, 2, 3, 1));
  const auto val_dir = save(dir / "val", blobs(32, 2, 3, 2));
  Json params = quick_mlp(4);
  params.erase("checkpoint_seconds");  // the default
  params["deterministic"] = true;
  EXPECT_FALSE(train_failing_after(2, dir / "step", params, train_dir, val_dir).ok);
  EXPECT_FALSE(fs::exists(dir / "step" / "checkpoint" / "checkpoint-0.safetensors"));
  RecordingSink retry;
  ASSERT_TRUE(train(dir / "step", params, retry, train_dir, val_dir).ok);
  EXPECT_FALSE(logged(retry, "resuming from epoch"));
  EXPECT_EQ(count_metric(retry, "train_loss"), 4u);
  EXPECT_TRUE(fs::exists(dir / "step" / "checkpoint" / "checkpoint-0.safetensors"));  // the last epoch's

  params["checkpoint_seconds"] = 0;
  EXPECT_FALSE(train_failing_after(2, dir / "every", params, train_dir, val_dir).ok);
  RecordingSink resumed;
  ASSERT_TRUE(train(dir / "every", params, resumed, train_dir, val_dir).ok);
  EXPECT_TRUE(logged(resumed, "resuming from epoch 2"));
  const auto a = ml::read_safetensors(dir / "step" / "out" / "model" / "weights.safetensors");
  const auto b = ml::read_safetensors(dir / "every" / "out" / "model" / "weights.safetensors");
  for (const auto& [name, tensor] : a.tensors) EXPECT_EQ(tensor.bytes, b.tensors.at(name).bytes) << name;
}

// checkpoint_every: 2 of 5 epochs saves after epochs 2 and 4 only; a
// failure after epoch 3 resumes from epoch 2 (epoch 3 runs again) and still
// ends with the weights of an unbroken run.
TEST(TrainTorch, CheckpointEveryNEpochsResumesFromTheLastOne) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(96, 2, 3, 1));
  const auto val_dir = save(dir / "val", blobs(32, 2, 3, 2));
  Json params = quick_mlp(5);
  params["deterministic"] = true;
  params["checkpoint_every"] = 2;
  EXPECT_FALSE(train_failing_after(3, dir / "step", params, train_dir, val_dir).ok);
  RecordingSink retry;
  const auto outcome = train(dir / "step", params, retry, train_dir, val_dir);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_TRUE(logged(retry, "resuming from epoch 2"));
  EXPECT_EQ(count_metric(retry, "train_loss"), 3u);  // epochs 3, 4 and 5
  RecordingSink unbroken;
  ASSERT_TRUE(train(dir / "whole", params, unbroken, train_dir, val_dir).ok);
  const auto a = ml::read_safetensors(dir / "step" / "out" / "model" / "weights.safetensors");
  const auto b = ml::read_safetensors(dir / "whole" / "out" / "model" / "weights.safetensors");
  for (const auto& [name, tensor] : a.tensors) EXPECT_EQ(tensor.bytes, b.tensors.at(name).bytes) << name;
}

// Checkpoints go to two slots in turn, each overwritten in place without
// fsync; a slot's metadata holds a checksum of its state and tensors. A
// slot a crash tore (here: its last tensor bytes zeroed, the size kept) is
// ignored and the retry resumes from the other one, an epoch earlier; with
// both torn it trains from epoch 1. Either way it ends with the weights of
// an unbroken run.
TEST(TrainTorch, ATornCheckpointSlotIsIgnoredAndTheRetryResumesFromTheOther) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(96, 2, 3, 1));
  const auto val_dir = save(dir / "val", blobs(32, 2, 3, 2));
  Json params = quick_mlp(4);
  params["deterministic"] = true;
  const auto tear = [](const fs::path& file) {
    ASSERT_TRUE(fs::exists(file)) << file;
    const auto size = fs::file_size(file);
    std::fstream out(file, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(size - 64));
    const std::string zeros(64, '\0');
    out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    out.close();
    ASSERT_EQ(fs::file_size(file), size);
  };
  RecordingSink unbroken;
  ASSERT_TRUE(train(dir / "whole", params, unbroken, train_dir, val_dir).ok);
  const auto whole = ml::read_safetensors(dir / "whole" / "out" / "model" / "weights.safetensors");
  for (const bool both : {false, true}) {
    const fs::path step = dir / (both ? "both" : "one");
    EXPECT_FALSE(train_failing_after(2, step, params, train_dir, val_dir).ok);
    tear(step / "checkpoint" / "checkpoint-1.safetensors");  // epoch 2's (epoch 1's is in slot 0)
    if (both) tear(step / "checkpoint" / "checkpoint-0.safetensors");
    RecordingSink retry;
    const auto outcome = train(step, params, retry, train_dir, val_dir);
    ASSERT_TRUE(outcome.ok) << outcome.message;
    EXPECT_TRUE(logged(retry, "checkpoint-1.safetensors: it is not the file that was written")) << both;
    if (both) {
      EXPECT_FALSE(logged(retry, "resuming from epoch"));
      EXPECT_EQ(count_metric(retry, "train_loss"), 4u);  // every epoch again
    } else {
      EXPECT_TRUE(logged(retry, "resuming from epoch 1"));
      EXPECT_EQ(count_metric(retry, "train_loss"), 3u);  // epochs 2, 3 and 4
    }
    const auto a = ml::read_safetensors(step / "out" / "model" / "weights.safetensors");
    for (const auto& [name, tensor] : a.tensors) EXPECT_EQ(tensor.bytes, whole.tensors.at(name).bytes) << name;
  }
}

TEST(TrainTorch, SameSeedGivesIdenticalWeights) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(64, 2, 3, 1));
  Json params = quick_mlp(2);
  params["deterministic"] = true;
  params["checkpoint"] = false;
  RecordingSink sink;
  ASSERT_TRUE(train(dir / "a", params, sink, train_dir).ok);
  ASSERT_TRUE(train(dir / "b", params, sink, train_dir).ok);
  params["seed"] = 8;
  ASSERT_TRUE(train(dir / "c", params, sink, train_dir).ok);
  auto weights = [&](const std::string& run) {
    return ml::read_safetensors(dir / run / "out" / "model" / "weights.safetensors").tensors.at("0.weight").bytes;
  };
  EXPECT_EQ(weights("a"), weights("b"));
  EXPECT_NE(weights("a"), weights("c"));
}

// A step schedule with gamma 0 freezes the weights after epoch 1, so the
// validation loss never improves again: patience 2 stops after epoch 3,
// whose checkpoint is written (the last epoch always is, whatever
// checkpoint_seconds says).
TEST(TrainTorch, EarlyStoppingAndScheduleAreReported) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(64, 2, 3, 1));
  const auto val_dir = save(dir / "val", blobs(32, 2, 3, 2));
  Json params = quick_mlp(30);
  params.erase("checkpoint_seconds");  // the default: none of epochs 1-3 is due one
  params["early_stopping_patience"] = 2;
  params["lr_schedule"] = "step";
  params["step_size"] = 1;
  params["gamma"] = 0.0;
  params["optimizer"] = "sgd";
  params["momentum"] = 0.9;
  params["nesterov"] = true;
  RecordingSink sink;
  const auto outcome = train(dir / "step", params, sink, train_dir, val_dir);
  ASSERT_TRUE(outcome.ok) << outcome.message;
  const auto history = read_json(dir / "step" / "out" / "history" / "history.json");
  EXPECT_EQ(history["epochs"].size(), 3u);
  EXPECT_TRUE(logged(sink, "early stopping after epoch"));
  EXPECT_EQ(sink.output_parameters["best_epoch"], history["best_epoch"]);
  EXPECT_EQ(history["best_epoch"], 1);
  EXPECT_DOUBLE_EQ(history["epochs"][0]["lr"].get<double>(), 0.01);
  EXPECT_DOUBLE_EQ(history["epochs"][1]["lr"].get<double>(), 0.0);
  const fs::path slot = dir / "step" / "checkpoint" / "checkpoint-0.safetensors";
  ASSERT_TRUE(fs::exists(slot));
  const Json state = Json::parse(ml::read_safetensors(slot).metadata.at("state"));
  EXPECT_EQ(state["history"]["epochs"].size(), 3u);
}

// Where train.torch and evaluate compute: `auto` is the CPU here (Debian's
// LibTorch has no CUDA); cuda, cuda:N, a bad value and fp16 on the CPU fail
// before the first epoch with a message naming the parameter.
TEST(TrainTorch, DeviceAutoIsTheCpuHereAndCudaFailsBeforeTraining) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(64, 2, 3, 1));
  const auto test_dir = save(dir / "test", blobs(20, 2, 3, 2));
  Json params = quick_mlp(1);
  params["device"] = "auto";
  RecordingSink sink;
  const auto trained = train(dir / "auto", params, sink, train_dir);
  ASSERT_TRUE(trained.ok) << trained.message;
  EXPECT_TRUE(logged(sink, "training on cpu in fp32"));
  const auto model = dir / "auto" / "out" / "model";
  const std::vector<std::pair<std::string, std::string>> failures{{"cuda", "device: cuda needs a GPU"},
                                                                  {"cuda:1", "device: cuda:1 needs a GPU"},
                                                                  {"gpu", "device must be auto, cpu, cuda or cuda:N"}};
  for (size_t i = 0; i < failures.size(); ++i) {
    const auto& [device, expected] = failures[i];
    params["device"] = device;
    RecordingSink failing;
    const auto outcome = train(dir / ("t" + std::to_string(i)), params, failing, train_dir);
    EXPECT_FALSE(outcome.ok) << device;
    EXPECT_NE(outcome.message.find(expected), std::string::npos) << outcome.message;
    if (device != "gpu") {
      EXPECT_NE(outcome.message.find("resources: {gpus: N}"), std::string::npos) << outcome.message;
    }
    EXPECT_EQ(count_metric(failing, "train_loss"), 0u) << device;
    RecordingSink eval_sink;
    const auto evaluated = evaluate(dir / ("e" + std::to_string(i)), {{"device", device}}, eval_sink, model, test_dir);
    EXPECT_FALSE(evaluated.ok) << device;
    EXPECT_NE(evaluated.message.find(expected), std::string::npos) << evaluated.message;
  }
  params["device"] = "cpu";
  params["precision"] = "fp16";
  RecordingSink fp16;
  const auto half = train(dir / "fp16", params, fp16, train_dir);
  EXPECT_FALSE(half.ok);
  EXPECT_NE(half.message.find("precision: fp16 needs a CUDA device"), std::string::npos) << half.message;
  RecordingSink on_cpu;
  EXPECT_TRUE(evaluate(dir / "ecpu", {{"device", "cpu"}}, on_cpu, model, test_dir).ok);
}

TEST(Evaluate, PassedRespectsThresholdsAndMetricsAreComplete) {
  TempDir dir;
  const auto train_dir = save(dir / "train", blobs(120, 3, 4, 1));
  const auto test_dir = save(dir / "test", blobs(60, 3, 4, 3));
  RecordingSink sink;
  ASSERT_TRUE(train(dir / "step", quick_mlp(6), sink, train_dir).ok);
  const auto model = dir / "step" / "out" / "model";
  RecordingSink pass, fail;
  ASSERT_TRUE(
      evaluate(dir / "pass", {{"thresholds", {{"accuracy", 0.9}, {"log_loss", 1.0}}}}, pass, model, test_dir).ok);
  EXPECT_TRUE(pass.output_parameters["passed"].get<bool>());
  ASSERT_TRUE(evaluate(dir / "fail", {{"thresholds", {{"log_loss", 0.0}}}}, fail, model, test_dir).ok);
  EXPECT_FALSE(fail.output_parameters["passed"].get<bool>());
  const auto metrics = read_json(dir / "pass" / "out" / "metrics" / "metrics.json");
  for (const char* key : {"accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc", "log_loss"})
    EXPECT_TRUE(metrics.contains(key)) << key;
  EXPECT_EQ(metrics["per_class"]["c1"]["support"], 20);
  EXPECT_EQ(metrics["confusion_matrix"].size(), 3u);
  EXPECT_TRUE(fs::exists(dir / "pass" / "out" / "metrics" / "predictions.csv"));
  RecordingSink unknown;
  const auto bad = evaluate(dir / "unknown", {{"thresholds", {{"r2", 0.5}}}}, unknown, model, test_dir);
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.message.find("unknown metric 'r2'"), std::string::npos) << bad.message;
}

TEST(Evaluate, RejectsMismatchedInputsClearly) {
  TempDir dir;
  const auto train_dir = save(dir / "train", line(32, 1));
  RecordingSink sink;
  ASSERT_TRUE(train(dir / "step", quick_mlp(1), sink, train_dir).ok);
  const auto model = dir / "step" / "out" / "model";
  RecordingSink eval_sink;
  const auto wrong_task = evaluate(dir / "e1", {}, eval_sink, model, save(dir / "cls", blobs(10, 2, 1, 1)));
  EXPECT_FALSE(wrong_task.ok);
  EXPECT_NE(wrong_task.message.find("a regression model cannot be evaluated on a classification test set"),
            std::string::npos)
      << wrong_task.message;
  auto wide = line(10, 2);
  wide.schema.feature_shape = {2};
  wide.schema.columns.push_back(wide.schema.columns.front());
  wide.schema.columns.back().name = "x1";
  wide.features = ml::Tensor::from_float(std::vector<float>(20, 0.5f), {10, 2});
  const auto wrong_shape = evaluate(dir / "e2", {}, eval_sink, model, save(dir / "wide", wide));
  EXPECT_FALSE(wrong_shape.ok);
  EXPECT_NE(wrong_shape.message.find("features have shape [2] per example but the model expects [1]"),
            std::string::npos)
      << wrong_shape.message;
}

TEST(TrainTorch, DigitsMlpOnSampleData) {
  const auto digits = sample_digits();
  ASSERT_EQ(digits.rows(), 1797);
  TempDir dir;
  std::vector<int64_t> train_rows, test_rows;
  for (int64_t i = 0; i < digits.rows(); ++i) (i % 5 == 0 ? test_rows : train_rows).push_back(i);
  const auto train_dir = save(dir / "train", digits.subset(train_rows));
  const auto test_dir = save(dir / "test", digits.subset(test_rows));
  Json params = {{"hidden_sizes", Json::array({64})}, {"epochs", 10}, {"threads", 2}, {"lr", 0.003}};
  RecordingSink sink;
  ASSERT_TRUE(train(dir / "step", params, sink, train_dir).ok);
  RecordingSink eval_sink;
  const auto evaluated = evaluate(dir / "eval", {{"thresholds", {{"accuracy", 0.95}}}}, eval_sink,
                                  dir / "step" / "out" / "model", test_dir);
  ASSERT_TRUE(evaluated.ok) << evaluated.message;
  EXPECT_TRUE(eval_sink.output_parameters["passed"].get<bool>()) << eval_sink.output_parameters.dump();
  // The same run in bf16 (CPU autocast) lands close to fp32 (one test row is 0.28 points).
  params["precision"] = "bf16";
  RecordingSink bf16_sink;
  const auto bf16 = train(dir / "bf16", params, bf16_sink, train_dir);
  ASSERT_TRUE(bf16.ok) << bf16.message;
  EXPECT_TRUE(logged(bf16_sink, "training on cpu in bf16"));
  RecordingSink bf16_eval;
  ASSERT_TRUE(evaluate(dir / "bf16-eval", {}, bf16_eval, dir / "bf16" / "out" / "model", test_dir).ok);
  const double fp32_accuracy = eval_sink.output_parameters["accuracy"].get<double>();
  const double bf16_accuracy = bf16_eval.output_parameters["accuracy"].get<double>();
  EXPECT_NEAR(bf16_accuracy, fp32_accuracy, 0.02) << "fp32 " << fp32_accuracy << ", bf16 " << bf16_accuracy;
}

}  // namespace
}  // namespace kiln::test

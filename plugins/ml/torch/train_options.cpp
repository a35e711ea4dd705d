#include "train_options.hpp"

#include "bad_argument.hpp"

#include <kiln/sdk.hpp>
#include <kiln/sdk/replica.hpp>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

namespace kiln::ml {
namespace {

using nlohmann::json;

std::vector<int64_t> sizes_param(const Context& ctx, const std::string& name) {
  const json j = json::parse(ctx.param_json(name));
  std::vector<int64_t> sizes;
  for (const auto& item : j) {
    if (!item.is_number_integer() || item.get<int64_t>() <= 0) bad(name + " must be a list of positive integers");
    sizes.push_back(item.get<int64_t>());
  }
  return sizes;
}

void parse_architecture(const Context& ctx, ModelSpec& m) {
  m.architecture = ctx.param_string("architecture");
  m.hidden_sizes = sizes_param(ctx, "hidden_sizes");
  m.activation = ctx.param_string("activation");
  m.dropout = ctx.param_float("dropout");
  m.batch_norm = ctx.param_bool("batch_norm");
  m.conv_channels = sizes_param(ctx, "conv_channels");
  m.kernel_size = ctx.param_int("kernel_size");
  m.pooling = ctx.param_string("pooling");
  m.dense_sizes = sizes_param(ctx, "dense_sizes");
  if (m.architecture == "cnn" && m.conv_channels.empty()) bad("a cnn needs at least one conv_channels entry");
  if (m.kernel_size % 2 == 0) bad("kernel_size must be odd (\"same\" padding)");
}

void parse_optimisation(const Context& ctx, TrainOptions& o) {
  o.task = ctx.param_string("task");
  o.loss = ctx.param_string("loss");
  o.optimizer = ctx.param_string("optimizer");
  o.schedule.lr = ctx.param_float("lr");
  o.momentum = ctx.param_float("momentum");
  o.nesterov = ctx.param_bool("nesterov");
  o.weight_decay = ctx.param_float("weight_decay");
  o.schedule.kind = ctx.param_string("lr_schedule");
  o.schedule.step_size = ctx.param_int("step_size");
  o.schedule.gamma = ctx.param_float("gamma");
  o.schedule.warmup_epochs = ctx.param_int("warmup_epochs");
  o.batch_size = ctx.param_int("batch_size");
  o.epochs = ctx.param_int("epochs");
  o.schedule.epochs = o.epochs;
  o.early_stopping_patience = ctx.param_int("early_stopping_patience");
  o.early_stopping_metric = ctx.param_string("early_stopping_metric");
  if (o.nesterov && (o.optimizer != "sgd" || o.momentum <= 0)) bad("nesterov needs optimizer sgd with momentum > 0");
}

// Parameters that do not change the result (threads, checkpoint) stay out;
// so does the device, so a retry on another GPU or the CPU still resumes.
std::string fingerprint(const Context& ctx) {
  static const char* const kNames[] = {"architecture",
                                       "hidden_sizes",
                                       "activation",
                                       "dropout",
                                       "batch_norm",
                                       "conv_channels",
                                       "kernel_size",
                                       "pooling",
                                       "dense_sizes",
                                       "task",
                                       "loss",
                                       "optimizer",
                                       "lr",
                                       "momentum",
                                       "nesterov",
                                       "weight_decay",
                                       "lr_schedule",
                                       "step_size",
                                       "gamma",
                                       "warmup_epochs",
                                       "batch_size",
                                       "epochs",
                                       "early_stopping_patience",
                                       "early_stopping_metric",
                                       "seed",
                                       "deterministic",
                                       "precision"};
  json j = json::object();
  for (const char* name : kNames) j[name] = json::parse(ctx.param_json(name));
  return j.dump();
}

}  // namespace

bool fingerprint_matches(const std::string& stored, const std::string& current, bool resume_new_hyperparameters) {
  if (stored == current) return true;
  if (!resume_new_hyperparameters) return false;
  static const char* const kHyperparameters[] = {
      "lr",          "momentum",  "weight_decay", "batch_size",    "epochs",
      "lr_schedule", "step_size", "gamma",        "warmup_epochs", "early_stopping_patience"};
  try {
    json a = json::parse(stored), b = json::parse(current);
    for (const char* name : kHyperparameters) {
      a.erase(name);
      b.erase(name);
    }
    return a == b;
  } catch (const json::exception&) {
    return false;
  }
}

void add_train_params(Manifest& m) {
  using P = Param;
  m.param(P::String("architecture").default_value("mlp").choices({"mlp", "cnn"}).description("network type"))
      .param(P::List("hidden_sizes").default_json("[128, 64]").description("mlp: widths of the hidden dense layers"))
      .param(P::String("activation").default_value("relu").choices({"relu", "tanh", "gelu", "sigmoid"}))
      .param(P::Float("dropout").default_value(0.0).min(0).max(0.95).description("after each hidden dense layer"))
      .param(P::Bool("batch_norm").default_value(false).description("batch norm after each hidden layer / conv"))
      .param(P::List("conv_channels").default_json("[32, 64]").description("cnn: output channels per conv block"))
      .param(P::Int("kernel_size").default_value(3).min(1).max(15).description("cnn: odd conv kernel size"))
      .param(P::String("pooling").default_value("max").choices({"max", "avg", "none"}).description("cnn: 2x2"))
      .param(P::List("dense_sizes").default_json("[128]").description("cnn: dense layers after the conv blocks"))
      .param(P::String("task").default_value("auto").choices({"auto", "classification", "regression"}))
      .param(P::String("loss").default_value("auto").choices({"auto", "cross_entropy", "mse", "l1", "huber"}))
      .param(P::String("optimizer").default_value("adam").choices({"sgd", "adam", "adamw"}))
      .param(P::Float("lr").default_value(1e-3).min(0).description("base learning rate"))
      .param(P::Float("momentum").default_value(0.0).min(0).max(1).description("sgd momentum"))
      .param(P::Bool("nesterov").default_value(false).description("sgd: Nesterov momentum"))
      .param(P::Float("weight_decay").default_value(0.0).min(0))
      .param(P::String("lr_schedule").default_value("none").choices({"none", "step", "cosine"}))
      .param(P::Int("step_size").default_value(10).min(1).description("step schedule: epochs between decays"))
      .param(P::Float("gamma").default_value(0.1).min(0).max(1).description("step schedule: decay factor"))
      .param(P::Int("warmup_epochs").default_value(0).min(0).description("linear warm-up epochs"))
      .param(P::Int("batch_size").default_value(32).min(1))
      .param(P::Int("epochs").default_value(10).min(1))
      .param(P::Int("early_stopping_patience").default_value(0).min(0).description("epochs without gain; 0 = off"))
      .param(P::String("early_stopping_metric").default_value("val_loss").choices({"val_loss", "val_accuracy"}))
      .param(P::Int("seed").default_value(0).min(0))
      .param(P::Bool("deterministic").default_value(false).description("deterministic algorithms only"))
      .param(P::Int("threads").default_value(0).min(0).description("intra-op threads; 0 = all cores"))
      .param(P::String("device").default_value("auto").description(
          "auto | cpu | cuda | cuda:N; auto = the step's first GPU when LibTorch has CUDA and "
          "the step was given one (resources: {gpus: N}), else the CPU"))
      .param(P::String("precision")
                 .default_value("fp32")
                 .choices({"fp32", "bf16", "fp16"})
                 .description("autocast: bf16 on CPU or GPU, fp16 (with dynamic loss scaling) on GPU only"))
      .param(P::Int("device_data_limit_mb")
                 .default_value(2048)
                 .min(0)
                 .max(1 << 20)  // 1 TiB
                 .description("GPU: data sets up to this size stay on the GPU; larger ones are copied per batch "
                              "from pinned memory"))
      .param(P::Bool("checkpoint")
                 .default_value(true)
                 .description("checkpoint (checkpoint_every, checkpoint_seconds), resume on retry"))
      .param(P::Bool("resume_new_hyperparameters")
                 .default_value(false)
                 .description("population-based training: resume from a checkpoint made with other lr, momentum, "
                              "weight_decay, batch_size, epochs or schedule (the architecture, optimizer, "
                              "seed and data must match); the optimizer's state is kept with this run's settings"))
      .param(P::Int("checkpoint_every")
                 .default_value(1)
                 .min(1)
                 .description("epochs between checkpoints (and the last epoch): fewer saves for short epochs"))
      .param(P::Float("checkpoint_seconds")
                 .default_value(10.0)
                 .min(0)
                 .description("the least time between two checkpoints: an epoch due one (checkpoint_every) "
                              "writes it only this long after the last one or the start; the last epoch (early "
                              "stopping's too) always does. A retry loses about this much training plus "
                              "checkpoint_every epochs at most; 0: every due epoch"))
      .param(P::Float("collective_timeout")
                 .default_value(300.0)
                 .min(1)
                 .description("distributed: seconds a replica waits for the others (rendezvous, each all-reduce)"));
}

TrainOptions parse_train_options(const Context& ctx) {
  TrainOptions o;
  parse_architecture(ctx, o.model);
  parse_optimisation(ctx, o);
  o.seed = ctx.param_int("seed");
  o.deterministic = ctx.param_bool("deterministic");
  o.threads = ctx.param_int("threads");
  try {
    o.device = parse_device(ctx.param_string("device"));
    o.precision = parse_precision(ctx.param_string("precision"));
  } catch (const std::invalid_argument& e) {
    bad(e.what());
  }
  o.device_data_limit_mb = ctx.param_int("device_data_limit_mb");
  // Replicas share the machine's cores (LibTorch would default to one thread).
  if (o.threads == 0)
    o.threads = std::max<int64_t>(1, std::thread::hardware_concurrency() / static_cast<unsigned>(replica().world_size));
  o.collective_timeout_seconds = ctx.param_float("collective_timeout");
  o.checkpoint = ctx.param_bool("checkpoint");
  o.checkpoint_every = ctx.param_int("checkpoint_every");
  o.checkpoint_seconds = ctx.param_float("checkpoint_seconds");
  o.resume_new_hyperparameters = ctx.param_bool("resume_new_hyperparameters");
  // A fault-injection hook for the checkpoint tests, kept out of the
  // manifest so users never see it: fail the step after this epoch.
  if (const char* fail = std::getenv("KILN_TEST_TRAIN_FAIL_AFTER_EPOCH")) o.debug_fail_after_epoch = std::atoll(fail);
  if (const char* rank = std::getenv("KILN_TEST_TRAIN_FAIL_RANK")) o.debug_fail_rank = std::atoll(rank);
  o.fingerprint = fingerprint(ctx);
  return o;
}

}  // namespace kiln::ml

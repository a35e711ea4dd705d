// train.torch's glue: manifest, inputs, events and outputs. The loop itself
// is in trainer.cpp.
#include <cstdio>

#include <kiln/sdk/replica.hpp>

#include "components.hpp"
#include "dataset_cache.hpp"
#include "torch_build.hpp"
#include "trainer.hpp"

namespace kiln::ml {
namespace {

std::string fixed(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", value);
  return text;
}

void report_epoch(const Context& ctx, const History& h, int64_t epochs) {
  const EpochRow& r = h.rows.back();
  ctx.metric("train_loss", r.train_loss, r.epoch);
  ctx.metric("train_" + h.metric, r.train_metric, r.epoch);
  if (r.val_loss) ctx.metric("val_loss", *r.val_loss, r.epoch);
  if (r.val_metric) ctx.metric("val_" + h.metric, *r.val_metric, r.epoch);
  ctx.metric("lr", r.lr, r.epoch);
  const bool val = r.val_metric.has_value();
  const std::string shown = (val ? "val_" : "train_") + h.metric + " " + fixed(val ? *r.val_metric : r.train_metric);
  ctx.progress(static_cast<double>(r.epoch) / static_cast<double>(epochs),
               "epoch " + std::to_string(r.epoch) + "/" + std::to_string(epochs) + " " + shown);
}

void set_outputs(const Context& ctx, const History& h) {
  ctx.set_output("best_epoch", static_cast<long long>(h.best_epoch));
  if (h.best_epoch < 1 || h.best_epoch > static_cast<int64_t>(h.rows.size())) return;
  const EpochRow& best = h.rows[h.best_epoch - 1];
  if (best.val_loss) ctx.set_output("val_loss", *best.val_loss);
  if (best.val_metric) ctx.set_output("val_" + h.metric, *best.val_metric);
}

}  // namespace

Manifest TrainTorch::manifest() {
  Manifest m("train.torch", "1.0.0", Kind::Train);
  m.description(with_torch_build("Train an MLP or CNN with LibTorch on the CPU or a GPU; per-epoch metrics, "
                                 "checkpoints and resume"))
      .input(Port("train", "Dataset").description("labelled training data"))
      .input(Port("validation", "Dataset").optional().description("for validation metrics and early stopping"))
      .input(Port("transform", "Transform").optional().description("copied into the model for serving"))
      .output(Port("model", "Model").description("model.json + weights.safetensors (kiln.model/v1)"))
      .output(Port("history", "TrainingHistory").description("history.json + history.csv, one row per epoch"))
      .output_parameter(Port("best_epoch", "int").description("1-based epoch of the weights kept"))
      .output_parameter(Port("val_loss", "float").description("validation loss at best_epoch"))
      .output_parameter(Port("val_accuracy", "float").description("classification: validation accuracy at best_epoch"))
      .output_parameter(Port("val_rmse", "float").description("regression: validation RMSE at best_epoch"));
  add_train_params(m);
  return m;
}

void TrainTorch::warm_up() {
  torch_warm_up();
}

void TrainTorch::run(Context& ctx) {
  const TrainOptions options = parse_train_options(ctx);
  const CachedDataset train = cached_dataset(ctx.input_path("train"));
  std::optional<CachedDataset> validation;
  if (const auto path = ctx.optional_input_path("validation")) validation = cached_dataset(*path);
  TrainRun run;
  run.replica = replica();                    // KILN_RANK, KILN_WORLD_SIZE, KILN_RENDEZVOUS (docs/distributed.md)
  const bool writer = run.replica.rank == 0;  // the other ranks write only logs
  run.train = train.data.get();
  run.validation = validation ? validation->data.get() : nullptr;
  if (options.checkpoint) {
    run.checkpoint_dir = ctx.checkpoint_dir();
    run.data_digest = cached_data_digest(train, validation ? &*validation : nullptr);
  }
  if (writer) run.model_dir = ctx.output_path("model");
  run.transform_dir = ctx.optional_input_path("transform");
  if (options.early_stopping_patience > 0 && !validation && writer)
    ctx.warning("early stopping needs a validation input; training all epochs");
  TrainHooks hooks;
  hooks.on_epoch = [&](const History& h) { report_epoch(ctx, h, options.epochs); };
  hooks.check_cancelled = [&] { ctx.throw_if_cancelled(); };
  hooks.log = [&](const std::string& message) { ctx.info(message); };
  const History history = train_model(options, run, hooks);
  if (!writer) return;
  write_history(history, ctx.output_path("history"));
  set_outputs(ctx, history);
}

}  // namespace kiln::ml

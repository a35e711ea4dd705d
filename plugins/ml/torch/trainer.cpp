// The training loop: tensors loaded once, one randperm per epoch and
// index_select per batch (no per-example data loader), no-grad validation.
#include "trainer.hpp"

#include <kiln/sdk.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <stdexcept>

#include "bad_argument.hpp"
#include "checkpoint.hpp"
#include "checkpoint_writer.hpp"
#include "device.hpp"
#include "distributed.hpp"
#include "heap_tuning.hpp"
#include "metrics.hpp"
#include "model.hpp"
#include "predict.hpp"

namespace kiln::ml {
namespace fs = std::filesystem;

namespace {

// The data as tensors: features as floats, targets as class indices or
// standardised values [N, 1].
struct Batches {
  torch::Tensor x, y, y_raw;
};

Task resolve_task(const TrainOptions& o, const Dataset& train) {
  if (!train.labels || !train.schema.label) bad("the train dataset has no labels");
  if (o.task == "classification") return Task::Classification;
  if (o.task == "regression") return Task::Regression;
  return train.schema.label->task;
}

ModelSpec resolve_spec(const TrainOptions& o, const Dataset& train) {
  ModelSpec s = o.model;
  s.task = resolve_task(o, train);
  s.feature_shape = train.schema.feature_shape;
  s.label_name = train.schema.label->name;
  s.input_scale = train.features.dtype == DType::U8 ? 1.0 / 255.0 : 1.0;
  if (s.task == Task::Classification) {
    if (train.labels->dtype != DType::I64) bad("classification needs class labels (I64), the train labels are not");
    s.classes = train.schema.label->classes;
    if (s.classes.size() < 2) bad("classification needs at least two classes");
    s.num_outputs = static_cast<int64_t>(s.classes.size());
  } else {
    const auto y = to_torch_labels(*train.labels).to(torch::kFloat64);
    s.target_mean = y.mean().item<double>();
    const double std = y.numel() > 1 ? y.std().item<double>() : 0.0;
    s.target_std = std > 1e-12 ? std : 1.0;
    s.num_outputs = 1;
  }
  return s;
}

void check_validation(const ModelSpec& s, const Dataset& val) {
  check_feature_shape(s, val.schema.feature_shape, "validation dataset");
  if (!val.labels || !val.schema.label) bad("the validation dataset has no labels");
  if (s.task == Task::Classification && val.schema.label->classes != s.classes)
    bad("the validation dataset's classes differ from the train dataset's");
}

Batches tensors_of(const ModelSpec& s, const Dataset& d) {
  Batches b;
  b.x = to_torch_float(d.features);
  b.y_raw = to_torch_labels(*d.labels);
  if (s.task == Task::Classification) {
    b.y = b.y_raw;
  } else {
    b.y_raw = b.y_raw.to(torch::kFloat32).reshape({-1, 1});
    b.y = (b.y_raw - s.target_mean) / s.target_std;
  }
  return b;
}

std::string resolve_loss(const TrainOptions& o, Task task) {
  const bool classify = task == Task::Classification;
  if (o.loss == "auto") return classify ? "cross_entropy" : "mse";
  if (classify != (o.loss == "cross_entropy")) bad("loss " + o.loss + " does not fit a " + task_name(task) + " task");
  return o.loss;
}

torch::Tensor compute_loss(const std::string& loss, const torch::Tensor& out, const torch::Tensor& y) {
  if (loss == "cross_entropy") return torch::nn::functional::cross_entropy(out, y);
  if (loss == "mse") return torch::mse_loss(out, y);
  if (loss == "l1") return torch::l1_loss(out, y);
  return torch::huber_loss(out, y);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& o, torch::nn::Module& net) {
  auto params = net.parameters();
  if (o.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params,
        torch::optim::SGDOptions(o.schedule.lr).momentum(o.momentum).nesterov(o.nesterov).weight_decay(o.weight_decay));
  if (o.optimizer == "adamw")
    return std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(o.schedule.lr).weight_decay(o.weight_decay));
  return std::make_unique<torch::optim::Adam>(params,
                                              torch::optim::AdamOptions(o.schedule.lr).weight_decay(o.weight_decay));
}

// The initial weights depend on the seed alone: drawn on the CPU, then moved,
// so every device starts from the same ones.
TorchModel placed_model(const ModelSpec& spec, int64_t seed, const torch::Device& device) {
  seed_generators(static_cast<uint64_t>(seed), torch::kCPU);
  TorchModel model = build_model(spec);
  model.to(device);
  return model;
}

// A data set on the compute device when it fits (o.device_data_limit_mb),
// else in pinned CPU memory, each batch gathered there and copied
// asynchronously. On the CPU nothing moves.
bool place_data(Batches& b, const torch::Device& device, bool resident) {
  if (!device.is_cuda()) return true;
  for (auto* t : {&b.x, &b.y, &b.y_raw}) *t = resident ? t->to(device) : t->pin_memory();
  return resident;
}

int64_t bytes_of(const Batches& b) {
  return static_cast<int64_t>(b.x.nbytes() + b.y.nbytes() + b.y_raw.nbytes());
}

// A restored optimizer keeps its moments but takes this run's momentum and
// weight decay (the learning rate is set every epoch from the schedule).
void set_optimizer_settings(torch::optim::Optimizer& optimizer, const TrainOptions& o) {
  for (auto& group : optimizer.param_groups()) {
    if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options())) {
      sgd->momentum(o.momentum).weight_decay(o.weight_decay);
    } else if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&group.options())) {
      adamw->weight_decay(o.weight_decay);
    } else if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&group.options())) {
      adam->weight_decay(o.weight_decay);
    }
  }
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

// Sums over one pass: loss weighted by rows, and the task's metric.
// On a GPU they add up as float64 tensors on the device and are read once,
// by finish(): no host synchronisation per batch. On the CPU a
// classification batch is read where it lies (the loss and the argmax
// without a tensor operation: on small batches the eight operations of the
// device path were 7 % of an epoch, issue 23); the sums are the same.
struct Tally {
  double loss_sum = 0, metric_sum = 0;
  int64_t rows = 0;
  void add(const ModelSpec& s, const torch::Tensor& out, const torch::Tensor& y_raw, const torch::Tensor& loss) {
    const auto n = out.size(0);
    rows += n;
    if (s.task == Task::Classification && out.is_cpu() && out.dim() == 2 && out.size(1) > 0 && out.is_contiguous() &&
        out.scalar_type() == torch::kFloat32 && loss.numel() == 1 && loss.scalar_type() == torch::kFloat32 &&
        y_raw.numel() == n && y_raw.is_contiguous() && y_raw.scalar_type() == torch::kInt64) {
      loss_sum += static_cast<double>(*loss.data_ptr<float>()) * static_cast<double>(n);
      metric_sum +=
          static_cast<double>(correct_predictions(out.data_ptr<float>(), y_raw.data_ptr<int64_t>(), n, out.size(1)));
      return;
    }
    const auto weighted = loss.detach().to(torch::kFloat64) * static_cast<double>(n);
    const auto metric = s.task == Task::Classification
                            ? out.argmax(1).eq(y_raw).sum().to(torch::kFloat64)
                            : (out.detach().to(torch::kFloat32) * s.target_std + s.target_mean - y_raw)
                                  .pow(2)
                                  .sum()
                                  .to(torch::kFloat64);
    pending_loss_ = pending_loss_.defined() ? pending_loss_ + weighted : weighted;
    pending_metric_ = pending_metric_.defined() ? pending_metric_ + metric : metric;
  }
  void finish() {
    if (pending_loss_.defined()) loss_sum += pending_loss_.item<double>();
    if (pending_metric_.defined()) metric_sum += pending_metric_.item<double>();
    pending_loss_ = pending_metric_ = torch::Tensor();
  }
  double loss() const { return loss_sum / static_cast<double>(std::max<int64_t>(rows, 1)); }
  double metric(Task task) const {
    const double mean = metric_sum / static_cast<double>(std::max<int64_t>(rows, 1));
    return task == Task::Classification ? mean : std::sqrt(mean);
  }

 private:
  torch::Tensor pending_loss_, pending_metric_;
};

class Trainer {
 public:
  Trainer(const TrainOptions& o, const TrainRun& run, const TrainHooks& hooks, const torch::Device& device)
      : o_(o),
        run_(run),
        hooks_(hooks),
        device_(device),
        spec_(resolve_spec(o, *run.train)),
        loss_(resolve_loss(o, spec_.task)),
        model_(placed_model(spec_, o.seed, device)),
        optimizer_(make_optimizer(o, *model_.net())) {
    if (run.validation) check_validation(spec_, *run.validation);
    if (o.early_stopping_metric == "val_accuracy" && spec_.task == Task::Regression)
      bad("early_stopping_metric val_accuracy needs a classification task");
    train_ = tensors_of(spec_, *run.train);
    if (run.validation) val_ = tensors_of(spec_, *run.validation);
    const bool fits = bytes_of(train_) + (run.validation ? bytes_of(val_) : 0) <= o.device_data_limit_mb << 20;
    resident_ = place_data(train_, device_, fits);
    if (run.validation) place_data(val_, device_, fits);
    if (o.precision == Precision::Fp16) scaler_.emplace();
    hooks_.log("training on " + device_.str() + " in " + precision_name(o.precision) +
               (device_.is_cuda() ? (resident_ ? ", data on the GPU" : ", batches copied from pinned memory") : ""));
    history_.metric = spec_.task == Task::Classification ? "accuracy" : "rmse";
    if (run.replica.distributed())
      collective_ = std::make_unique<Collective>(
          run.replica, std::chrono::milliseconds(static_cast<int64_t>(o.collective_timeout_seconds * 1000)));
  }

  History run() {
    const auto start = std::chrono::steady_clock::now();
    last_checkpoint_ = start;
    if (run_.checkpoint_dir) resume();
    if (collective_) agree_on_start();
    for (int64_t epoch = static_cast<int64_t>(history_.rows.size()); epoch < o_.epochs; ++epoch) {
      run_epoch(epoch);
      // Early stopping ends the run here: its epoch is the last, and is
      // checkpointed as the last always is (PBT's next round resumes it).
      const bool stopping = stop_early();
      if (run_.checkpoint_dir && writer() && (stopping || checkpoint_due(epoch))) {
        // A stop asked for meanwhile (a tuner stopping the trial after this
        // epoch's report, a cancel) ends the step here: the checkpoint would
        // be thrown away (a stopped trial is final; a cancelled step resumes
        // from the one before and recomputes this epoch exactly, as every
        // epoch is seeded). Replicas all reach the barrier below instead.
        if (!collective_) hooks_.check_cancelled();
        save_checkpoint();
        last_checkpoint_ = std::chrono::steady_clock::now();
      }
      // Past this, every rank knows the epoch's checkpoint is complete: a
      // rank dying later cannot cost it (rank 0 is killed with the group).
      if (collective_) collective_->barrier();
      if (o_.debug_fail_after_epoch == epoch + 1) inject_failure(epoch);
      if (stopping) {
        hooks_.log("early stopping after epoch " + std::to_string(epoch + 1) + ": best epoch " +
                   std::to_string(history_.best_epoch));
        break;
      }
    }
    finish_checkpoint();
    if (run_.validation && !best_.tensors.empty()) load_state(*model_.net(), best_, "best weights");
    if (collective_) report_replica(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (writer()) save_model(model_, run_.model_dir, run_.transform_dir);
    return history_;
  }

 private:
  void run_epoch(int64_t epoch) {
    const auto start = std::chrono::steady_clock::now();
    EpochRow row;
    row.epoch = epoch + 1;
    row.lr = lr_at_epoch(o_.schedule, epoch);
    set_lr(*optimizer_, row.lr);
    // Seeded per epoch, so a resumed run draws the same shuffles and dropout masks.
    seed_generators(static_cast<uint64_t>(o_.seed) * 1000003ULL + static_cast<uint64_t>(epoch), device_);
    const Tally train = train_pass(epoch);
    row.train_loss = train.loss();
    row.train_metric = train.metric(spec_.task);
    if (run_.validation) {
      const Tally val = evaluate_pass();
      row.val_loss = val.loss();
      row.val_metric = val.metric(spec_.task);
    }
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    history_.rows.push_back(row);
    track_best(row);
    hooks_.on_epoch(history_);
  }

  // With replicas, every rank draws the same order; each takes its share of
  // every global batch (rank r: rows [len*r/N, len*(r+1)/N)) and the
  // gradients are summed, each weighted by its share: the global batch's mean.
  Tally train_pass(int64_t epoch) {
    model_.net()->train();
    const int64_t n = train_.x.size(0);
    // The order is drawn on the CPU: the same shuffles on every device.
    const auto order = torch::randperm(n, torch::kInt64);
    const auto device_order = resident_ ? order.to(device_) : order;
    const int64_t world = world_size(), rank = run_.replica.rank;
    if (collective_)  // each replica its own dropout masks
      seed_generators(static_cast<uint64_t>(o_.seed) * 1000003ULL + static_cast<uint64_t>(epoch) +
                          7919ULL * static_cast<uint64_t>(rank + 1),
                      device_);
    const auto parameters = model_.net()->parameters();
    Tally tally;
    for (int64_t start = 0; start < n; start += o_.batch_size) {
      hooks_.check_cancelled();
      const int64_t end = std::min(start + o_.batch_size, n), rows = end - start;
      if (spec_.batch_norm && rows / world < 2) break;  // batch norm cannot train on one row (all ranks agree)
      const int64_t first = start + rows * rank / world, last = start + rows * (rank + 1) / world;
      optimizer_->zero_grad();
      if (last > first) {
        const auto index = device_order.slice(0, first, last);
        const auto x = gather(train_.x, index);
        const auto y = gather(train_.y, index);
        const auto out = forward(x);
        const auto loss = compute_loss(loss_, out, y);
        auto to_backward = collective_ ? loss * (static_cast<double>(last - first) / static_cast<double>(rows)) : loss;
        if (scaler_) to_backward = scaler_->scale(to_backward);
        to_backward.backward();
        // Classification targets are the raw labels already: no second gather.
        const auto y_raw = spec_.task == Task::Classification ? y : gather(train_.y_raw, index);
        tally.add(spec_, out.detach(), y_raw, loss);
      }
      if (collective_) collective_->sum_gradients(parameters);
      step(parameters);
    }
    tally.finish();
    if (collective_) {
      sum_tally(tally);
      collective_->broadcast(buffers());  // batch norm's running statistics: rank 0's, as PyTorch's DDP does
    }
    return tally;
  }

  // Rows `index` of a data set, on the compute device.
  torch::Tensor gather(const torch::Tensor& data, const torch::Tensor& index) const {
    if (resident_) return data.index_select(0, index);
    return data.index_select(0, index).pin_memory().to(device_, /*non_blocking=*/true);
  }

  torch::Tensor rows_on_device(const torch::Tensor& data, int64_t start, int64_t end) const {
    const auto rows = data.slice(0, start, end);
    return resident_ ? rows : rows.to(device_, /*non_blocking=*/true);
  }

  // The network under autocast (bf16 / fp16); the loss is computed in fp32.
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor out;
    {
      const AutocastScope autocast(device_, o_.precision);
      out = model_.forward(x);
    }
    return out.scalar_type() == torch::kFloat32 ? out : out.to(torch::kFloat32);
  }

  // fp16: a step whose gradients overflowed is skipped (and the scale halved).
  void step(const std::vector<torch::Tensor>& parameters) {
    if (scaler_) {
      const bool finite = scaler_->unscale(parameters);
      scaler_->update(finite);
      if (!finite) return;
    }
    optimizer_->step();
  }

  std::vector<torch::Tensor> buffers() {
    std::vector<torch::Tensor> all;
    for (const auto& item : model_.net()->named_buffers()) all.push_back(item.value());
    return all;
  }

  void sum_tally(Tally& tally) {
    std::vector<double> sums{tally.loss_sum, tally.metric_sum, static_cast<double>(tally.rows)};
    collective_->sum(sums);
    tally.loss_sum = sums[0];
    tally.metric_sum = sums[1];
    tally.rows = static_cast<int64_t>(sums[2]);
  }

  int64_t world_size() const { return collective_ ? collective_->world_size() : 1; }
  bool writer() const { return run_.replica.rank == 0; }

  // Every rank resumed from the same epoch; rank 0's weights are everyone's.
  void agree_on_start() {
    std::vector<double> epochs{static_cast<double>(history_.rows.size())};
    collective_->sum(epochs);
    if (epochs[0] != static_cast<double>(history_.rows.size() * static_cast<size_t>(world_size())))
      throw Error("the replicas resumed from different checkpoints (rank " + std::to_string(run_.replica.rank) +
                  " from epoch " + std::to_string(history_.rows.size()) + ")");
    std::vector<torch::Tensor> state = model_.net()->parameters();
    for (auto& b : buffers()) state.push_back(b);
    collective_->broadcast(state);
  }

  void inject_failure(int64_t epoch) {
    if (!collective_ || o_.debug_fail_rank < 0)
      throw Error("injected failure after epoch " + std::to_string(epoch + 1));
    if (o_.debug_fail_rank != run_.replica.rank) return;
    std::fprintf(stderr, "kiln test: rank %d exits after epoch %lld (KILN_TEST_TRAIN_FAIL_RANK)\n", run_.replica.rank,
                 static_cast<long long>(epoch + 1));
    std::fflush(stderr);
    std::_Exit(86);
  }

  // What the tests and the benchmark read: the weights' digest (equal on
  // every rank) and the share of the time spent in collectives.
  void report_replica(double seconds) {
    char share[160];
    std::snprintf(share, sizeof share, "%.3f s of %.3f s training in collectives (%.1f%%)",
                  collective_->seconds_communicating(), seconds,
                  100.0 * collective_->seconds_communicating() / std::max(seconds, 1e-9));
    hooks_.log("rank " + std::to_string(run_.replica.rank) + " of " + std::to_string(world_size()) +
               ": parameters digest " + parameters_digest(*model_.net()) + "; " + share);
  }

  Tally evaluate_pass() {
    const torch::NoGradGuard no_grad;
    model_.net()->eval();
    Tally tally;
    // With replicas each rank evaluates its slice and the tallies are summed.
    const int64_t n = val_.x.size(0), step = std::max<int64_t>(o_.batch_size, kEvalBatchRows);
    const int64_t world = world_size(), rank = run_.replica.rank;
    const int64_t first = n * rank / world, last = n * (rank + 1) / world;
    for (int64_t start = first; start < last; start += step) {
      const int64_t end = std::min(start + step, last);
      const auto out = forward(rows_on_device(val_.x, start, end));
      const auto loss = compute_loss(loss_, out, rows_on_device(val_.y, start, end));
      tally.add(spec_, out, rows_on_device(val_.y_raw, start, end), loss);
    }
    tally.finish();
    if (collective_) sum_tally(tally);
    return tally;
  }

  double monitored(const EpochRow& row) const {
    return o_.early_stopping_metric == "val_accuracy" ? *row.val_metric : -*row.val_loss;  // higher is better
  }

  void track_best(const EpochRow& row) {
    if (!run_.validation) {  // nothing to select on: the model is the last epoch's
      history_.best_epoch = row.epoch;
      return;
    }
    const double value = monitored(row);
    if (history_.best_epoch == 0 || value > best_value_) {
      best_value_ = value;
      history_.best_epoch = row.epoch;
      bad_epochs_ = 0;
      best_ = state_to_tensors(*model_.net());
    } else {
      ++bad_epochs_;
    }
  }

  bool stop_early() const {
    return run_.validation && o_.early_stopping_patience > 0 && bad_epochs_ >= o_.early_stopping_patience;
  }

  CheckpointState state() const { return {o_.fingerprint, digest_, history_, best_value_, bad_epochs_, 0}; }

  // The file is written on a thread while the next epoch trains (it was
  // 1–2 ms of every epoch on digits, issue 23); one write at a time, the
  // last one finished before the model is saved and whenever the trainer
  // ends, so an error or a cancel still leaves a complete checkpoint. With
  // replicas it is written at once: the barrier after it promises every
  // rank that the epoch's checkpoint exists.
  void save_checkpoint() {
    CheckpointSnapshot snapshot = snapshot_checkpoint(state(), *model_.net(), *optimizer_, best_);
    const int slot = checkpoint_slot_;
    checkpoint_slot_ = 1 - slot;  // the next one goes to the other slot
    if (!collective_) return checkpoint_writer_.write(*run_.checkpoint_dir, slot, std::move(snapshot));
    checkpoint_writer_.finish();
    write_checkpoint(*run_.checkpoint_dir, slot, std::move(snapshot));
  }

  // Every checkpoint_every epochs, once checkpoint_seconds have passed since
  // the last one (or the start), and after the last epoch: on digits'
  // 5–20 ms epochs a checkpoint every epoch was 5–12 % of a tuning trial's
  // training (issue 23), most of it thrown away with trials stopped early.
  // Only rank 0 decides (it alone writes); a resumed run is the same
  // whichever epoch it resumes from.
  bool checkpoint_due(int64_t epoch) const {
    if (epoch + 1 == o_.epochs) return true;
    if ((epoch + 1) % o_.checkpoint_every != 0) return false;
    const std::chrono::duration<double> since = std::chrono::steady_clock::now() - last_checkpoint_;
    return since.count() >= o_.checkpoint_seconds;
  }

  // Waits for the checkpoint being written; rethrows its error.
  void finish_checkpoint() { checkpoint_writer_.finish(); }

  void resume() {
    if (run_.data_digest.empty())
      throw std::logic_error("train_model: a checkpoint directory without the data's digest");
    digest_ = run_.data_digest;
    const auto matches = [this](const std::string& stored) {
      return fingerprint_matches(stored, o_.fingerprint, o_.resume_new_hyperparameters);
    };
    auto restored =
        read_checkpoint(*run_.checkpoint_dir, matches, digest_, *model_.net(), *optimizer_, best_, hooks_.log);
    if (!restored) return;
    history_ = restored->history;
    checkpoint_slot_ = 1 - restored->slot;  // keep the slot resumed from until the next is whole
    best_value_ = restored->best_value;
    bad_epochs_ = restored->bad_epochs;
    if (restored->fingerprint != o_.fingerprint) {  // PBT: another trial's, or other hyperparameters
      set_optimizer_settings(*optimizer_, o_);
      hooks_.log("resuming from epoch " + std::to_string(history_.rows.size()) +
                 " of a checkpoint with other hyperparameters");
      return;
    }
    hooks_.log("resuming from epoch " + std::to_string(history_.rows.size()));
  }

  const TrainOptions& o_;
  const TrainRun& run_;
  const TrainHooks& hooks_;
  torch::Device device_;
  ModelSpec spec_;
  std::string loss_;
  TorchModel model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<Collective> collective_;  // with replicas only
  Batches train_, val_;
  bool resident_ = true;              // the data sets are on device_ (always on the CPU)
  std::optional<LossScaler> scaler_;  // fp16 only
  History history_;
  TensorFile best_;
  double best_value_ = -std::numeric_limits<double>::infinity();
  int64_t bad_epochs_ = 0;
  std::string digest_;
  int checkpoint_slot_ = 0;                                // where the next checkpoint goes
  std::chrono::steady_clock::time_point last_checkpoint_;  // or the start
  // Declared last, so it is destroyed first: a write in flight finishes
  // while what it reads no longer matters.
  CheckpointWriter checkpoint_writer_;
};

}  // namespace

History train_model(const TrainOptions& options, const TrainRun& run, const TrainHooks& hooks) {
  // The device first: `device: cuda` without a GPU fails before anything is trained.
  torch::Device device = torch::kCPU;
  try {
    device = resolve_device(options.device);
    check_precision(options.precision, device);
  } catch (const std::invalid_argument& e) {
    bad(e.what());
  }
  retain_freed_memory();
  at::set_num_threads(static_cast<int>(options.threads));
  // cuBLAS is deterministic only with a fixed workspace (PyTorch's documented setting).
  if (options.deterministic && device.is_cuda()) ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
  at::globalContext().setDeterministicAlgorithms(options.deterministic, false);
  Trainer trainer(options, run, hooks, device);
  return trainer.run();
}

void torch_warm_up() {
  at::set_num_threads(1);
  const auto x = torch::ones({4, 4}, torch::requires_grad());
  x.matmul(x).sum().backward();
}

}  // namespace kiln::ml

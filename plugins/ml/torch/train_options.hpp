// train.torch's parameters, parsed and checked once, torch-free so the
// manifest and the parsing compile without LibTorch headers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compute_options.hpp"
#include "model_spec.hpp"
#include "schedule.hpp"

namespace kiln {
class Context;
class Manifest;
}  // namespace kiln

namespace kiln::ml {

struct TrainOptions {
  ModelSpec model;            // architecture fields; shapes, task and classes come from the data
  std::string task = "auto";  // auto | classification | regression
  std::string loss = "auto";  // auto | cross_entropy | mse | l1 | huber
  std::string optimizer = "adam";
  double momentum = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  LrSchedule schedule;  // base lr, schedule and warm-up
  int64_t batch_size = 32, epochs = 10;
  int64_t early_stopping_patience = 0;  // 0 = off
  std::string early_stopping_metric = "val_loss";
  int64_t seed = 0;
  bool deterministic = false;
  int64_t threads = 0;   // 0 = all cores
  DeviceRequest device;  // resolved against the step's GPUs when training starts (device.hpp)
  Precision precision = Precision::Fp32;
  int64_t device_data_limit_mb = 2048;  // CUDA: data sets up to this size stay on the GPU
  bool checkpoint = true;
  int64_t checkpoint_every = 1;             // epochs between checkpoints (the last epoch always writes one)
  double checkpoint_seconds = 10;           // and at least this long between two (last or early-stopping epoch aside)
  double collective_timeout_seconds = 300;  // replicas: rendezvous and each collective
  int64_t debug_fail_after_epoch = 0;       // KILN_TEST_TRAIN_FAIL_AFTER_EPOCH (0 = never)
  // KILN_TEST_TRAIN_FAIL_RANK (-1 = every rank): with replicas, only this rank
  // fails after that epoch, and it dies at once (std::_Exit(86)), as a crash would.
  int64_t debug_fail_rank = -1;
  // Every parameter that changes the result, canonically: checkpoints resume only when it matches.
  std::string fingerprint;
  // Population-based training: a checkpoint made with other hyperparameters
  // (fingerprint_hyperparameter) resumes too, when the rest matches.
  bool resume_new_hyperparameters = false;
};

// Whether a checkpoint with fingerprint `stored` may resume a run with
// `current`: equal, or with resume_new_hyperparameters equal but for the
// optimisation hyperparameters a population-based search perturbs (lr,
// momentum, weight_decay, batch_size, epochs, the lr schedule's and
// early stopping's settings).
bool fingerprint_matches(const std::string& stored, const std::string& current, bool resume_new_hyperparameters);

// The parameters of train.torch's manifest.
void add_train_params(Manifest& manifest);
// Throws kiln::Error (invalid argument) naming the bad parameter.
TrainOptions parse_train_options(const Context& ctx);

}  // namespace kiln::ml

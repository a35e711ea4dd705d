// The training loop behind train.torch, behind a torch-free interface so the
// component's glue (parameters, artifacts, events) compiles without LibTorch.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <kiln/sdk/replica.hpp>

#include "dataset.hpp"
#include "history.hpp"
#include "train_options.hpp"

namespace kiln::ml {

struct TrainHooks {
  std::function<void(const History&)> on_epoch;  // after each epoch: report rows.back()
  std::function<void()> check_cancelled;         // throws to stop between batches
  std::function<void(const std::string&)> log;
};

struct TrainRun {
  const Dataset* train = nullptr;
  const Dataset* validation = nullptr;                  // optional
  std::optional<std::filesystem::path> checkpoint_dir;  // resume from / checkpoint into
  std::string data_digest;                              // with a checkpoint_dir: data_digest(train, validation)
  std::filesystem::path model_dir;                      // the Model artifact to write
  std::optional<std::filesystem::path> transform_dir;   // copied into the model
  // Data-parallel (docs/distributed.md): this process's rank among the step's
  // replicas. Rank 0 alone writes the model and checkpoints; every rank
  // trains on its share of each global batch and all sum their gradients.
  Replica replica;
};

// Trains, writes the model (the best epoch's weights when validating, else
// the last; rank 0 only) and returns the history, the same on every rank.
// Throws kiln::Error for bad input and when a replica fails.
History train_model(const TrainOptions& options, const TrainRun& run, const TrainHooks& hooks);

// A tiny LibTorch operation, so a warm step server forks initialised steps.
void torch_warm_up();

}  // namespace kiln::ml

// The training loop behind train.torch, behind a torch-free interface so the
// component's glue (parameters, artifacts, events) compiles without LibTorch.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

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
  std::filesystem::path model_dir;                      // the Model artifact to write
  std::optional<std::filesystem::path> transform_dir;   // copied into the model
};

// Trains, writes the model (the best epoch's weights when validating, else
// the last) and returns the history. Throws kiln::Error for bad input.
History train_model(const TrainOptions& options, const TrainRun& run, const TrainHooks& hooks);

// A tiny LibTorch operation, so a warm step server forks initialised steps.
void torch_warm_up();

}  // namespace kiln::ml

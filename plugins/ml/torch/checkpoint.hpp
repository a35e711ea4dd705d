// train.torch's per-epoch checkpoint in the step's checkpoint directory: two
// slots, checkpoint-0.safetensors and checkpoint-1.safetensors, written in
// turn, each overwritten in place. A slot holds the model ("model/..."),
// the best weights ("best/...") and the optimizer's per-parameter moments
// ("optimizer/I/...") as tensors, and in its metadata the state (history,
// early-stopping counters, fingerprint, data digest, optimizer steps) and a
// checksum of the state and the tensors. A process's crash mid-write tears
// one slot and leaves the other whole (nothing is fsynced: after a machine
// crash both may be torn, and the step starts over); reading takes the slot with the most epochs
// whose checksum holds and whose parameters and data digests match (a retry
// of the same step).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dataset.hpp"
#include "history.hpp"
#include "safetensors.hpp"

namespace kiln::ml {

struct CheckpointState {
  std::string fingerprint;  // TrainOptions::fingerprint
  std::string digest;       // data_digest of the inputs
  History history;          // the epochs done
  double best_value = 0;    // the monitored value of history.best_epoch (higher is better)
  int64_t bad_epochs = 0;   // epochs since the best (early stopping)
  int slot = 0;             // read_checkpoint: the slot it came from (write the next to the other)
};

// A checkpoint in two halves, so the second can run on another thread while
// training goes on: a copy of the tensors (the weights change with the next
// batch) with the state as it is, then the metadata, its checksum and the
// file. Throws std::runtime_error.
struct CheckpointSnapshot {
  TensorFile tensors;  // model, best weights, optimizer moments
  CheckpointState state;
  std::vector<std::optional<int64_t>> optimizer_steps;  // per parameter, in the optimizer's order (none: no step yet)
};
CheckpointSnapshot snapshot_checkpoint(CheckpointState state, torch::nn::Module& net,
                                       torch::optim::Optimizer& optimizer, const TensorFile& best);
void write_checkpoint(const std::filesystem::path& dir, int slot, CheckpointSnapshot snapshot);
std::filesystem::path checkpoint_slot_path(const std::filesystem::path& dir, int slot);

// Restores net, optimizer (its moments onto each parameter's device) and best weights and
// returns the state when a checkpoint whose fingerprint `matches` (given the
// stored one) exists; logs why one is ignored.
std::optional<CheckpointState> read_checkpoint(const std::filesystem::path& dir,
                                               const std::function<bool(const std::string&)>& matches,
                                               const std::string& digest, torch::nn::Module& net,
                                               torch::optim::Optimizer& optimizer, TensorFile& best,
                                               const std::function<void(const std::string&)>& log);

}  // namespace kiln::ml

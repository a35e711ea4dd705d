// Data-parallel training's communication: a c10d Gloo process group joined
// through a TCPStore that rank 0 serves (kiln::Replica says where). One
// flat all-reduce of every gradient per batch; small sums for the epoch's
// tallies; a broadcast from rank 0 for the initial weights and the batch-norm
// buffers. Every failure (a peer gone, a collective past its timeout) throws
// kiln::Error naming this rank, so the step fails instead of hanging.
#pragma once

#include <torch/torch.h>

#include <kiln/sdk/replica.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace kiln::ml {

class Collective {
 public:
  // Joins the group (blocks until every rank has: at most `timeout`, which
  // also bounds each collective). Throws kiln::Error.
  Collective(const Replica& replica, std::chrono::milliseconds timeout);
  ~Collective();
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  int rank() const { return replica_.rank; }
  int world_size() const { return replica_.world_size; }

  // Sums every parameter's gradient across the ranks (an undefined gradient
  // counts as zeros), in one flat buffer.
  void sum_gradients(const std::vector<torch::Tensor>& parameters);
  // Sums `values` across the ranks, in place.
  void sum(std::vector<double>& values);
  // Copies rank 0's values of `tensors` into every rank's.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  void barrier();

  // Time spent inside collectives (waiting for the slowest rank included).
  double seconds_communicating() const { return seconds_; }

 private:
  struct Group;
  void run(const char* what, const std::function<void()>& collective);

  Replica replica_;
  std::unique_ptr<Group> group_;
  double seconds_ = 0;
};

// FNV-1a over every parameter's and buffer's bytes, as 16 hex digits: equal
// on every rank when the replicas hold the same model.
std::string parameters_digest(torch::nn::Module& module);

}  // namespace kiln::ml

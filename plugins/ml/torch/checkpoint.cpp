#include "checkpoint.hpp"

#include <array>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "data_digest.hpp"
#include "model.hpp"

namespace kiln::ml {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kFormat = "kiln.checkpoint/v2";
// Tensor name prefixes inside the one file.
constexpr const char* kModel = "model/";
constexpr const char* kBest = "best/";
constexpr const char* kOptimizer = "optimizer/";

// hash_fold() over the state text and every tensor's name and bytes, in name
// order: to tell a torn or zero-filled file from the one written. The file
// is overwritten in place without fsync (a checkpoint is a shortcut, not a
// record), so a crash can leave any mix of the old and the new bytes; such
// a slot is ignored and the other one used. Computed from memory before
// writing: nothing is read back.
std::string checkpoint_checksum(const TensorFile& file) {
  uint64_t hash = 0x9e3779b97f4a7c15ULL;
  const auto state = file.metadata.find("state");
  if (state != file.metadata.end()) hash_fold(hash, state->second.data(), state->second.size());
  for (const auto& [name, tensor] : file.tensors) {
    hash_fold(hash, name.data(), name.size());
    hash_fold(hash, tensor.bytes.data(), tensor.bytes.size());
  }
  return hash_hex(hash);
}

// Per parameter, in the optimizer's order: the state LibTorch keys by the
// parameter's TensorImpl (the key torch::optim uses).
std::string state_key(const torch::Tensor& parameter) {
  return c10::guts::to_string(parameter.unsafeGetTensorImpl());
}

std::vector<torch::Tensor> parameters_of(torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> all;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) all.push_back(p);
  return all;
}

// Adam and AdamW keep the same fields; SGD a momentum buffer. A field that
// is undefined (amsgrad off, no momentum) is not written.
template <class State>
void put_adam(TensorFile& file, std::vector<std::optional<int64_t>>& steps, const std::string& prefix, const State& s) {
  steps.push_back(s.step());
  file.tensors[prefix + "exp_avg"] = from_torch(s.exp_avg());
  file.tensors[prefix + "exp_avg_sq"] = from_torch(s.exp_avg_sq());
  if (s.max_exp_avg_sq().defined()) file.tensors[prefix + "max_exp_avg_sq"] = from_torch(s.max_exp_avg_sq());
}

std::vector<std::optional<int64_t>> put_optimizer(TensorFile& file, torch::optim::Optimizer& optimizer) {
  std::vector<std::optional<int64_t>> steps;
  const auto parameters = parameters_of(optimizer);
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto found = optimizer.state().find(state_key(parameters[i]));
    const std::string prefix = kOptimizer + std::to_string(i) + "/";
    if (found == optimizer.state().end()) {
      steps.emplace_back();  // no step taken yet
    } else if (const auto* adamw = dynamic_cast<const torch::optim::AdamWParamState*>(found->second.get())) {
      put_adam(file, steps, prefix, *adamw);
    } else if (const auto* adam = dynamic_cast<const torch::optim::AdamParamState*>(found->second.get())) {
      put_adam(file, steps, prefix, *adam);
    } else if (const auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(found->second.get())) {
      steps.push_back(0);
      if (sgd->momentum_buffer().defined())
        file.tensors[prefix + "momentum_buffer"] = from_torch(sgd->momentum_buffer());
    } else {
      throw std::logic_error("checkpoint: an optimizer state of an unknown kind");
    }
  }
  return steps;
}

torch::Tensor tensor_at(const TensorFile& file, const std::string& name, const torch::Tensor& like) {
  const auto found = file.tensors.find(name);
  if (found == file.tensors.end()) throw std::runtime_error("no tensor '" + name + "'");
  auto value = to_torch_float(found->second);
  if (value.sizes() != like.sizes()) throw std::runtime_error("tensor '" + name + "' has the wrong shape");
  return value.to(like.device());
}

template <class State>
std::unique_ptr<torch::optim::OptimizerParamState> take_adam(const TensorFile& file, const std::string& prefix,
                                                             int64_t step, const torch::Tensor& p) {
  auto s = std::make_unique<State>();
  s->step(step);
  s->exp_avg(tensor_at(file, prefix + "exp_avg", p));
  s->exp_avg_sq(tensor_at(file, prefix + "exp_avg_sq", p));
  if (file.tensors.count(prefix + "max_exp_avg_sq")) s->max_exp_avg_sq(tensor_at(file, prefix + "max_exp_avg_sq", p));
  return s;
}

// The optimizer's state as the file holds it, built before anything is
// changed: a checkpoint that fails here leaves the optimizer as it was.
using OptimizerState = std::vector<std::pair<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>>;

OptimizerState take_optimizer(const TensorFile& file, const json& steps, torch::optim::Optimizer& optimizer) {
  const auto parameters = parameters_of(optimizer);
  if (!steps.is_array() || steps.size() != parameters.size())
    throw std::runtime_error("the optimizer state is for another number of parameters");
  OptimizerState state;
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (steps[i].is_null()) continue;
    const std::string prefix = kOptimizer + std::to_string(i) + "/";
    const int64_t step = steps[i].get<int64_t>();
    const auto& p = parameters[i];
    std::unique_ptr<torch::optim::OptimizerParamState> s;
    if (dynamic_cast<torch::optim::AdamW*>(&optimizer)) {
      s = take_adam<torch::optim::AdamWParamState>(file, prefix, step, p);
    } else if (dynamic_cast<torch::optim::Adam*>(&optimizer)) {
      s = take_adam<torch::optim::AdamParamState>(file, prefix, step, p);
    } else if (dynamic_cast<torch::optim::SGD*>(&optimizer)) {
      auto sgd = std::make_unique<torch::optim::SGDParamState>();
      if (file.tensors.count(prefix + "momentum_buffer"))
        sgd->momentum_buffer(tensor_at(file, prefix + "momentum_buffer", p));
      s = std::move(sgd);
    } else {
      throw std::logic_error("checkpoint: an optimizer of an unknown kind");
    }
    state.emplace_back(state_key(p), std::move(s));
  }
  return state;
}

void put_prefixed(TensorFile& to, const TensorFile& from, const char* prefix) {
  for (const auto& [name, tensor] : from.tensors) to.tensors[prefix + name] = tensor;
}

TensorFile take_prefixed(const TensorFile& from, const std::string& prefix) {
  TensorFile out;
  for (const auto& [name, tensor] : from.tensors)
    if (name.compare(0, prefix.size(), prefix) == 0) out.tensors[name.substr(prefix.size())] = tensor;
  return out;
}

std::string state_json(const CheckpointState& s, const std::vector<std::optional<int64_t>>& steps) {
  json optimizer_steps = json::array();
  for (const auto& step : steps) optimizer_steps.push_back(step ? json(*step) : json(nullptr));
  const json j = {{"fingerprint", s.fingerprint},
                  {"digest", s.digest},
                  {"history", json::parse(history_to_json(s.history))},
                  {"best_value", s.best_value},
                  {"bad_epochs", s.bad_epochs},
                  {"optimizer_steps", optimizer_steps}};
  return j.dump();
}

CheckpointState parse_state(const json& j) {
  CheckpointState s;
  s.fingerprint = j.at("fingerprint").get<std::string>();
  s.digest = j.at("digest").get<std::string>();
  s.history = history_from_json(j.at("history").dump());
  s.best_value =
      j.at("best_value").is_null() ? -std::numeric_limits<double>::infinity() : j["best_value"].get<double>();
  s.bad_epochs = j.at("bad_epochs").get<int64_t>();
  return s;
}

}  // namespace

CheckpointSnapshot snapshot_checkpoint(CheckpointState state, torch::nn::Module& net,
                                       torch::optim::Optimizer& optimizer, const TensorFile& best) {
  CheckpointSnapshot snapshot;
  put_prefixed(snapshot.tensors, state_to_tensors(net), kModel);
  put_prefixed(snapshot.tensors, best, kBest);
  snapshot.optimizer_steps = put_optimizer(snapshot.tensors, optimizer);
  snapshot.state = std::move(state);
  return snapshot;
}

fs::path checkpoint_slot_path(const fs::path& dir, int slot) {
  return dir / ("checkpoint-" + std::to_string(slot) + ".safetensors");
}

void write_checkpoint(const fs::path& dir, int slot, CheckpointSnapshot snapshot) {
  TensorFile& file = snapshot.tensors;
  file.metadata["format"] = kFormat;
  file.metadata["state"] = state_json(snapshot.state, snapshot.optimizer_steps);
  file.metadata["checksum"] = checkpoint_checksum(file);
  // In place over the older of the two slots: the newer one stays whole
  // whatever happens to this write.
  overwrite_safetensors(checkpoint_slot_path(dir, slot), file);
}

namespace {

// One slot's checkpoint, checked and parsed; throws naming what is wrong.
struct SlotCheckpoint {
  TensorFile file;
  json stored;
  CheckpointState state;
};

SlotCheckpoint read_slot(const fs::path& path) {
  SlotCheckpoint slot;
  slot.file = read_safetensors(path);
  const auto meta = [&](const char* key) {
    const auto found = slot.file.metadata.find(key);
    if (found == slot.file.metadata.end()) throw std::runtime_error(std::string("no '") + key + "' in its metadata");
    return found->second;
  };
  if (meta("format") != kFormat) throw std::runtime_error("format " + meta("format") + ", not " + kFormat);
  if (meta("checksum") != checkpoint_checksum(slot.file))
    throw std::runtime_error("it is not the file that was written (a crash tore it)");
  slot.stored = json::parse(meta("state"));
  slot.state = parse_state(slot.stored);
  return slot;
}

}  // namespace

std::optional<CheckpointState> read_checkpoint(const fs::path& dir,
                                               const std::function<bool(const std::string&)>& matches,
                                               const std::string& digest, torch::nn::Module& net,
                                               torch::optim::Optimizer& optimizer, TensorFile& best,
                                               const std::function<void(const std::string&)>& log) {
  if (fs::exists(dir / "current") || fs::exists(dir / "next") || fs::exists(dir / "checkpoint.safetensors"))
    log("ignoring the checkpoint in " + dir.string() + ": it has the layout of an earlier kiln");
  // The usable slot with the most epochs.
  std::optional<SlotCheckpoint> chosen;
  for (int slot = 0; slot < 2; ++slot) {
    const fs::path path = checkpoint_slot_path(dir, slot);
    if (!fs::exists(path)) continue;
    try {
      SlotCheckpoint read = read_slot(path);
      read.state.slot = slot;
      if (!matches(read.state.fingerprint) || read.state.digest != digest) {
        log("ignoring the checkpoint " + path.string() + ": it was made with other parameters or data");
        continue;
      }
      if (!chosen || read.state.history.rows.size() > chosen->state.history.rows.size()) chosen = std::move(read);
    } catch (const std::exception& e) {
      log("ignoring an unreadable checkpoint " + path.string() + ": " + e.what());
    }
  }
  if (!chosen) return std::nullopt;
  try {
    OptimizerState moments = take_optimizer(chosen->file, chosen->stored.at("optimizer_steps"), optimizer);
    load_state(net, take_prefixed(chosen->file, kModel), "checkpoint model");  // the same architecture: shapes match
    optimizer.state().clear();
    for (auto& [key, value] : moments) optimizer.state()[key] = std::move(value);
    best = take_prefixed(chosen->file, kBest);
    return chosen->state;
  } catch (const std::exception& e) {
    log("ignoring an unreadable checkpoint in " + dir.string() + ": " + e.what());
    return std::nullopt;
  }
}

}  // namespace kiln::ml

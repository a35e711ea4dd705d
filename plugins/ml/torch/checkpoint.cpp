#include "checkpoint.hpp"

#include <array>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "model.hpp"

namespace kiln::ml {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kState = "state.json";

void fnv1a(uint64_t& hash, const std::vector<std::byte>& bytes) {
  for (const std::byte b : bytes) hash = (hash ^ static_cast<uint64_t>(b)) * 1099511628211ULL;
}

void hash_dataset(uint64_t& hash, const Dataset& d) {
  fnv1a(hash, d.features.bytes);
  if (d.labels) fnv1a(hash, d.labels->bytes);
}

std::string state_json(const CheckpointState& s) {
  const json j = {{"fingerprint", s.fingerprint},
                  {"digest", s.digest},
                  {"history", json::parse(history_to_json(s.history))},
                  {"best_value", s.best_value},
                  {"bad_epochs", s.bad_epochs}};
  return j.dump();
}

CheckpointState parse_state(const std::string& text) {
  const json j = json::parse(text);
  CheckpointState s;
  s.fingerprint = j.at("fingerprint").get<std::string>();
  s.digest = j.at("digest").get<std::string>();
  s.history = history_from_json(j.at("history").dump());
  s.best_value =
      j.at("best_value").is_null() ? -std::numeric_limits<double>::infinity() : j["best_value"].get<double>();
  s.bad_epochs = j.at("bad_epochs").get<int64_t>();
  return s;
}

// current/, or next/ when a crash came between removing current and renaming next.
std::optional<fs::path> complete_checkpoint(const fs::path& dir) {
  for (const char* name : {"current", "next"}) {
    if (fs::exists(dir / name / kState)) return dir / name;
  }
  return std::nullopt;
}

}  // namespace

std::string data_digest(const Dataset& train, const Dataset* validation) {
  uint64_t hash = 14695981039346656037ULL;
  hash_dataset(hash, train);
  if (validation) hash_dataset(hash, *validation);
  std::array<char, 17> text{};
  std::snprintf(text.data(), text.size(), "%016llx", static_cast<unsigned long long>(hash));
  return text.data();
}

void write_checkpoint(const fs::path& dir, const CheckpointState& state, torch::nn::Module& net,
                      torch::optim::Optimizer& optimizer, const TensorFile& best) {
  const auto next = dir / "next";
  fs::remove_all(next);
  fs::create_directories(next);
  write_safetensors(next / "model.safetensors", state_to_tensors(net));
  if (!best.tensors.empty()) write_safetensors(next / "best.safetensors", best);
  torch::save(optimizer, (next / "optimizer.pt").string());
  write_text_atomic(next / kState, state_json(state));  // last: marks next/ complete
  fs::remove_all(dir / "current");
  fs::rename(next, dir / "current");
}

std::optional<CheckpointState> read_checkpoint(const fs::path& dir,
                                               const std::function<bool(const std::string&)>& matches,
                                               const std::string& digest, torch::nn::Module& net,
                                               torch::optim::Optimizer& optimizer, TensorFile& best,
                                               const torch::Device& device,
                                               const std::function<void(const std::string&)>& log) {
  const auto found = complete_checkpoint(dir);
  if (!found) return std::nullopt;
  try {
    auto state = parse_state(read_text(*found / kState));
    if (!matches(state.fingerprint) || state.digest != digest) {
      log("ignoring the checkpoint in " + dir.string() + ": it was made with other parameters or data");
      return std::nullopt;
    }
    load_state(net, read_safetensors(*found / "model.safetensors"), "checkpoint model");
    torch::load(optimizer, (*found / "optimizer.pt").string(), device);
    if (fs::exists(*found / "best.safetensors")) best = read_safetensors(*found / "best.safetensors");
    return state;
  } catch (const std::exception& e) {
    log("ignoring an unreadable checkpoint in " + dir.string() + ": " + e.what());
    return std::nullopt;
  }
}

}  // namespace kiln::ml

#include "checkpoint.hpp"

#include <array>
#include <cstdio>
#include <cstring>
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

// The files are written without fsync (safetensors.cpp, write_atomic), so a
// machine crash can leave a checkpoint whose state.json survived but whose
// tensors did not. state.json records each file's size and checksum, and a
// checkpoint that does not match them is ignored (the step starts over):
// cheaper than three fsyncs per epoch, which dominated short epochs.
constexpr std::array<const char*, 3> kCheckpointFiles{"model.safetensors", "best.safetensors", "optimizer.pt"};

// 64-bit words folded with a multiply and a shift: not cryptographic, only
// to tell a torn or zero-filled file from the one written.
std::string checkpoint_checksum(const std::string& bytes) {
  uint64_t hash = 0x9e3779b97f4a7c15ULL ^ bytes.size();
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, bytes.data() + i, sizeof word);
    hash = (hash ^ word) * 0x100000001b3ULL;
    hash ^= hash >> 29;
  }
  for (; i < bytes.size(); ++i) hash = (hash ^ static_cast<unsigned char>(bytes[i])) * 1099511628211ULL;
  std::array<char, 17> text{};
  std::snprintf(text.data(), text.size(), "%016llx", static_cast<unsigned long long>(hash));
  return text.data();
}

json files_of(const fs::path& dir) {
  json files = json::object();
  for (const char* name : kCheckpointFiles)
    if (fs::exists(dir / name)) {
      const std::string bytes = read_text(dir / name);
      files[name] = {{"bytes", bytes.size()}, {"checksum", checkpoint_checksum(bytes)}};
    }
  return files;
}

// Throws when a file state.json lists is missing or not the one written.
void check_files(const fs::path& dir, const json& files) {
  for (const auto& [name, expected] : files.items()) {
    if (!fs::exists(dir / name)) throw std::runtime_error(name + " is missing");
    const std::string bytes = read_text(dir / name);
    if (bytes.size() != expected.at("bytes").get<size_t>() ||
        checkpoint_checksum(bytes) != expected.at("checksum").get<std::string>())
      throw std::runtime_error(name + " is not the file that was written (a crash tore it)");
  }
}

std::string state_json(const CheckpointState& s, const json& files) {
  const json j = {{"fingerprint", s.fingerprint},
                  {"digest", s.digest},
                  {"history", json::parse(history_to_json(s.history))},
                  {"best_value", s.best_value},
                  {"bad_epochs", s.bad_epochs},
                  {"files", files}};
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
  write_text_atomic(next / kState, state_json(state, files_of(next)));  // last: marks next/ complete
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
    const json stored = json::parse(read_text(*found / kState));
    auto state = parse_state(stored);
    if (!matches(state.fingerprint) || state.digest != digest) {
      log("ignoring the checkpoint in " + dir.string() + ": it was made with other parameters or data");
      return std::nullopt;
    }
    if (stored.contains("files")) check_files(*found, stored["files"]);  // absent in checkpoints before it
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

// kiln_bench_plain_loop: the trials of a kiln tuning run retrained in a plain
// LibTorch loop, one after the other in one process: the baseline of issue
// 23's "per-epoch overhead <= 1.1x a plain LibTorch loop on identical work"
// (bench/tuning/plain_loop.sh puts the two side by side).
//
//   kiln_bench_plain_loop TRAIN_DIR VALIDATION_DIR TRIALS_JSON EPOCHS SEED [--metrics]
//
// TRAIN_DIR / VALIDATION_DIR: kiln's own `transform` artifacts (a
// data.safetensors with F32 "features" and I64 "labels"); TRIALS_JSON: `kiln
// trials RUN tune --json`. Each trial trains the MLP train.torch builds for it
// (Linear, ReLU, Dropout per hidden size; the seed's initialisation; AdamW;
// the cosine schedule over EPOCHS; per-epoch seeded batch order and dropout)
// for as many epochs as its curve has, with a validation pass per epoch, and
// nothing else: no checkpoints, no reports, no process per trial. --metrics:
// also the per-epoch metrics kiln reports (the training loss and accuracy
// summed per batch, the validation loss), as a training loop usually
// prints them. Prints {"trials", "epochs", "seconds", "curves_identical",
// "trial_seconds", "epoch_seconds"}: "seconds" is the
// training alone (LibTorch is loaded and the data read before the clock
// starts); "curves_identical" counts the trials whose per-epoch validation
// accuracies equal kiln's to the last bit, the proof that the work is the same.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "safetensors.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

using nlohmann::json;

struct Data {
  torch::Tensor x, y;
};

// A dataset artifact's "features" (F32) and "labels" (I64), read with
// kiln's own safetensors reader (it validates the header) and copied out.
Data read_dataset(const std::string& dir) {
  kiln::ml::TensorFile file = kiln::ml::read_safetensors(dir + "/data.safetensors");
  const auto tensor = [&](const char* name, kiln::ml::DType want, torch::Dtype dtype) {
    const auto found = file.tensors.find(name);
    if (found == file.tensors.end() || found->second.dtype != want)
      throw std::runtime_error(dir + "/data.safetensors: no " + name + " tensor of the expected dtype");
    return torch::from_blob(found->second.bytes.data(), found->second.shape, dtype).clone();
  };
  return {tensor("features", kiln::ml::DType::F32, torch::kFloat32),
          tensor("labels", kiln::ml::DType::I64, torch::kInt64)};
}

void seed_all(uint64_t seed) {
  auto generator = at::detail::getDefaultCPUGenerator();
  const std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(seed);
}

torch::nn::Sequential build(const std::vector<int64_t>& sizes, double dropout, int64_t inputs, int64_t classes) {
  torch::nn::Sequential net;
  int64_t width = inputs;
  for (const int64_t size : sizes) {
    net->push_back(torch::nn::Linear(width, size));
    net->push_back(torch::nn::ReLU());
    if (dropout > 0) net->push_back(torch::nn::Dropout(dropout));
    width = size;
  }
  net->push_back(torch::nn::Linear(width, classes));
  return net;
}

double sink = 0;  // the --metrics sums, printed so that they are computed

// Trains one trial for `stop_after` epochs of an `epochs`-epoch schedule;
// the validation accuracy after each epoch (each epoch's seconds go to
// `epoch_seconds`).
std::vector<double> train(const Data& train_set, const Data& val, int64_t classes, const json& p, int64_t epochs,
                          int64_t stop_after, int64_t seed, bool metrics, std::vector<double>& epoch_seconds) {
  seed_all(static_cast<uint64_t>(seed));
  auto net = build(p.at("hidden_sizes").get<std::vector<int64_t>>(), p.at("dropout").get<double>(),
                   train_set.x.size(1), classes);
  const double lr = p.at("lr").get<double>();
  torch::optim::AdamW optimizer(net->parameters(),
                                torch::optim::AdamWOptions(lr).weight_decay(p.at("weight_decay").get<double>()));
  const int64_t batch = p.at("batch_size").get<int64_t>(), n = train_set.x.size(0);
  std::vector<double> curve;
  for (int64_t epoch = 0; epoch < stop_after; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    const double rate = lr * 0.5 * (1.0 + std::cos(3.14159265358979323846 * static_cast<double>(epoch) /
                                                   static_cast<double>(std::max<int64_t>(1, epochs))));
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(rate);
    seed_all(static_cast<uint64_t>(seed) * 1000003ULL + static_cast<uint64_t>(epoch));
    net->train();
    const auto order = torch::randperm(n, torch::kInt64);
    double train_loss = 0, val_loss = 0;
    int64_t train_correct = 0;
    for (int64_t start = 0; start < n; start += batch) {
      const auto index = order.slice(0, start, std::min(start + batch, n));
      optimizer.zero_grad();
      const auto y = train_set.y.index_select(0, index);
      const auto out = net->forward(train_set.x.index_select(0, index));
      const auto loss = torch::nn::functional::cross_entropy(out, y);
      loss.backward();
      optimizer.step();
      if (metrics) {  // what a training loop usually prints per epoch: the training loss and accuracy
        train_loss += loss.item<double>() * static_cast<double>(index.size(0));
        train_correct += out.argmax(1).eq(y).sum().item<int64_t>();
      }
    }
    const torch::NoGradGuard no_grad;
    net->eval();
    const auto out = net->forward(val.x);
    if (metrics) val_loss = torch::nn::functional::cross_entropy(out, val.y).item<double>();
    curve.push_back(out.argmax(1).eq(val.y).sum().item<double>() / static_cast<double>(val.x.size(0)));
    epoch_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count());
    sink += train_loss + val_loss + static_cast<double>(train_correct);
  }
  return curve;
}

}  // namespace

int main(int argc, char** argv) {
  const bool metrics = argc == 7 && std::string(argv[6]) == "--metrics";
  if (argc != 6 && !metrics) {
    std::cerr << "usage: kiln_bench_plain_loop TRAIN_DIR VALIDATION_DIR TRIALS_JSON EPOCHS SEED [--metrics]\n";
    return 2;
  }
  try {
    torch::set_num_threads(1);  // as the tuning step's trials (threads: 1)
    const Data train_set = read_dataset(argv[1]), val = read_dataset(argv[2]);
    std::ifstream trials_file(argv[3]);
    const json trials = json::parse(trials_file);
    const int64_t epochs = std::stoll(argv[4]), seed = std::stoll(argv[5]);
    const int64_t classes = std::max(train_set.y.max().item<int64_t>(), val.y.max().item<int64_t>()) + 1;
    int64_t total_epochs = 0, identical = 0;
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::vector<double>> curves;
    std::vector<double> trial_seconds;
    std::vector<std::vector<double>> epoch_seconds;
    for (const auto& row : trials) {
      const int64_t done = static_cast<int64_t>(row.at("curve").size());
      const auto trial_start = std::chrono::steady_clock::now();
      epoch_seconds.emplace_back();
      curves.push_back(train(train_set, val, classes, row.at("parameters"), epochs, done, seed, metrics, epoch_seconds.back()));
      trial_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - trial_start).count());
      total_epochs += done;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (size_t i = 0; i < curves.size(); ++i) {
      bool same = true;
      for (size_t e = 0; e < curves[i].size(); ++e)
        same = same && trials[i]["curve"].at(std::to_string(e + 1)).get<double>() == curves[i][e];
      identical += same ? 1 : 0;
    }
    std::cout << json{{"trials", trials.size()},
                      {"epochs", total_epochs},
                      {"seconds", seconds},
                      {"curves_identical", identical},
                      {"trial_seconds", trial_seconds},
                      {"epoch_seconds", epoch_seconds},
                      {"metrics", metrics},
                      {"metrics_sum", sink}}
                     .dump()
              << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kiln_bench_plain_loop: " << e.what() << "\n";
    return 1;
  }
}

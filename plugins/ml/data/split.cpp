// data.split: seeded, reproducible train/validation/test split, stratified
// by class, with optional k-fold cross-validation over the non-test rows.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "common.hpp"
#include "components.hpp"

namespace kiln::data {
namespace {

using Indices = std::vector<int64_t>;

// Splits `total` into per-group shares of `fraction * sizes[g]` that add up
// to round(fraction * sum): floors first, then the largest remainders
// (ties to the lower group) — Hamilton's apportionment. `room` caps each group.
std::vector<int64_t> apportion(const std::vector<int64_t>& sizes, const std::vector<int64_t>& room, double fraction,
                               int64_t total) {
  std::vector<int64_t> share(sizes.size());
  std::vector<double> remainder(sizes.size());
  int64_t given = 0;
  for (std::size_t g = 0; g < sizes.size(); ++g) {
    const double ideal = fraction * static_cast<double>(sizes[g]);
    share[g] = std::min(room[g], static_cast<int64_t>(std::floor(ideal)));
    remainder[g] = ideal - std::floor(ideal);
    given += share[g];
  }
  std::vector<std::size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return remainder[a] > remainder[b]; });
  // Two rounds: first by remainder, then anyone with room (when caps bite).
  for (int round = 0; round < 2 && given < total; ++round)
    for (const auto g : order)
      if (given < total && share[g] < room[g] && (round == 1 || remainder[g] > 0)) {
        ++share[g];
        ++given;
      }
  return share;
}

struct Parts {
  Indices train, validation, test;
};

// Groups of row indices: one per class when stratified, else one.
std::vector<Indices> groups_of(const ml::Dataset& d, bool stratify) {
  if (!stratify) {
    Indices all(static_cast<std::size_t>(d.rows()));
    std::iota(all.begin(), all.end(), 0);
    return {all};
  }
  std::vector<Indices> groups(d.schema.label->classes.size());
  const auto labels = d.class_labels();
  for (std::size_t i = 0; i < labels.size(); ++i)
    groups[static_cast<std::size_t>(labels[i])].push_back(static_cast<int64_t>(i));
  return groups;
}

int64_t rounded(double fraction, int64_t n) {
  return static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
}

Parts split(std::vector<Indices> groups, int64_t n, double validation, double test, int64_t folds, int64_t fold,
            Rng& rng) {
  std::vector<int64_t> sizes, room;
  for (auto& g : groups) {
    rng.shuffle(g);
    sizes.push_back(static_cast<int64_t>(g.size()));
  }
  const auto test_share = apportion(sizes, sizes, test, rounded(test, n));
  for (std::size_t g = 0; g < groups.size(); ++g) room.push_back(sizes[g] - test_share[g]);
  const auto val_share =
      folds > 0 ? std::vector<int64_t>(groups.size(), 0) : apportion(sizes, room, validation, rounded(validation, n));
  Parts p;
  int64_t dealt = 0;  // k-fold: rows are dealt to folds round-robin across all groups
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto& rows = groups[g];
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const auto i = static_cast<int64_t>(k);
      if (i < test_share[g])
        p.test.push_back(rows[k]);
      else if (folds > 0)
        (dealt++ % folds == fold ? p.validation : p.train).push_back(rows[k]);
      else if (i < test_share[g] + val_share[g])
        p.validation.push_back(rows[k]);
      else
        p.train.push_back(rows[k]);
    }
  }
  // Rows keep the source's order within each part.
  for (auto* part : {&p.train, &p.validation, &p.test}) std::sort(part->begin(), part->end());
  return p;
}

}  // namespace

Manifest Split::manifest() {
  return Manifest("data.split", "1.0.0", Kind::Data)
      .description("Seeded, reproducible train/validation/test split; stratified by class; optional k-fold")
      .param(Param::Float("validation")
                 .default_value(0.1)
                 .min(0)
                 .max(1)
                 .description("fraction for validation (ignored when folds > 0)"))
      .param(Param::Float("test").default_value(0.2).min(0).max(1).description("fraction held out for test"))
      .param(Param::Bool("stratify").default_value(true).description("keep class proportions (classification only)"))
      .param(Param::Int("seed").default_value(0).description("same seed, same split, on every platform"))
      .param(Param::Int("folds").default_value(0).min(0).description("k > 1: k-fold over the non-test rows; 0 = off"))
      .param(Param::Int("fold").default_value(0).min(0).description("which fold (0..k-1) is the validation set"))
      .input(Port("data", "Dataset"))
      .output(Port("train", "Dataset"))
      .output(Port("validation", "Dataset"))
      .output(Port("test", "Dataset"));
}

void Split::run(Context& ctx) {
  const auto data = read_dataset(ctx, "data");
  const double validation = ctx.param_float("validation"), test = ctx.param_float("test");
  const auto folds = ctx.param_int("folds"), fold = ctx.param_int("fold");
  if (folds == 1) bad_input("folds: k-fold needs at least 2 folds (0 turns it off)");
  if (folds > 0 && fold >= folds)
    bad_input("fold " + std::to_string(fold) + " is not below folds " + std::to_string(folds));
  if (folds == 0 && validation + test >= 1.0) bad_input("validation + test must leave rows for train (sum < 1)");
  if (test >= 1.0) bad_input("test must be below 1");
  const bool classes = data.schema.label && data.schema.label->task == ml::Task::Classification;
  const bool stratify = ctx.param_bool("stratify") && classes;
  if (ctx.param_bool("stratify") && !classes) ctx.info("not stratified: the dataset has no class labels");
  Rng rng(static_cast<uint64_t>(ctx.param_int("seed")));
  const auto parts = split(groups_of(data, stratify), data.rows(), validation, test, folds, fold, rng);
  const std::pair<const char*, const Indices*> outputs[] = {
      {"train", &parts.train}, {"validation", &parts.validation}, {"test", &parts.test}};
  for (const auto& [port, rows] : outputs) {
    auto part = data.subset(*rows);
    part.schema.description =
        data.schema.description + (data.schema.description.empty() ? "" : "; ") + "data.split " + port;
    write_dataset(ctx, port, part);
    ctx.metric(std::string(port) + "_rows", static_cast<double>(rows->size()));
  }
  ctx.progress(1.0, "split");
}

}  // namespace kiln::data

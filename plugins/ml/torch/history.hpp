// The TrainingHistory artifact: one row per epoch, as history.json (the
// format documented in docs/ml-components.md) and history.csv. Also the
// history's part of a checkpoint, so a resumed run continues the same rows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln::ml {

inline constexpr const char* kHistoryFormat = "kiln.training_history/v1";

struct EpochRow {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_metric = 0;
  std::optional<double> val_loss, val_metric;
  double lr = 0, seconds = 0;
};

struct History {
  std::string metric = "accuracy";  // accuracy (classification) | rmse (regression)
  std::vector<EpochRow> rows;
  int64_t best_epoch = 0;  // 1-based; 0 before the first epoch
};

std::string history_to_json(const History& history);
History history_from_json(const std::string& text);
std::string history_to_csv(const History& history);
// history.json and history.csv into `dir` (created).
void write_history(const History& history, const std::filesystem::path& dir);

}  // namespace kiln::ml

// evaluate's metric math, pure C++ on probability and label vectors (no
// LibTorch), so it is unit-tested against hand-computed values.
//
// Conventions (as scikit-learn's): precision of a class never predicted is 0
// (zero_division=0), likewise recall of a class absent from the labels and F1
// when precision + recall is 0; macro averages are unweighted means over all
// classes. ROC-AUC is one-vs-rest, macro over the classes that have both
// positive and negative examples (the rank statistic, ties averaged); absent
// when no class has both. Log loss clips probabilities to [1e-15, 1 - 1e-15].
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::ml {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;
};

struct ClassificationMetrics {
  double accuracy = 0, precision_macro = 0, recall_macro = 0, f1_macro = 0, log_loss = 0;
  std::optional<double> roc_auc;
  std::vector<ClassMetrics> per_class;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
};

struct RegressionMetrics {
  double mse = 0, rmse = 0, mae = 0, r2 = 0;
};

// A row's predicted class as LibTorch's argmax picks it: the first of equal
// scores; a NaN wins over any number (the first NaN).
int64_t argmax_row(const float* row, int64_t classes);

// How many of `rows` rows of scores (row-major [rows, classes]) predict their
// label: train.torch's accuracy tally on the CPU, without a tensor operation.
int64_t correct_predictions(const float* scores, const int64_t* labels, int64_t rows, int64_t classes);

// probabilities: row-major [labels.size(), classes]; predicted class = argmax_row.
ClassificationMetrics classification_metrics(const std::vector<float>& probabilities,
                                             const std::vector<int64_t>& labels, int64_t classes);
RegressionMetrics regression_metrics(const std::vector<float>& predictions, const std::vector<float>& targets);

// Area under the ROC curve of `scores` for the examples where positive[i]:
// the Mann-Whitney statistic with average ranks for ties. nullopt when all
// examples are of one kind.
std::optional<double> roc_auc_binary(const std::vector<double>& scores, const std::vector<bool>& positive);

// The scalar metrics by snake_case name (accuracy, f1_macro, roc_auc, ...).
std::map<std::string, double> scalar_metrics(const ClassificationMetrics& m);
std::map<std::string, double> scalar_metrics(const RegressionMetrics& m);

// Thresholds: >= for higher-is-better metrics, <= for log_loss, mse, rmse,
// mae. Returns one line per unmet threshold (empty: passed). Throws
// std::invalid_argument for a metric name that `metrics` lacks.
std::vector<std::string> unmet_thresholds(const std::map<std::string, double>& metrics,
                                          const std::map<std::string, double>& thresholds);
bool lower_is_better(const std::string& metric);

}  // namespace kiln::ml

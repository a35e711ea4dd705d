#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace kiln::ml {
namespace {

double ratio(double numerator, double denominator) {
  return denominator > 0 ? numerator / denominator : 0.0;
}

std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<float>& p, const std::vector<int64_t>& labels,
                                                   int64_t classes) {
  std::vector<std::vector<int64_t>> cm(classes, std::vector<int64_t>(classes, 0));
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= classes) throw std::invalid_argument("label out of range");
    ++cm[labels[i]][argmax_row(p.data() + i * classes, classes)];
  }
  return cm;
}

ClassMetrics class_metrics(const std::vector<std::vector<int64_t>>& cm, size_t k) {
  int64_t predicted = 0, actual = 0;
  for (size_t j = 0; j < cm.size(); ++j) {
    predicted += cm[j][k];
    actual += cm[k][j];
  }
  ClassMetrics c;
  const auto tp = static_cast<double>(cm[k][k]);
  c.precision = ratio(tp, static_cast<double>(predicted));
  c.recall = ratio(tp, static_cast<double>(actual));
  c.f1 = ratio(2 * c.precision * c.recall, c.precision + c.recall);
  c.support = actual;
  return c;
}

double log_loss(const std::vector<float>& p, const std::vector<int64_t>& labels, int64_t classes) {
  constexpr double kEps = 1e-15;
  double sum = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double q = std::clamp(static_cast<double>(p[i * classes + labels[i]]), kEps, 1 - kEps);
    sum -= std::log(q);
  }
  return ratio(sum, static_cast<double>(labels.size()));
}

std::optional<double> roc_auc_ovr(const std::vector<float>& p, const std::vector<int64_t>& labels, int64_t classes) {
  double sum = 0;
  int counted = 0;
  for (int64_t k = 0; k < classes; ++k) {
    std::vector<double> scores(labels.size());
    std::vector<bool> positive(labels.size());
    for (size_t i = 0; i < labels.size(); ++i) {
      scores[i] = p[i * classes + k];
      positive[i] = labels[i] == k;
    }
    if (const auto auc = roc_auc_binary(scores, positive)) {
      sum += *auc;
      ++counted;
    }
  }
  if (counted == 0) return std::nullopt;
  return sum / counted;
}

}  // namespace

int64_t argmax_row(const float* row, int64_t classes) {
  int64_t best = 0;
  for (int64_t c = 1; c < classes && !std::isnan(row[best]); ++c)
    if (row[c] > row[best] || std::isnan(row[c])) best = c;
  return best;
}

int64_t correct_predictions(const float* scores, const int64_t* labels, int64_t rows, int64_t classes) {
  int64_t correct = 0;
  for (int64_t r = 0; r < rows; ++r) correct += argmax_row(scores + r * classes, classes) == labels[r] ? 1 : 0;
  return correct;
}

std::optional<double> roc_auc_binary(const std::vector<double>& scores, const std::vector<bool>& positive) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double positive_rank_sum = 0;
  size_t positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double average_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;  // ranks i+1..j
    for (size_t t = i; t < j; ++t) {
      if (positive[order[t]]) {
        positive_rank_sum += average_rank;
        ++positives;
      }
    }
    i = j;
  }
  const size_t negatives = n - positives;
  if (positives == 0 || negatives == 0) return std::nullopt;
  const auto pos = static_cast<double>(positives);
  return (positive_rank_sum - pos * (pos + 1) / 2) / (pos * static_cast<double>(negatives));
}

ClassificationMetrics classification_metrics(const std::vector<float>& p, const std::vector<int64_t>& labels,
                                             int64_t classes) {
  if (classes < 1 || p.size() != labels.size() * static_cast<size_t>(classes))
    throw std::invalid_argument("probabilities must be [examples, classes]");
  ClassificationMetrics m;
  m.confusion = confusion_matrix(p, labels, classes);
  int64_t correct = 0;
  for (int64_t k = 0; k < classes; ++k) {
    m.per_class.push_back(class_metrics(m.confusion, k));
    correct += m.confusion[k][k];
    m.precision_macro += m.per_class.back().precision / static_cast<double>(classes);
    m.recall_macro += m.per_class.back().recall / static_cast<double>(classes);
    m.f1_macro += m.per_class.back().f1 / static_cast<double>(classes);
  }
  m.accuracy = ratio(static_cast<double>(correct), static_cast<double>(labels.size()));
  m.log_loss = log_loss(p, labels, classes);
  m.roc_auc = roc_auc_ovr(p, labels, classes);
  return m;
}

RegressionMetrics regression_metrics(const std::vector<float>& predictions, const std::vector<float>& targets) {
  if (predictions.size() != targets.size() || targets.empty())
    throw std::invalid_argument("predictions and targets must be non-empty and of one length");
  const auto n = static_cast<double>(targets.size());
  const double mean = std::accumulate(targets.begin(), targets.end(), 0.0) / n;
  double se = 0, ae = 0, total = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const double error = static_cast<double>(predictions[i]) - targets[i];
    se += error * error;
    ae += std::abs(error);
    total += (targets[i] - mean) * (targets[i] - mean);
  }
  RegressionMetrics m;
  m.mse = se / n;
  m.rmse = std::sqrt(m.mse);
  m.mae = ae / n;
  // Constant targets: 1 for a perfect fit, else 0 (scikit-learn's choice).
  m.r2 = total > 0 ? 1 - se / total : (se == 0 ? 1.0 : 0.0);
  return m;
}

std::map<std::string, double> scalar_metrics(const ClassificationMetrics& m) {
  std::map<std::string, double> out{{"accuracy", m.accuracy},
                                    {"precision_macro", m.precision_macro},
                                    {"recall_macro", m.recall_macro},
                                    {"f1_macro", m.f1_macro},
                                    {"log_loss", m.log_loss}};
  if (m.roc_auc) out["roc_auc"] = *m.roc_auc;
  return out;
}

std::map<std::string, double> scalar_metrics(const RegressionMetrics& m) {
  return {{"mse", m.mse}, {"rmse", m.rmse}, {"mae", m.mae}, {"r2", m.r2}};
}

bool lower_is_better(const std::string& metric) {
  return metric == "log_loss" || metric == "mse" || metric == "rmse" || metric == "mae";
}

std::vector<std::string> unmet_thresholds(const std::map<std::string, double>& metrics,
                                          const std::map<std::string, double>& thresholds) {
  std::vector<std::string> unmet;
  for (const auto& [name, bound] : thresholds) {
    const auto found = metrics.find(name);
    if (found == metrics.end()) throw std::invalid_argument("threshold on unknown metric '" + name + "'");
    const bool lower = lower_is_better(name);
    const bool ok = lower ? found->second <= bound : found->second >= bound;
    if (!ok)
      unmet.push_back(name + " " + std::to_string(found->second) + (lower ? " > " : " < ") + std::to_string(bound));
  }
  return unmet;
}

}  // namespace kiln::ml

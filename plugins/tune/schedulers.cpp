// The schedulers of scheduler.hpp: none, median stopping, ASHA, Hyperband.
#include "scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <vector>

namespace kiln::tune {
namespace {

class NoScheduler : public Scheduler {
 public:
  bool uses_history() const override { return false; }
};

class MedianScheduler : public Scheduler {
 public:
  explicit MedianScheduler(MedianStop rule) : rule_(rule) {}

  bool should_stop(const Trial& t, const Trials& trials) override {
    if (t.scores.empty()) return false;
    const int64_t step = t.scores.rbegin()->first;
    if (step < rule_.grace_steps) return false;
    std::vector<double> averages;
    for (const auto& [id, other] : trials) {
      if (id == t.id || other.state != TrialState::Succeeded || other.scores.empty()) continue;
      double sum = 0;
      size_t n = 0;
      for (const auto& [s, score] : other.scores) {
        if (s > step) break;
        sum += score;
        ++n;
      }
      if (n > 0 && other.scores.rbegin()->first >= step) averages.push_back(sum / static_cast<double>(n));
    }
    if (averages.empty() || averages.size() < rule_.min_trials) return false;
    std::sort(averages.begin(), averages.end());
    const size_t n = averages.size();
    const double median = n % 2 ? averages[n / 2] : (averages[n / 2 - 1] + averages[n / 2]) / 2;
    double best = t.scores.begin()->second;
    for (const auto& entry : t.scores) best = std::min(best, entry.second);
    return best > median;
  }

 private:
  MedianStop rule_;
};

// One successive-halving ladder: rungs at first * eta^k < max_resource.
struct Ladder {
  std::vector<int64_t> rungs;
};

// The score `t` recorded at a rung: its first report at or after the rung's step.
std::optional<double> rung_score(const Trial& t, int64_t rung) {
  const auto it = t.scores.lower_bound(rung);
  if (it == t.scores.end()) return std::nullopt;
  return it->second;
}

// Asynchronous successive halving (Li et al. 2020) in its stopping form, over
// one or more ladders (brackets). A trial reaching rung k is recorded there
// and continues only if it is in the top floor(n / eta) of the n scores
// recorded at the rung, itself included (the paper's top_k(rung, |rung| /
// eta), Optuna's SuccessiveHalvingPruner): fewer than max(1, floor(n / eta))
// of them rank ahead of it; otherwise it stops. Equal scores rank in the
// order they reached the rung, so a trial that only ties the ones before it
// stops: on a coarse metric (accuracy on a few hundred rows) ties are common,
// and Optuna's pruner, which keeps them, lets through every trial equal to
// the quota's last score (docs/tuning.md, "ASHA"). A trial cannot wait at a
// rung to be promoted later (the paper's promotion form), so while
// floor(n / eta) is 0 (fewer than eta at the rung) a trial better than every
// one before it continues (Optuna's quota too; Optuna lets a tie through).
// The rung's scores are those of the trials the search hands
// over (with a history lag: the trials that finished before this one was
// suggested, so a decision does not depend on timing) in the same bracket
// that reached the rung.
class Asha : public Scheduler {
 public:
  Asha(const Json& settings, bool hyperband) : hyperband_(hyperband) {
    const int64_t min_resource = setting_int(settings, "min_resource", 1, 1);
    if (!settings.contains("max_resource"))
      throw ConfigError("settings.max_resource: required for " + std::string(hyperband ? "hyperband" : "asha") +
                        " (the trial's full budget, e.g. its epochs)");
    const int64_t max_resource = setting_int(settings, "max_resource", 1, min_resource);
    eta_ = static_cast<double>(setting_int(settings, "reduction_factor", 3, 2));
    // Hyperband's brackets b = 0, 1, ...: first rung at min * eta^b, as long
    // as that is below max_resource (every bracket has a rung; the paper's
    // bracket without one, full runs only, is left out).
    int64_t s_max = 0;  // floor(log_eta(max / min)): the paper's s_max
    for (double r = static_cast<double>(min_resource) * eta_; r <= static_cast<double>(max_resource); r *= eta_)
      ++s_max;
    double first = static_cast<double>(min_resource);
    int64_t b = 0;
    do {
      Ladder ladder;
      for (double r = first; r < static_cast<double>(max_resource); r *= eta_)
        ladder.rungs.push_back(static_cast<int64_t>(r));
      ladders_.push_back(std::move(ladder));
      // The paper's share of configurations for bracket s = s_max - b:
      // ceil((s_max + 1) / (s + 1) * eta^s), so each bracket spends about the same budget.
      double eta_s = 1;
      for (int64_t i = 0; i < s_max - b; ++i) eta_s *= eta_;
      weights_.push_back(
          std::ceil(static_cast<double>(s_max + 1) / static_cast<double>(s_max - b + 1) * eta_s));
      first *= eta_;
      ++b;
    } while (hyperband_ && first < static_cast<double>(max_resource));
  }

  bool on_report(const Trial& t, int64_t step, const Trials& trials) override {
    const size_t bracket = bracket_of(t.id);
    const Ladder& ladder = ladders_[bracket];
    bool stop = false;
    for (size_t k = 0; k < ladder.rungs.size(); ++k) {
      if (step < ladder.rungs[k] || !reached_[t.id].insert(k).second) continue;
      const double score = t.scores.at(step);
      size_t seen = 1, ahead = 0;  // this trial and the others at the rung; those ranking ahead of it
      for (const auto& [id, other] : trials) {
        if (id == t.id || bracket_of(id) != bracket) continue;
        const std::optional<double> theirs = rung_score(other, ladder.rungs[k]);
        if (!theirs) continue;
        ++seen;
        if (*theirs <= score) ++ahead;  // it reached the rung first: a tie ranks it ahead
      }
      // floor(n / eta): eta is a whole number, the quotient exact.
      const auto quota = static_cast<size_t>(std::floor(static_cast<double>(seen) / eta_));
      if (ahead >= std::max<size_t>(1, quota)) stop = true;
    }
    return stop;
  }

  // The bracket of trial `id`: a smooth weighted round robin over the
  // brackets' weights (deterministic, interleaved: 27, 12, 6 for 1..27, eta 3).
  size_t bracket_of(int64_t id) {
    while (static_cast<int64_t>(assignment_.size()) <= id) {
      if (current_.empty()) current_.assign(weights_.size(), 0.0);
      double total = 0;
      size_t pick = 0;
      for (size_t i = 0; i < weights_.size(); ++i) {
        current_[i] += weights_[i];
        total += weights_[i];
        if (current_[i] > current_[pick]) pick = i;
      }
      current_[pick] -= total;
      assignment_.push_back(pick);
    }
    return assignment_[static_cast<size_t>(id)];
  }

 private:
  bool hyperband_;
  double eta_ = 3;
  std::vector<Ladder> ladders_;
  std::vector<double> weights_, current_;
  std::vector<size_t> assignment_;
  std::map<int64_t, std::set<size_t>> reached_;
};

}  // namespace

std::unique_ptr<Scheduler> make_median_scheduler(MedianStop rule) { return std::make_unique<MedianScheduler>(rule); }

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const Json& settings) {
  if (name == "none") return std::make_unique<NoScheduler>();
  if (name == "median") {
    MedianStop rule;
    rule.grace_steps = setting_int(settings, "grace_steps", rule.grace_steps, 0);
    rule.min_trials = static_cast<size_t>(setting_int(settings, "min_trials", 3, 1));
    return make_median_scheduler(rule);
  }
  if (name == "asha") return std::make_unique<Asha>(settings, false);
  if (name == "hyperband") return std::make_unique<Asha>(settings, true);
  throw ConfigError("settings.scheduler: expected none, median, asha, hyperband or pbt, got '" + name + "'");
}

}  // namespace kiln::tune

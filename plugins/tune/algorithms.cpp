// random, grid, tpe and asha (see tuner.hpp for the common driver).
#include "tuner.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace kiln::tune {
namespace {

int64_t setting_int(const Json& settings, const char* key, int64_t fallback, int64_t minimum) {
  if (!settings.contains(key)) return fallback;
  if (!settings[key].is_number_integer() || settings[key].get<int64_t>() < minimum)
    throw ConfigError(std::string("settings.") + key + ": an integer >= " + std::to_string(minimum) + " is required");
  return settings[key].get<int64_t>();
}

double setting_float(const Json& settings, const char* key, double fallback, double low, double high) {
  if (!settings.contains(key)) return fallback;
  if (!settings[key].is_number() || settings[key].get<double>() <= low || settings[key].get<double>() >= high)
    throw ConfigError(std::string("settings.") + key + ": a number in (" + std::to_string(low) + ", " +
                      std::to_string(high) + ") is required");
  return settings[key].get<double>();
}

// Uniform (log-uniform) independent draws.
class RandomSearch : public Tuner {
 public:
  using Tuner::Tuner;

 protected:
  std::optional<Json> next_parameters() override { return config_.space.sample(rng_); }
};

// Every point of the grid once, in SearchSpace::grid order. Continuous
// parameters get settings.points values (default 3) unless they set grid_points.
class GridSearch : public Tuner {
 public:
  explicit GridSearch(TunerConfig config) : Tuner(std::move(config)) {
    points_ = config_.space.grid(static_cast<int>(setting_int(config_.settings, "points", 3, 1)));
  }

 protected:
  std::optional<Json> next_parameters() override {
    if (next_ >= points_.size()) return std::nullopt;
    return points_[next_++];
  }

 private:
  std::vector<Json> points_;
  size_t next_ = 0;
};

// Tree-structured Parzen estimator (Bergstra et al. 2011), per parameter in
// the unit space of ParamDef::to_unit: after n_startup_trials random trials,
// finished trials are split into the best `gamma` fraction (l) and the rest
// (g); n_candidates draws from l are ranked by l(x)/g(x). Conditional
// parameters only model the trials in which they were active.
class Tpe : public Tuner {
 public:
  explicit Tpe(TunerConfig config) : Tuner(std::move(config)) {
    startup_ = setting_int(config_.settings, "n_startup_trials", 10, 1);
    candidates_ = setting_int(config_.settings, "n_candidates", 24, 1);
    gamma_ = setting_float(config_.settings, "gamma", 0.25, 0, 1);
  }

 protected:
  std::optional<Json> next_parameters() override {
    std::vector<const Trial*> done;
    for (const auto& entry : trials_)
      if (entry.second.finished() && entry.second.status != "failed" && entry.second.result())
        done.push_back(&entry.second);
    if (static_cast<int64_t>(done.size()) < startup_) return config_.space.sample(rng_);
    std::stable_sort(done.begin(), done.end(),
                     [](const Trial* a, const Trial* b) { return *a->result() < *b->result(); });
    const size_t n_good =
        std::max<size_t>(1, static_cast<size_t>(std::ceil(gamma_ * static_cast<double>(done.size()))));
    const std::vector<const Trial*> good(done.begin(), done.begin() + static_cast<std::ptrdiff_t>(n_good));
    const std::vector<const Trial*> bad(done.begin() + static_cast<std::ptrdiff_t>(n_good), done.end());

    Json best;
    double best_ratio = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < candidates_; ++c) {
      Json candidate = Json::object();
      double log_ratio = 0;
      for (const ParamDef& p : config_.space.params()) {
        if (!SearchSpace::active(p, candidate)) continue;
        const Parzen l = Parzen::fit(p, good), g = Parzen::fit(p, bad);
        const double u = l.sample(p, rng_);
        candidate[p.name] = p.from_unit(u);
        const double snapped = p.to_unit(candidate[p.name]);
        log_ratio += std::log(l.density(p, snapped)) - std::log(g.density(p, snapped));
      }
      if (log_ratio > best_ratio) {
        best_ratio = log_ratio;
        best = std::move(candidate);
      }
    }
    return best;
  }

 private:
  // A 1-D density on [0, 1]: a uniform prior (weight 1) plus one kernel per
  // observation. Ordered parameters use Gaussians whose width is the larger
  // gap to the neighbouring observations (hyperopt's adaptive Parzen
  // estimator), clipped to [1 / min(100, n + 1), 1]; categorical ones count.
  struct Parzen {
    std::vector<double> points, sigmas;

    static Parzen fit(const ParamDef& p, const std::vector<const Trial*>& trials) {
      Parzen out;
      for (const Trial* t : trials)
        if (t->parameters.contains(p.name)) out.points.push_back(p.to_unit(t->parameters[p.name]));
      std::sort(out.points.begin(), out.points.end());
      const size_t n = out.points.size();
      const double min_sigma = 1.0 / std::min(100.0, static_cast<double>(n) + 1);
      for (size_t i = 0; i < n; ++i) {
        const double left = i == 0 ? 0.0 : out.points[i - 1];
        const double right = i + 1 == n ? 1.0 : out.points[i + 1];
        const double x = out.points[i];
        out.sigmas.push_back(std::clamp(std::max(x - left, right - x), min_sigma, 1.0));
      }
      return out;
    }
    double sample(const ParamDef& p, Rng& rng) const {
      const size_t pick = rng.below(points.size() + 1);
      if (pick == points.size()) return rng.uniform();
      if (p.type == ParamType::Categorical) return points[pick];
      double u = points[pick] + sigmas[pick] * rng.normal();
      for (int i = 0; i < 8 && (u < 0 || u > 1); ++i) u = u < 0 ? -u : 2 - u;  // reflect into [0, 1]
      return std::clamp(u, 0.0, 1.0);
    }
    double density(const ParamDef& p, double u) const {
      if (p.type == ParamType::Categorical) {
        // P(choice) = (1/n + count) / (1 + k), per unit of width (times n).
        const double n = static_cast<double>(p.cardinality());
        double mass = 1.0 / n;
        for (const double x : points) mass += std::abs(x - u) < 1e-9 ? 1.0 : 0.0;
        return mass / (1.0 + static_cast<double>(points.size())) * n;
      }
      double sum = 1.0;  // the prior
      for (size_t i = 0; i < points.size(); ++i) {
        const double z = (u - points[i]) / sigmas[i];
        sum += std::exp(-0.5 * z * z) / (sigmas[i] * std::sqrt(2 * M_PI));
      }
      return sum / static_cast<double>(points.size() + 1);
    }
  };

  int64_t startup_ = 10, candidates_ = 24;
  double gamma_ = 0.25;
};

// Asynchronous successive halving (Li et al. 2020) in its stopping form:
// trials are drawn at random and run towards max_resource steps (epochs);
// rung k sits at step min_resource * eta^k. A trial reaching a rung continues
// only if its score is within the best 1/eta of all scores recorded at that
// rung so far (the (1/eta)-quantile, interpolated); otherwise it stops.
// Asynchronous successive halving in its stopping form, over one or more
// brackets. ASHA is one bracket, rungs at min_resource * eta^k. Hyperband
// (Li et al.) runs brackets s = 0..s_max (s_max: the largest s with
// min_resource * eta^s <= max_resource), bracket s with rungs from
// min_resource * eta^s, and deals trials to brackets round-robin (trial id
// mod brackets): bracket 0 cuts hardest, the last gives its trials a long
// look (or, at eta^s_max = max/min, none: plain full runs).
class Asha : public Tuner {
 public:
  Asha(TunerConfig config, bool hyperband) : Tuner(std::move(config)) {
    const int64_t min_resource = setting_int(config_.settings, "min_resource", 1, 1);
    if (!config_.settings.contains("max_resource"))
      throw ConfigError("settings.max_resource: required for " + std::string(hyperband ? "hyperband" : "asha") +
                        " (the trial's full budget, e.g. its epochs)");
    const int64_t max_resource = setting_int(config_.settings, "max_resource", 1, min_resource);
    eta_ = static_cast<double>(setting_int(config_.settings, "reduction_factor", 3, 2));
    double first = static_cast<double>(min_resource);
    do {
      Bracket bracket;
      for (double r = first; r < static_cast<double>(max_resource); r *= eta_)
        bracket.rungs.push_back(static_cast<int64_t>(r));
      bracket.recorded.resize(bracket.rungs.size());
      brackets_.push_back(std::move(bracket));
      first *= eta_;
    } while (hyperband && first <= static_cast<double>(max_resource));
  }

 protected:
  std::optional<Json> next_parameters() override { return config_.space.sample(rng_); }

  bool on_intermediate(Trial& t, int64_t step) override {
    Bracket& bracket = brackets_[static_cast<size_t>(t.id) % brackets_.size()];
    bool stop = false;
    for (size_t k = 0; k < bracket.rungs.size(); ++k) {
      if (step < bracket.rungs[k] || !reached_[t.id].insert(k).second) continue;
      const double score = t.scores.at(step);
      std::vector<double>& seen = bracket.recorded[k];
      seen.push_back(score);
      std::vector<double> sorted = seen;
      std::sort(sorted.begin(), sorted.end());
      const double pos = (1.0 / eta_) * static_cast<double>(sorted.size() - 1);
      const auto lo = static_cast<size_t>(std::floor(pos));
      const size_t hi = std::min(sorted.size() - 1, lo + 1);
      const double cutoff = sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
      if (score > cutoff) stop = true;
    }
    return stop;
  }

 private:
  struct Bracket {
    std::vector<int64_t> rungs;
    std::vector<std::vector<double>> recorded;  // per rung: scores of the trials that reached it
  };
  double eta_ = 3;
  std::vector<Bracket> brackets_;
  std::map<int64_t, std::set<size_t>> reached_;
};

}  // namespace

std::unique_ptr<Tuner> make_tuner(const std::string& algorithm, const Json& config) {
  TunerConfig parsed = TunerConfig::from_json(config);
  if (algorithm == "random") return std::make_unique<RandomSearch>(std::move(parsed));
  if (algorithm == "grid") return std::make_unique<GridSearch>(std::move(parsed));
  if (algorithm == "tpe") return std::make_unique<Tpe>(std::move(parsed));
  if (algorithm == "asha") return std::make_unique<Asha>(std::move(parsed), false);
  if (algorithm == "hyperband") return std::make_unique<Asha>(std::move(parsed), true);
  throw ConfigError("algorithm: expected random, grid, tpe, asha or hyperband, got '" + algorithm + "'");
}

}  // namespace kiln::tune

// Tree-structured Parzen estimator (Bergstra et al. 2011), independent or
// multivariate (Falkner et al. 2018, as Optuna's multivariate=True), on one
// objective or several (multi-objective TPE, split_by_front).
#include "pareto.hpp"
#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln::tune {
namespace {

// Per parameter, in the unit space of ParamDef::to_unit: a uniform prior
// (weight 1) plus one kernel per observation. Ordered parameters use
// Gaussians whose width is the larger gap to the neighbouring observations
// (hyperopt's adaptive Parzen estimator), clipped to [1 / min(100, n + 1), 1];
// categorical ones a kernel that puts weight on the observed choice.
struct Kernels {
  std::vector<double> points, sigmas;  // points in observation order

  static Kernels fit(const std::vector<double>& observed) {
    Kernels out;
    out.points = observed;
    std::vector<double> sorted = observed;
    std::sort(sorted.begin(), sorted.end());
    const size_t n = sorted.size();
    const double min_sigma = 1.0 / std::min(100.0, static_cast<double>(n) + 1);
    for (const double x : observed) {
      const size_t i = static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), x) - sorted.begin());
      const double left = i == 0 ? 0.0 : sorted[i - 1];
      const double right = i + 1 >= n ? 1.0 : sorted[i + 1];
      out.sigmas.push_back(std::clamp(std::max(x - left, right - x), min_sigma, 1.0));
    }
    return out;
  }
};

// Density at u of kernel i of parameter p (per unit width).
double kernel_density(const ParamDef& p, const Kernels& k, size_t i, double u) {
  if (p.type == ParamType::Categorical) {
    const double n = static_cast<double>(p.cardinality());
    const double same = 0.5 + 0.5 / n;  // between uniform (1/n) and certain (1)
    const double mass = std::abs(k.points[i] - u) < 1e-9 ? same : (1 - same) / std::max(1.0, n - 1);
    return mass * n;
  }
  const double z = (u - k.points[i]) / k.sigmas[i];
  return std::exp(-0.5 * z * z) / (k.sigmas[i] * std::sqrt(2 * M_PI));
}

double kernel_sample(const ParamDef& p, const Kernels& k, size_t i, Rng& rng) {
  if (p.type == ParamType::Categorical) {
    const double n = static_cast<double>(p.cardinality());
    const double same = 0.5 + 0.5 / n;
    if (rng.uniform() < same) return k.points[i];
    return rng.uniform();  // another choice (or, rarely, the same)
  }
  double u = k.points[i] + k.sigmas[i] * rng.normal();
  for (int j = 0; j < 8 && (u < 0 || u > 1); ++j) u = u < 0 ? -u : 2 - u;  // reflect into [0, 1]
  return std::clamp(u, 0.0, 1.0);
}

// One side of the split (l: the best trials, g: the rest) as per-parameter
// kernels over the trials' unit coordinates (NaN where a parameter was inactive).
struct Model {
  std::vector<std::vector<double>> rows;  // per trial: per parameter
  std::vector<Kernels> kernels;           // per parameter: over the trials where it was active
  std::vector<std::vector<size_t>> slot;  // per parameter, per trial: its kernel index or npos

  static Model fit(const SearchSpace& space, const std::vector<const Trial*>& trials) {
    Model m;
    const size_t d = space.params().size();
    for (const Trial* t : trials) m.rows.push_back(space.to_units(t->parameters, std::nan("")));
    m.kernels.resize(d);
    m.slot.assign(d, std::vector<size_t>(trials.size(), std::string::npos));
    for (size_t j = 0; j < d; ++j) {
      std::vector<double> observed;
      for (size_t i = 0; i < m.rows.size(); ++i)
        if (!std::isnan(m.rows[i][j])) {
          m.slot[j][i] = observed.size();
          observed.push_back(m.rows[i][j]);
        }
      m.kernels[j] = Kernels::fit(observed);
    }
    return m;
  }

  // Independent: the per-parameter mixture (prior + kernels) of parameter j at u.
  double marginal(const ParamDef& p, size_t j, double u) const {
    double sum = 1.0;  // the prior
    for (size_t i = 0; i < kernels[j].points.size(); ++i) sum += kernel_density(p, kernels[j], i, u);
    return sum / static_cast<double>(kernels[j].points.size() + 1);
  }

  // Multivariate: prior + sum over trials of the product of their kernels
  // over the parameters active both in the trial and in x (NaN = inactive).
  double joint(const SearchSpace& space, const std::vector<double>& x) const {
    double sum = 1.0;
    for (size_t i = 0; i < rows.size(); ++i) {
      double product = 1.0;
      for (size_t j = 0; j < x.size(); ++j)
        if (!std::isnan(x[j]) && slot[j][i] != std::string::npos)
          product *= kernel_density(space.params()[j], kernels[j], slot[j][i], x[j]);
      sum += product;
    }
    return sum / static_cast<double>(rows.size() + 1);
  }
};

// After n_startup_trials random trials, finished non-failed trials (early-
// stopped ones with their last value) are split into the best
// ceil(gamma * n) (l) and the rest (g); n_candidates draws from l are ranked
// by l(x)/g(x). Conditional parameters only model the trials in which they
// were active.
class TpeSampler : public Sampler {
 public:
  TpeSampler(const SearchSpace& space, const Json& settings) : space_(space) {
    startup_ = setting_int(settings, "n_startup_trials", 10, 1);
    candidates_ = setting_int(settings, "n_candidates", 24, 1);
    gamma_ = setting_float(settings, "gamma", 0.1, 0, 1);
    multivariate_ = setting_bool(settings, "multivariate", false);
  }

  bool multi_objective() const override { return true; }

  std::optional<Json> next(int64_t, const Trials& trials, Rng& rng) override {
    std::vector<const Trial*> done;
    bool several = false;  // scores per objective (a multi-objective search)
    for (const auto& entry : trials)
      if (entry.second.usable()) {
        done.push_back(&entry.second);
        several = several || !entry.second.objective_scores.empty();
      }
    if (several) drop_unranked(done);
    if (static_cast<int64_t>(done.size()) < startup_) return space_.sample(rng);
    const size_t n_good =
        std::max<size_t>(1, static_cast<size_t>(std::ceil(gamma_ * static_cast<double>(done.size()))));
    if (several) {
      const auto [good, rest] = split_by_front(done, n_good);
      return candidate(Model::fit(space_, good), Model::fit(space_, rest), rng);
    }
    std::stable_sort(done.begin(), done.end(),
                     [](const Trial* a, const Trial* b) { return *a->result() < *b->result(); });
    const Model l = Model::fit(space_, {done.begin(), done.begin() + static_cast<std::ptrdiff_t>(n_good)});
    const Model g = Model::fit(space_, {done.begin() + static_cast<std::ptrdiff_t>(n_good), done.end()});
    return candidate(l, g, rng);
  }

 private:
  Json independent_candidate(const Model& l, const Model& g, Rng& rng) const {
    Json best;
    double best_ratio = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < candidates_; ++c) {
      Json candidate = Json::object();
      double log_ratio = 0;
      for (size_t j = 0; j < space_.params().size(); ++j) {
        const ParamDef& p = space_.params()[j];
        if (!SearchSpace::active(p, candidate)) continue;
        const size_t pick = rng.below(l.kernels[j].points.size() + 1);
        const double u = pick == l.kernels[j].points.size() ? rng.uniform() : kernel_sample(p, l.kernels[j], pick, rng);
        candidate[p.name] = p.from_unit(u);
        const double snapped = p.to_unit(candidate[p.name]);
        log_ratio += std::log(l.marginal(p, j, snapped)) - std::log(g.marginal(p, j, snapped));
      }
      if (log_ratio > best_ratio) {
        best_ratio = log_ratio;
        best = std::move(candidate);
      }
    }
    return best;
  }

  Json joint_candidate(const Model& l, const Model& g, Rng& rng) const {
    Json best;
    double best_ratio = -std::numeric_limits<double>::infinity();
    const size_t d = space_.params().size();
    for (int64_t c = 0; c < candidates_; ++c) {
      // One component of l (or the prior) for every parameter together.
      const size_t pick = rng.below(l.rows.size() + 1);
      std::vector<double> unit(d);
      for (size_t j = 0; j < d; ++j) {
        const bool has = pick < l.rows.size() && l.slot[j][pick] != std::string::npos;
        unit[j] = has ? kernel_sample(space_.params()[j], l.kernels[j], l.slot[j][pick], rng) : rng.uniform();
      }
      Json candidate = space_.from_units(unit);
      const std::vector<double> x = space_.to_units(candidate, std::nan(""));
      const double log_ratio = std::log(l.joint(space_, x)) - std::log(g.joint(space_, x));
      if (log_ratio > best_ratio) {
        best_ratio = log_ratio;
        best = std::move(candidate);
      }
    }
    return best;
  }

  Json candidate(const Model& l, const Model& g, Rng& rng) const {
    return multivariate_ ? joint_candidate(l, g, rng) : independent_candidate(l, g, rng);
  }

  // Several objectives: only trials with a finite score for every one can
  // be ranked (a failed objective leaves NaN).
  static void drop_unranked(std::vector<const Trial*>& done) {
    const size_t objectives = done.empty() ? 0 : done.front()->objective_scores.size();
    done.erase(std::remove_if(done.begin(), done.end(),
                              [&](const Trial* t) {
                                return t->objective_scores.size() != objectives || objectives == 0 ||
                                       !std::all_of(t->objective_scores.begin(), t->objective_scores.end(),
                                                    [](double v) { return std::isfinite(v); });
                              }),
               done.end());
  }

  // Multi-objective TPE (Ozaki et al. 2020, as Optuna's TPESampler with
  // several objectives): the "good" trials are the best n_good by
  // non-dominated front, the last front that does not fit cut by crowding
  // distance (Optuna cuts it by hypervolume contribution); both sides keep
  // the trials' order.
  static std::pair<std::vector<const Trial*>, std::vector<const Trial*>> split_by_front(
      const std::vector<const Trial*>& done, size_t n_good) {
    std::vector<std::vector<double>> scores;
    for (const Trial* t : done) scores.push_back(t->objective_scores);
    std::vector<bool> is_good(done.size(), false);
    for (const size_t i : select_by_front(scores, n_good)) is_good[i] = true;
    std::vector<const Trial*> good, rest;
    for (size_t i = 0; i < done.size(); ++i) (is_good[i] ? good : rest).push_back(done[i]);
    return {good, rest};
  }

  SearchSpace space_;
  int64_t startup_ = 10, candidates_ = 24;
  double gamma_ = 0.1;
  bool multivariate_ = false;
};

}  // namespace

std::unique_ptr<Sampler> make_tpe_sampler(const SearchSpace& space, const Json& settings) {
  return std::make_unique<TpeSampler>(space, settings);
}

}  // namespace kiln::tune

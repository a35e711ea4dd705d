// Gaussian-process Bayesian optimisation with expected improvement (as
// Katib's "bayesianoptimization" and Optuna's GPSampler): after
// n_startup_trials random trials, a GP with a Matern-5/2 kernel is fitted to
// the finished trials' scores in the unit cube, its length scale and noise
// chosen by marginal likelihood over a small grid, and the candidate with
// the largest expected improvement is proposed.
#include "linalg.hpp"
#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln::tune {
namespace {

using linalg::Matrix;
using linalg::Vector;

double matern52(const Vector& a, const Vector& b, double length) {
  double d2 = 0;
  for (size_t i = 0; i < a.size(); ++i) d2 += (a[i] - b[i]) * (a[i] - b[i]);
  const double r = std::sqrt(5 * d2) / length;
  return (1 + r + r * r / 3) * std::exp(-r);
}

// A fitted GP on standardised scores.
struct Gp {
  std::vector<Vector> x;
  Matrix l;        // Cholesky factor of K + noise I
  Vector alpha;    // (K + noise I)^-1 y
  double length = 0.2;

  // Fits for one (length, noise); nullopt when the matrix is not positive definite.
  static std::optional<Gp> fit(const std::vector<Vector>& x, const Vector& y, double length, double noise,
                               double* log_likelihood) {
    const size_t n = x.size();
    Matrix k(n, Vector(n));
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) k[i][j] = matern52(x[i], x[j], length) + (i == j ? noise : 0);
    std::optional<Matrix> l = linalg::cholesky(k);
    if (!l) return std::nullopt;
    Gp gp;
    gp.x = x;
    gp.length = length;
    gp.alpha = linalg::solve_upper_transposed(*l, linalg::solve_lower(*l, y));
    double fit_term = 0, log_det = 0;
    for (size_t i = 0; i < n; ++i) {
      fit_term += y[i] * gp.alpha[i];
      log_det += std::log((*l)[i][i]);
    }
    *log_likelihood = -0.5 * fit_term - log_det;
    gp.l = std::move(*l);
    return gp;
  }

  // Posterior mean and standard deviation at u.
  std::pair<double, double> predict(const Vector& u) const {
    Vector k(x.size());
    for (size_t i = 0; i < x.size(); ++i) k[i] = matern52(u, x[i], length);
    double mean = 0;
    for (size_t i = 0; i < x.size(); ++i) mean += k[i] * alpha[i];
    const Vector v = linalg::solve_lower(l, k);
    double var = 1.0;
    for (const double e : v) var -= e * e;
    return {mean, std::sqrt(std::max(var, 1e-12))};
  }
};

double expected_improvement(double mean, double sd, double best) {
  const double improvement = best - mean;
  const double z = improvement / sd;
  const double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0));
  const double pdf = std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
  return improvement * cdf + sd * pdf;
}

class GpSampler : public Sampler {
 public:
  GpSampler(const SearchSpace& space, const Json& settings) : space_(space) {
    startup_ = setting_int(settings, "n_startup_trials", 10, 1);
    candidates_ = setting_int(settings, "n_candidates", 1000, 1);
  }

  std::optional<Json> next(int64_t, const Trials& trials, Rng& rng) override {
    std::vector<Vector> x;
    Vector y;
    for (const auto& entry : trials)
      if (entry.second.usable()) {
        x.push_back(space_.to_units(entry.second.parameters, 0.5));
        y.push_back(*entry.second.result());
      }
    if (static_cast<int64_t>(x.size()) < startup_) return space_.sample(rng);
    // Standardise the scores.
    double mean = 0, sq = 0;
    for (const double v : y) mean += v;
    mean /= static_cast<double>(y.size());
    for (const double v : y) sq += (v - mean) * (v - mean);
    const double sd = std::sqrt(sq / static_cast<double>(y.size())) + 1e-12;
    for (double& v : y) v = (v - mean) / sd;
    const double dims = static_cast<double>(space_.params().size());
    std::optional<Gp> gp;
    double best_likelihood = -std::numeric_limits<double>::infinity();
    for (const double scale : {0.05, 0.1, 0.2, 0.4, 0.8, 1.6})
      for (const double noise : {1e-4, 1e-2, 1e-1}) {
        double likelihood = 0;
        std::optional<Gp> fitted = Gp::fit(x, y, scale * std::sqrt(dims), noise, &likelihood);
        if (fitted && likelihood > best_likelihood) {
          best_likelihood = likelihood;
          gp = std::move(fitted);
        }
      }
    if (!gp) return space_.sample(rng);
    const double best_y = *std::min_element(y.begin(), y.end());
    const Vector& incumbent = x[static_cast<size_t>(std::min_element(y.begin(), y.end()) - y.begin())];
    Json best;
    double best_ei = -1;
    for (int64_t c = 0; c < candidates_; ++c) {
      // Three in four uniform, one in four near the incumbent (local refinement).
      Vector u(space_.params().size());
      const bool local = c % 4 == 3;
      for (size_t j = 0; j < u.size(); ++j)
        u[j] = local ? std::clamp(incumbent[j] + 0.05 * rng.normal(), 0.0, 1.0) : rng.uniform();
      Json candidate = space_.from_units(u);
      const auto [mu, sigma] = gp->predict(space_.to_units(candidate, 0.5));
      const double ei = expected_improvement(mu, sigma, best_y);
      if (ei > best_ei) {
        best_ei = ei;
        best = std::move(candidate);
      }
    }
    return best;
  }

 private:
  SearchSpace space_;
  int64_t startup_ = 10, candidates_ = 1000;
};

}  // namespace

std::unique_ptr<Sampler> make_gp_sampler(const SearchSpace& space, const Json& settings) {
  return std::make_unique<GpSampler>(space, settings);
}

}  // namespace kiln::tune

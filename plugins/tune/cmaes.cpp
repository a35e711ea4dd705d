// CMA-ES (Hansen's (mu/mu_w, lambda) evolution strategy with rank-one and
// rank-mu covariance updates and cumulative step-size adaptation) in the
// unit cube of the space's parameters, asynchronous: trials are drawn from
// the current generation's distribution as they are asked for; once
// `population` of them (lambda) finished with a result, the best mu update
// the mean, paths, covariance and step size, and a new generation starts.
// Trials of older generations that finish later are not used. Discrete and
// categorical parameters are searched through their unit coordinate.
#include "linalg.hpp"
#include "sampler.hpp"

#include <algorithm>
#include <cmath>

namespace kiln::tune {
namespace {

using linalg::Matrix;
using linalg::Vector;

class CmaEsSampler : public Sampler {
 public:
  CmaEsSampler(const SearchSpace& space, const Json& settings) : space_(space), n_(space.params().size()) {
    const double n = static_cast<double>(n_);
    lambda_ = static_cast<size_t>(
        setting_int(settings, "population", 4 + static_cast<int64_t>(std::floor(3 * std::log(n))), 2));
    sigma_ = setting_float(settings, "sigma0", 0.25, 0, 1);
    mu_ = lambda_ / 2;
    for (size_t i = 0; i < mu_; ++i) weights_.push_back(std::log(static_cast<double>(mu_) + 0.5) - std::log(static_cast<double>(i) + 1.0));
    double sum = 0, sum_sq = 0;
    for (const double w : weights_) sum += w;
    for (double& w : weights_) w /= sum;
    for (const double w : weights_) sum_sq += w * w;
    mueff_ = 1 / sum_sq;
    cc_ = (4 + mueff_ / n) / (n + 4 + 2 * mueff_ / n);
    cs_ = (mueff_ + 2) / (n + mueff_ + 5);
    c1_ = 2 / ((n + 1.3) * (n + 1.3) + mueff_);
    cmu_ = std::min(1 - c1_, 2 * (mueff_ - 2 + 1 / mueff_) / ((n + 2) * (n + 2) + mueff_));
    damps_ = 1 + 2 * std::max(0.0, std::sqrt((mueff_ - 1) / (n + 1)) - 1) + cs_;
    chi_n_ = std::sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
    mean_.assign(n_, 0.5);
    pc_.assign(n_, 0.0);
    ps_.assign(n_, 0.0);
    c_.assign(n_, Vector(n_, 0.0));
    b_.assign(n_, Vector(n_, 0.0));
    for (size_t i = 0; i < n_; ++i) c_[i][i] = b_[i][i] = 1.0;
    d_.assign(n_, 1.0);
  }

  std::optional<Json> next(int64_t id, const Trials& trials, Rng& rng) override {
    maybe_update(trials);
    Vector z(n_), x(n_);
    for (double& e : z) e = rng.normal();
    for (size_t i = 0; i < n_; ++i) {
      double bdz = 0;
      for (size_t j = 0; j < n_; ++j) bdz += b_[i][j] * d_[j] * z[j];
      x[i] = mean_[i] + sigma_ * bdz;
      for (int k = 0; k < 8 && (x[i] < 0 || x[i] > 1); ++k) x[i] = x[i] < 0 ? -x[i] : 2 - x[i];  // reflect
      x[i] = std::clamp(x[i], 0.0, 1.0);
    }
    members_[id] = {generation_, x};
    return space_.from_units(x);
  }

  double sigma() const { return sigma_; }

 private:
  struct Member {
    int64_t generation;
    Vector x;
  };

  void maybe_update(const Trials& trials) {
    std::vector<std::pair<double, const Vector*>> done;
    for (const auto& [id, member] : members_) {
      if (member.generation != generation_) continue;
      const auto it = trials.find(id);
      if (it != trials.end() && it->second.usable()) done.emplace_back(*it->second.result(), &member.x);
    }
    if (done.size() < lambda_) return;
    std::stable_sort(done.begin(), done.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    const double n = static_cast<double>(n_);
    std::vector<Vector> y(mu_, Vector(n_));
    Vector yw(n_, 0.0);
    for (size_t k = 0; k < mu_; ++k)
      for (size_t i = 0; i < n_; ++i) {
        y[k][i] = ((*done[k].second)[i] - mean_[i]) / sigma_;
        yw[i] += weights_[k] * y[k][i];
      }
    for (size_t i = 0; i < n_; ++i) mean_[i] += sigma_ * yw[i];
    // C^-1/2 yw = B D^-1 B^T yw
    Vector bt(n_, 0.0), inv_sqrt(n_, 0.0);
    for (size_t j = 0; j < n_; ++j)
      for (size_t i = 0; i < n_; ++i) bt[j] += b_[i][j] * yw[i];
    for (size_t i = 0; i < n_; ++i)
      for (size_t j = 0; j < n_; ++j) inv_sqrt[i] += b_[i][j] * bt[j] / d_[j];
    double ps_norm = 0;
    for (size_t i = 0; i < n_; ++i) {
      ps_[i] = (1 - cs_) * ps_[i] + std::sqrt(cs_ * (2 - cs_) * mueff_) * inv_sqrt[i];
      ps_norm += ps_[i] * ps_[i];
    }
    ps_norm = std::sqrt(ps_norm);
    ++generation_;
    const double hsig_denominator = std::sqrt(1 - std::pow(1 - cs_, 2.0 * static_cast<double>(generation_)));
    const bool hsig = ps_norm / hsig_denominator / chi_n_ < 1.4 + 2 / (n + 1);
    for (size_t i = 0; i < n_; ++i)
      pc_[i] = (1 - cc_) * pc_[i] + (hsig ? std::sqrt(cc_ * (2 - cc_) * mueff_) * yw[i] : 0.0);
    for (size_t i = 0; i < n_; ++i)
      for (size_t j = 0; j < n_; ++j) {
        double rank_mu = 0;
        for (size_t k = 0; k < mu_; ++k) rank_mu += weights_[k] * y[k][i] * y[k][j];
        c_[i][j] = (1 - c1_ - cmu_) * c_[i][j] +
                   c1_ * (pc_[i] * pc_[j] + (hsig ? 0.0 : cc_ * (2 - cc_) * c_[i][j])) + cmu_ * rank_mu;
      }
    sigma_ = std::clamp(sigma_ * std::exp((cs_ / damps_) * (ps_norm / chi_n_ - 1)), 1e-8, 1.0);
    const linalg::Eigen eigen = linalg::symmetric_eigen(c_);
    b_ = eigen.vectors;
    for (size_t i = 0; i < n_; ++i) d_[i] = std::sqrt(std::max(eigen.values[i], 1e-20));
  }

  SearchSpace space_;
  size_t n_, lambda_, mu_;
  Vector weights_;
  double mueff_, cc_, cs_, c1_, cmu_, damps_, chi_n_, sigma_;
  Vector mean_, pc_, ps_, d_;
  Matrix c_, b_;
  int64_t generation_ = 0;
  std::map<int64_t, Member> members_;
};

}  // namespace

std::unique_ptr<Sampler> make_cmaes_sampler(const SearchSpace& space, const Json& settings) {
  return std::make_unique<CmaEsSampler>(space, settings);
}

}  // namespace kiln::tune

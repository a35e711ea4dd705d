// NSGA-II (Deb, Pratap, Agarwal & Meyarivan 2002), after Optuna's
// NSGAIISampler: a genetic algorithm over generations of population_size
// trials that learns from every objective of a multi-objective search
// (Trial::objective_scores), or from the one score of a single-objective one.
#include "pareto.hpp"
#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kiln::tune {
namespace {

// A finished trial as a parent candidate: its point in the unit space of
// ParamDef::to_unit (NaN where a parameter was inactive), its scores (lower
// is better), its non-dominated front (0: the first) and crowding distance.
struct Individual {
  std::vector<double> unit;
  std::vector<double> scores;
  size_t rank = 0;
  double crowding = 0;
};

// The crowded-comparison operator: a lower front, else a larger crowding distance.
bool nsga_crowded_better(const Individual& a, const Individual& b) {
  if (a.rank != b.rank) return a.rank < b.rank;
  return a.crowding > b.crowding;
}

// settings.<key> as a probability in [0, 1].
double setting_probability(const Json& settings, const char* key, double fallback) {
  if (!settings.contains(key)) return fallback;
  const Json& v = settings[key];
  if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1)
    throw ConfigError(std::string("settings.") + key + ": a number in [0, 1] is required");
  return v.get<double>();
}

// Trial id / population_size is a trial's generation. Generation 0 is drawn
// at random; trial k of generation g >= 1 learns from the finished trials
// of generations 0 ... g-1 that its history holds (with a history_lag,
// trials 0 ... k - lag: so it is the same at any parallelism): the best
// population_size of them by non-dominated front, the last front cut by
// crowding distance (elitist selection over everything seen), are the
// parents. Two binary tournaments (crowded comparison) pick two of them;
// with crossover_prob they cross (sbx, the paper's and the default:
// simulated binary crossover on ordered parameters, uniform on categorical
// ones; uniform, Optuna's default: each parameter from either parent,
// swapping_prob the second's), else the child copies
// the first; each parameter is then redrawn at random with mutation_prob
// (default 1 / number of parameters), and so is one the child's parents
// did not have (conditional parameters).
class Nsga2Sampler : public Sampler {
 public:
  Nsga2Sampler(const SearchSpace& space, const Json& settings) : space_(space) {
    population_ = setting_int(settings, "population_size", 50, 2);
    if (settings.contains("crossover")) {
      const Json& c = settings["crossover"];
      if (!c.is_string() || (c != "uniform" && c != "sbx"))
        throw ConfigError("settings.crossover: expected uniform or sbx, got " + c.dump());
      sbx_ = c == "sbx";
    }
    crossover_prob_ = setting_probability(settings, "crossover_prob", 0.9);
    swapping_prob_ = setting_probability(settings, "swapping_prob", 0.5);
    mutation_prob_ =
        setting_probability(settings, "mutation_prob", 1.0 / static_cast<double>(std::max<size_t>(1, space.params().size())));
    eta_ = setting_float(settings, "sbx_eta", 20.0, 0, std::numeric_limits<double>::infinity());
  }

  bool multi_objective() const override { return true; }

  std::optional<Json> next(int64_t id, const Trials& trials, Rng& rng) override {
    const int64_t generation = id / population_;
    std::vector<Individual> parents = generation == 0 ? std::vector<Individual>{} : select_parents(trials, generation);
    if (parents.size() < 2) return space_.sample(rng);
    const Individual& first = tournament(parents, rng);
    const Individual& second = tournament(parents, rng);
    std::vector<double> child = first.unit;
    if (rng.uniform() < crossover_prob_) child = crossover(first.unit, second.unit, rng);
    for (double& u : child)
      if (rng.uniform() < mutation_prob_ || std::isnan(u)) u = rng.uniform();
    return space_.from_units(child);
  }

 private:
  // The parents of `generation`: see the class comment.
  std::vector<Individual> select_parents(const Trials& trials, int64_t generation) const {
    const auto end = trials.lower_bound(generation * population_);
    std::vector<const Trial*> usable;
    bool several = false;  // scores per objective (a multi-objective search)
    for (auto it = trials.begin(); it != end; ++it)
      if (it->second.usable()) {
        usable.push_back(&it->second);
        several = several || !it->second.objective_scores.empty();
      }
    std::vector<Individual> pool;
    for (const Trial* t : usable) {
      Individual individual;
      individual.scores = several ? t->objective_scores : std::vector<double>{*t->result()};
      if (individual.scores.empty() ||
          !std::all_of(individual.scores.begin(), individual.scores.end(), [](double s) { return std::isfinite(s); }))
        continue;  // no value for some objective: it cannot be ranked
      individual.unit = space_.to_units(t->parameters, std::nan(""));
      pool.push_back(std::move(individual));
    }
    const size_t objectives = pool.empty() ? 0 : pool.front().scores.size();
    pool.erase(std::remove_if(pool.begin(), pool.end(),
                              [&](const Individual& i) { return i.scores.size() != objectives; }),
               pool.end());
    std::vector<std::vector<double>> scores;
    for (const Individual& i : pool) scores.push_back(i.scores);
    FrontRanking ranking;
    std::vector<Individual> parents;
    for (const size_t i : select_by_front(scores, static_cast<size_t>(population_), &ranking)) {
      pool[i].rank = ranking.rank[i];
      pool[i].crowding = ranking.crowding[i];
      parents.push_back(pool[i]);
    }
    return parents;
  }

  static const Individual& tournament(const std::vector<Individual>& parents, Rng& rng) {
    const Individual& a = parents[rng.below(parents.size())];
    const Individual& b = parents[rng.below(parents.size())];
    return nsga_crowded_better(b, a) ? b : a;
  }

  std::vector<double> crossover(const std::vector<double>& a, const std::vector<double>& b, Rng& rng) const {
    std::vector<double> child(a.size());
    for (size_t j = 0; j < a.size(); ++j) {
      const bool ordered = space_.params()[j].type != ParamType::Categorical;
      if (sbx_ && ordered && !std::isnan(a[j]) && !std::isnan(b[j]))
        child[j] = sbx(a[j], b[j], rng);
      else
        child[j] = rng.uniform() < swapping_prob_ ? b[j] : a[j];
    }
    return child;
  }

  // Simulated binary crossover bounded to [0, 1] (Deb & Agrawal 1995, as in
  // the NSGA-II reference code): one of the two children, at random.
  double sbx(double a, double b, Rng& rng) const {
    if (std::abs(a - b) < 1e-14) return a;
    const double y1 = std::min(a, b), y2 = std::max(a, b);
    const double r = rng.uniform();
    const auto spread = [&](double beta) {
      const double alpha = 2.0 - std::pow(beta, -(eta_ + 1.0));
      return r <= 1.0 / alpha ? std::pow(r * alpha, 1.0 / (eta_ + 1.0))
                              : std::pow(1.0 / (2.0 - r * alpha), 1.0 / (eta_ + 1.0));
    };
    const double c1 = 0.5 * (y1 + y2 - spread(1.0 + 2.0 * y1 / (y2 - y1)) * (y2 - y1));
    const double c2 = 0.5 * (y1 + y2 + spread(1.0 + 2.0 * (1.0 - y2) / (y2 - y1)) * (y2 - y1));
    return std::clamp(rng.uniform() < 0.5 ? c1 : c2, 0.0, 1.0);
  }

  SearchSpace space_;
  int64_t population_ = 50;
  bool sbx_ = true;
  double crossover_prob_ = 0.9, swapping_prob_ = 0.5, mutation_prob_ = 0.5, eta_ = 20;
};

}  // namespace

std::unique_ptr<Sampler> make_nsga2_sampler(const SearchSpace& space, const Json& settings) {
  return std::make_unique<Nsga2Sampler>(space, settings);
}

}  // namespace kiln::tune

#include "pbt.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kiln::tune {
namespace {

Json clip_number(const ParamDef& p, double v) {
  v = std::clamp(v, p.low, p.high);
  if (p.type != ParamType::Int) return v;
  const double steps = std::round((v - p.low) / static_cast<double>(p.step));
  int64_t out = static_cast<int64_t>(p.low) + static_cast<int64_t>(steps) * p.step;
  while (static_cast<double>(out) > p.high) out -= p.step;
  return out;
}

Json fresh(const ParamDef& p, Rng& rng) {
  return p.from_unit(rng.uniform());
}

// The sampler: round 0 from `initial_`, later rounds from pbt_round once
// the previous round is complete.
class PbtSampler : public Sampler {
 public:
  PbtSampler(const SearchSpace& space, PbtSettings settings, std::unique_ptr<Sampler> initial, int64_t history_lag)
      : space_(space), settings_(std::move(settings)), initial_(std::move(initial)), history_lag_(history_lag) {}

  // PBT keeps its own determinism, so the Search hands it every trial: a
  // round waits for the whole previous round (which the Search's lag would
  // hide from it), and round 0's sampler, when it learns from results, gets
  // the Search's rule here: trials 0 ... id - history_lag, all finished.
  bool uses_history() const override { return false; }

  std::optional<Json> next(int64_t id, const Trials& trials, Rng& rng) override {
    const int64_t n = settings_.population;
    const int64_t round = id / n, member = id % n;
    PbtStep step;
    if (round == 0) {
      std::optional<Json> drawn;
      if (initial_->uses_history() && history_lag_ > 0) {
        const auto end = trials.upper_bound(id - history_lag_);
        for (auto it = trials.begin(); it != end; ++it)
          if (!it->second.finished()) return std::nullopt;  // asked again when a trial finishes
        drawn = initial_->next(id, Trials(trials.begin(), end), rng);
      } else {
        drawn = initial_->next(id, trials, rng);
      }
      if (!drawn) return std::nullopt;
      step.parameters = std::move(*drawn);
    } else {
      if (!decided_.count(round)) {
        std::vector<const Trial*> previous;
        for (int64_t m = 0; m < n; ++m) {
          const auto t = trials.find((round - 1) * n + m);
          if (t == trials.end() || !t->second.finished()) return std::nullopt;  // wait for the whole round
          previous.push_back(&t->second);
        }
        decided_[round] = pbt_round(space_, settings_, round, previous);
      }
      step = decided_[round][static_cast<size_t>(member)];
    }
    Json out = step.parameters;
    out[settings_.budget] = (round + 1) * settings_.interval;
    out["kiln.pbt"] = {{"member", member},
                       {"round", round},
                       {"from", step.from < 0 ? Json(nullptr) : Json(step.from)},
                       {"exploited", step.exploited}};
    return out;
  }

 private:
  SearchSpace space_;
  PbtSettings settings_;
  std::unique_ptr<Sampler> initial_;
  int64_t history_lag_;
  std::map<int64_t, std::vector<PbtStep>> decided_;
};

}  // namespace

PbtSettings PbtSettings::from_json(const Json& settings, uint64_t seed) {
  PbtSettings s;
  s.population = setting_int(settings, "population", s.population, 2);
  s.interval = setting_int(settings, "interval", s.interval, 1);
  if (settings.contains("budget_parameter")) {
    if (!settings["budget_parameter"].is_string() || settings["budget_parameter"].get<std::string>().empty())
      throw ConfigError("settings.budget_parameter: a parameter name is required");
    s.budget = settings["budget_parameter"].get<std::string>();
  }
  s.quantile = setting_float(settings, "quantile", s.quantile, 0.0, 0.5 + 1e-12);
  if (settings.contains("resample_probability")) {
    const Json& p = settings["resample_probability"];
    if (!p.is_number() || p.get<double>() < 0 || p.get<double>() > 1)
      throw ConfigError("settings.resample_probability: a number in [0, 1] is required");
    s.resample_probability = p.get<double>();
  }
  s.seed = seed;
  return s;
}

Json pbt_perturb(const SearchSpace& space, const Json& parameters, double resample_probability, Rng& rng) {
  Json out = Json::object();
  for (const ParamDef& p : space.params()) {
    if (!SearchSpace::active(p, out)) continue;
    const auto given = parameters.find(p.name);
    if (given == parameters.end()) {  // a conditional parameter that just became active
      out[p.name] = fresh(p, rng);
      continue;
    }
    if (p.type == ParamType::Categorical) {
      out[p.name] = rng.uniform() < resample_probability ? fresh(p, rng) : *given;
      continue;
    }
    const double factor = rng.uniform() < 0.5 ? 0.8 : 1.2;
    out[p.name] = clip_number(p, given->get<double>() * factor);
  }
  return out;
}

std::vector<PbtStep> pbt_round(const SearchSpace& space, const PbtSettings& settings, int64_t round,
                               const std::vector<const Trial*>& previous) {
  const size_t n = previous.size();
  std::vector<size_t> order(n);
  for (size_t m = 0; m < n; ++m) order[m] = m;
  const auto score = [&](size_t m) {
    const Trial& t = *previous[m];
    const auto r = t.state == TrialState::Failed ? std::nullopt : t.result();
    return r ? *r : std::numeric_limits<double>::infinity();
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score(a) < score(b); });
  const size_t k = std::max<size_t>(1, static_cast<size_t>(std::floor(settings.quantile * static_cast<double>(n))));
  // Each round draws from its own generator: the same seed and results give
  // the same decisions, whenever and in whatever order they are asked for.
  Rng rng(settings.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(round + 1)));
  std::vector<PbtStep> steps(n);
  for (size_t m = 0; m < n; ++m) {
    steps[m].from = previous[m]->id;
    steps[m].parameters = previous[m]->parameters;
    steps[m].parameters.erase("kiln.pbt");
    steps[m].parameters.erase(settings.budget);
  }
  for (size_t i = n - k; i < n; ++i) {  // the bottom k, worst last
    const size_t loser = order[i];
    size_t donor = order[rng.below(k)];
    if (!std::isfinite(score(donor)) || donor == loser) continue;  // nobody better to copy
    steps[loser].from = previous[donor]->id;
    steps[loser].exploited = true;
    steps[loser].parameters = pbt_perturb(space, steps[donor].parameters, settings.resample_probability, rng);
  }
  return steps;
}

std::unique_ptr<Sampler> make_pbt_sampler(const SearchSpace& space, const Json& settings, uint64_t seed,
                                          std::unique_ptr<Sampler> initial, int64_t history_lag) {
  return std::make_unique<PbtSampler>(space, PbtSettings::from_json(settings, seed), std::move(initial), history_lag);
}

}  // namespace kiln::tune

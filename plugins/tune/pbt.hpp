// Population-based training (Jaderberg et al. 2017) as a search: a
// population of `population` members trains in rounds of `interval` budget
// units (epochs); member m's round r is trial r * population + m, which
// trains to (r + 1) * interval and resumes from a checkpoint. When every
// member has finished round r - 1, the bottom `quantile` of them exploit (start
// from a top-quantile member's checkpoint) and explore (that member's
// parameters perturbed); the others continue from their own checkpoint.
// The decision reads only round r - 1's results and an Rng seeded from
// (seed, r), so it does not depend on timing or on the order of calls.
//
// What the engine needs is in each suggestion's "kiln.pbt" entry (an engine
// directive, not a component parameter): {"member", "round", "from" (the
// trial whose checkpoint this one starts from, null in round 0),
// "exploited" (true when "from" is another member's)}.
#pragma once

#include "sampler.hpp"

#include <map>
#include <memory>
#include <vector>

namespace kiln::tune {

struct PbtSettings {
  int64_t population = 4;
  int64_t interval = 1;                // budget units per round
  std::string budget = "epochs";       // the component parameter that carries the budget
  double quantile = 0.25;              // bottom / top fraction (at least one member each)
  double resample_probability = 0.25;  // explore: a categorical parameter is redrawn
  uint64_t seed = 0;

  // settings.population, interval, budget_parameter, quantile, resample_probability.
  static PbtSettings from_json(const Json& settings, uint64_t seed);
};

// The decision for one member in one round.
struct PbtStep {
  int64_t from = -1;  // trial whose checkpoint it starts from (-1: none, round 0)
  bool exploited = false;
  Json parameters;  // the search space's parameters only
};

// Explore: `parameters` perturbed within `space` (continuous and integer
// values x0.8 or x1.2, clipped to the bounds, integers snapped to their step;
// categorical values redrawn with probability p; conditional parameters that
// become active are drawn, inactive ones dropped).
Json pbt_perturb(const SearchSpace& space, const Json& parameters, double resample_probability, Rng& rng);

// Exploit and explore for round `round` >= 1 from round - 1's trials (one per
// member, by member; a trial without a result ranks last, ties by member).
std::vector<PbtStep> pbt_round(const SearchSpace& space, const PbtSettings& settings, int64_t round,
                               const std::vector<const Trial*>& previous);

// The sampler: `initial` draws round 0 (learning, if it does, from trials
// 0 ... id - history_lag once all have finished: the Search's rule); later
// rounds wait (nullopt) until the previous round has finished.
std::unique_ptr<Sampler> make_pbt_sampler(const SearchSpace& space, const Json& settings, uint64_t seed,
                                          std::unique_ptr<Sampler> initial, int64_t history_lag);

}  // namespace kiln::tune

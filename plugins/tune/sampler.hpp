// Samplers: what to try next. A sampler sees every trial so far (running
// ones too) and proposes the parameters of the next one; it never decides
// when a trial stops (that is a Scheduler's job, scheduler.hpp), so any
// sampler composes with any scheduler (tune.search).
#pragma once

#include "trial.hpp"

#include <memory>
#include <optional>
#include <string>

namespace kiln::tune {

// The SDK's interface (kiln/sdk/search.hpp): next(id, trials, rng) proposes
// trial `id`'s parameters, or nullopt when exhausted (grid).
using search::Sampler;

// random, grid, sobol, tpe, gp, cmaes, nsga2; settings are the tuning step's
// `settings:` (each sampler reads its own keys). Throws ConfigError.
std::unique_ptr<Sampler> make_sampler(const std::string& name, const SearchSpace& space, const Json& settings);

// Defined in their own files; make_sampler dispatches to them.
std::unique_ptr<Sampler> make_tpe_sampler(const SearchSpace& space, const Json& settings);
std::unique_ptr<Sampler> make_gp_sampler(const SearchSpace& space, const Json& settings);
std::unique_ptr<Sampler> make_cmaes_sampler(const SearchSpace& space, const Json& settings);
std::unique_ptr<Sampler> make_sobol_sampler(const SearchSpace& space, const Json& settings);
std::unique_ptr<Sampler> make_nsga2_sampler(const SearchSpace& space, const Json& settings);

}  // namespace kiln::tune

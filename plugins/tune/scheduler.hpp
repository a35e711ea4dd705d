// Schedulers: when to stop a running trial. A scheduler sees every
// intermediate report and the other trials; it never proposes parameters
// (that is a Sampler's job, sampler.hpp).
#pragma once

#include "trial.hpp"

#include <memory>
#include <string>

namespace kiln::tune {

// The SDK's interface (kiln/sdk/search.hpp): on_report after each
// intermediate score, should_stop when the host asks.
using search::Scheduler;

// Vizier's median stopping rule: a running trial stops at step s (s >=
// grace_steps) when its best score so far is worse than the median of the
// succeeded trials' running averages up to s (at least min_trials of them).
struct MedianStop {
  int64_t grace_steps = 1;
  size_t min_trials = 3;
};
std::unique_ptr<Scheduler> make_median_scheduler(MedianStop rule);

// none, median, asha, hyperband; settings as for samplers. Throws ConfigError.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const Json& settings);

}  // namespace kiln::tune

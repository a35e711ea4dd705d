// A search: one Sampler (what to try next) composed with Schedulers (when
// to stop a trial), driven the same way whatever the pair: suggest() new
// trials, observe() their metric per step (epoch) and at the end, ask
// should_stop() while they run. plugin.cpp puts it behind the KilnTunerApi
// table with the SDK's search_table.
#pragma once

#include "sampler.hpp"
#include "scheduler.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::tune {

using search::Objective;

// What create() receives (docs/tuning.md shows the full shape): the SDK's
// SearchConfig {"objective", "space", "settings", "max_trials", "seed"}, the
// space parsed, and "early_stopping": {"rule": "median", "grace_steps": G,
// "min_trials": T}.
struct TunerConfig {
  search::SearchConfig search;
  SearchSpace space;
  std::optional<MedianStop> median_stop;

  static TunerConfig from_json(const Json& config);
};

// The SDK's Search (kiln/sdk/search.hpp) with the median rule of
// early_stopping added to its schedulers, and observe taking the status as
// the ABI spells it.
class Tuner : public search::Search {
 public:
  Tuner(TunerConfig config, std::unique_ptr<Sampler> sampler, std::vector<std::unique_ptr<Scheduler>> schedulers);

  using search::Search::observe;
  // `status` is "succeeded", "failed" or "early-stopped" when is_final.
  void observe(int64_t trial, int64_t step, double value, bool is_final, const std::string& status);

  const TunerConfig& config() const { return config_; }

 private:
  TunerConfig config_;
};

// "search" (settings.sampler x settings.scheduler, defaults random x none),
// or a fixed pair: "random", "grid", "tpe", "nsga2" (x none), "asha", "hyperband"
// (random x that scheduler). Throws ConfigError for an unknown name or a bad
// configuration.
std::unique_ptr<Tuner> make_tuner(const std::string& algorithm, const Json& config);

}  // namespace kiln::tune

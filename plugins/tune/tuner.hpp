// A search: one Sampler (what to try next) composed with Schedulers (when
// to stop a trial), driven the same way whatever the pair: suggest() new
// trials, observe() their metric per step (epoch) and at the end, ask
// should_stop() while they run. plugin.cpp puts it behind the KilnTunerApi table.
#pragma once

#include "sampler.hpp"
#include "scheduler.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::tune {

struct Objective {
  std::string metric;
  bool maximize = true;
  // Internally every algorithm minimises a score: lower is better.
  double score(double value) const { return maximize ? -value : value; }
};

// What create() receives (docs/tuning.md shows the full shape):
// {"objective": {"metric": M, "goal": "maximize"|"minimize"},
//  "space": {...}, "settings": {...}, "max_trials": N, "seed": S,
//  "early_stopping": {"rule": "median", "grace_steps": G, "min_trials": T}}
struct TunerConfig {
  Objective objective;
  SearchSpace space;
  Json settings = Json::object();
  int64_t max_trials = 10;
  uint64_t seed = 0;
  std::optional<MedianStop> median_stop;

  static TunerConfig from_json(const Json& config);
};

class Tuner {
 public:
  Tuner(TunerConfig config, std::unique_ptr<Sampler> sampler, std::vector<std::unique_ptr<Scheduler>> schedulers);
  Tuner(const Tuner&) = delete;
  Tuner& operator=(const Tuner&) = delete;

  // Up to max_count new trials as [{"trial": id, "parameters": {...}}];
  // empty once max_trials were suggested or the sampler is exhausted.
  Json suggest(size_t max_count);
  // `value` is the objective metric as reported (not a score). A non-finite
  // value (a failed trial that reported nothing) only records the status.
  void observe(int64_t trial, int64_t step, double value, bool is_final, const std::string& status);
  bool should_stop(int64_t trial);

  const Trials& trials() const { return trials_; }
  const TunerConfig& config() const { return config_; }

 private:
  Trial& trial(int64_t id);

  TunerConfig config_;
  Rng rng_;
  std::unique_ptr<Sampler> sampler_;
  std::vector<std::unique_ptr<Scheduler>> schedulers_;
  Trials trials_;
  int64_t next_id_ = 0;
};

// "search" (settings.sampler x settings.scheduler, defaults random x none),
// or a fixed pair: "random", "grid", "tpe" (x none), "asha", "hyperband"
// (random x that scheduler). Throws ConfigError for an unknown name or a bad
// configuration.
std::unique_ptr<Tuner> make_tuner(const std::string& algorithm, const Json& config);

}  // namespace kiln::tune

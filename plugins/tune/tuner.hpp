// The search algorithms behind tuning steps, as plain C++ objects; plugin.cpp
// puts them behind the KilnTunerApi table. Every algorithm is driven the same
// way: suggest() new trials, observe() their metric per step (epoch) and at
// the end, ask should_stop() while they run.
#pragma once

#include "space.hpp"

#include <map>
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

// Vizier's median stopping rule, usable with any algorithm: a running trial
// stops at step s (s >= grace_steps) when its best score so far is worse than
// the median of the completed trials' running averages up to s (with at
// least min_trials completed trials that reached s).
struct MedianStop {
  int64_t grace_steps = 1;
  size_t min_trials = 3;
};

// What create() receives (docs/tuning-status.md shows the full shape):
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

struct Trial {
  int64_t id = 0;
  Json parameters;
  std::map<int64_t, double> scores;  // step -> score (lower is better)
  std::string status = "running";    // running, succeeded, failed, early-stopped
  std::optional<double> final_score;
  bool stop = false;  // a stop decision, once taken, stands

  bool finished() const { return status != "running"; }
  // The final score, else the last observed one.
  std::optional<double> result() const;
};

class Tuner {
 public:
  explicit Tuner(TunerConfig config);
  virtual ~Tuner() = default;
  Tuner(const Tuner&) = delete;
  Tuner& operator=(const Tuner&) = delete;

  // Up to max_count new trials as [{"trial": id, "parameters": {...}}];
  // empty once max_trials were suggested or the algorithm is exhausted.
  Json suggest(size_t max_count);
  // `value` is the objective metric as reported (not a score). A non-finite
  // value (a failed trial that reported nothing) only records the status.
  void observe(int64_t trial, int64_t step, double value, bool is_final, const std::string& status);
  bool should_stop(int64_t trial);

  const std::map<int64_t, Trial>& trials() const { return trials_; }
  const TunerConfig& config() const { return config_; }

 protected:
  // The next point to try, or nullopt when the algorithm has nothing more.
  virtual std::optional<Json> next_parameters() = 0;
  // Called after every intermediate observation of a running trial at
  // `step`; returns true when the algorithm's own rule (ASHA) stops it.
  virtual bool on_intermediate(Trial& /*trial*/, int64_t /*step*/) { return false; }

  Trial& trial(int64_t id);
  TunerConfig config_;
  Rng rng_;
  std::map<int64_t, Trial> trials_;

 private:
  bool median_should_stop(const Trial& trial) const;
  int64_t next_id_ = 0;
};

// "random", "grid", "tpe", "asha", "hyperband". Throws ConfigError for an unknown name or
// a bad configuration.
std::unique_ptr<Tuner> make_tuner(const std::string& algorithm, const Json& config);

}  // namespace kiln::tune

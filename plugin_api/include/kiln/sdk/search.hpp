// kiln C++ SDK: a search written as two halves, a Sampler (what to try next)
// and a Scheduler (when to stop a running trial), composed into a tuner
// (KilnTunerApi). plugins/tune's samplers (random, grid, Sobol, TPE, GP,
// CMA-ES, NSGA-II) and schedulers (median, ASHA, Hyperband) implement these same
// interfaces; a plugin outside the tree writes one half and composes it:
//
//   struct MySampler : kiln::search::Sampler {
//     explicit MySampler(const kiln::search::SearchConfig& config);  // reads config.space, config.settings
//     std::optional<kiln::search::Json> next(int64_t id, const kiln::search::Trials& trials,
//                                            kiln::search::Rng& rng) override;
//   };
//   struct MyComponent {
//     static kiln::Manifest manifest() { return kiln::Manifest("acme.walk", "0.1.0", kiln::Kind::Tune); }
//     static const KilnTunerApi* tuner() { return kiln::search::composed_table<MySampler>(); }
//   };
//
// (a second template argument picks a Scheduler class constructed the same
// way; search_table<Factory>() takes any factory of a Search).
//
// Every algorithm minimises a score: score = -value for a metric to
// maximise, value otherwise; samplers and schedulers only see scores. With
// several objectives (SearchConfig::objectives) each finished trial also
// carries every objective's score (Trial::objective_scores), which a sampler
// that says multi_objective() learns from (plugins/tune's NSGA-II).
// Needs nlohmann/json (Debian: nlohmann-json3-dev) on the include path; not
// included by kiln/sdk.hpp.
#ifndef KILN_SDK_SEARCH_HPP
#define KILN_SDK_SEARCH_HPP

#include <kiln/sdk.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace kiln::search {

using Json = nlohmann::json;

// A configuration problem; the message names the offending field
// ("settings.gamma: ..."). The tuner table turns it into KILN_ERROR_INVALID_ARGUMENT.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// splitmix64 with its own uniform and normal: the same sequence on every
// platform and standard library (std distributions are not portable).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n); n > 0.
  uint64_t below(uint64_t n) { return next() % n; }
  // Standard normal (Box-Muller).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    constexpr double kPi = 3.14159265358979323846;  // M_PI is not standard C++
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
  }

 private:
  uint64_t state_;
};

// Running, or how the trial ended (kiln::TrialStatus, kiln/sdk/tuner.hpp).
using TrialState = TrialStatus;

// One trial as samplers and schedulers see it.
struct Trial {
  int64_t id = 0;
  Json parameters;
  std::map<int64_t, double> scores;  // step -> score (lower is better)
  TrialState state = TrialState::Running;
  std::optional<double> final_score;
  bool stop = false;  // a stop decision, once taken, stands
  // Several objectives (SearchConfig::objectives): the trial's score on each,
  // in that order (NaN where it gave none), set when it finished (the host's
  // observe_objectives, ABI 1.3); empty for a single objective, or until then.
  std::vector<double> objective_scores;

  bool finished() const { return state != TrialState::Running; }
  // The final score, else the last observed one.
  std::optional<double> result() const {
    if (final_score) return final_score;
    if (!scores.empty()) return scores.rbegin()->second;
    return std::nullopt;
  }
  // Finished, not failed, with a result: what model-based samplers learn from.
  bool usable() const { return finished() && state != TrialState::Failed && result().has_value(); }
};

// Every trial suggested so far, by id (ids are 0, 1, 2, ... in suggestion order).
using Trials = std::map<int64_t, Trial>;

// What to try next. A sampler sees every trial so far (running ones too) and
// never decides when a trial stops, so any sampler composes with any scheduler.
class Sampler {
 public:
  virtual ~Sampler() = default;
  // The parameters (a JSON object) of trial `id`, or nullopt when there is
  // nothing more to propose. Draw only from `rng`, so that a seed and the
  // same history give the same answer.
  virtual std::optional<Json> next(int64_t id, const Trials& trials, Rng& rng) = 0;
  // Whether next() reads other trials' results (model-based samplers). Such
  // a sampler is handed, for trial k, only trials 0 ... k - history_lag, and
  // only once all of them have finished (SearchConfig::history_lag), so its
  // answer does not depend on which trials happened to finish first. A
  // sampler that ignores results (random, grid, Sobol) says false and is
  // never held back.
  virtual bool uses_history() const { return true; }
  // Whether next() learns from every objective (Trial::objective_scores)
  // when the search has several (NSGA-II). A sampler that uses_history()
  // and says false only reads the first objective's score, so Search
  // refuses several objectives with it.
  virtual bool multi_objective() const { return false; }
};

// When to stop a running trial; never proposes parameters.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // After `trial` reported its score at `step` (already in trial.scores):
  // true stops it.
  virtual bool on_report(const Trial& /*trial*/, int64_t /*step*/, const Trials& /*trials*/) { return false; }
  // When the host asks should_stop: true stops it (rules that depend on
  // other trials finishing meanwhile decide here).
  virtual bool should_stop(const Trial& /*trial*/, const Trials& /*trials*/) { return false; }
  // Whether decisions read other trials (median, ASHA, Hyperband). Such a
  // scheduler is handed, for trial k, trial k and trials 0 ... k - history_lag
  // (finished before trial k was suggested: see Sampler::uses_history), so a
  // decision does not depend on which reports came first.
  virtual bool uses_history() const { return true; }
};

// settings.<key> as an integer >= minimum (fallback when absent).
inline int64_t setting_int(const Json& settings, const char* key, int64_t fallback, int64_t minimum) {
  if (!settings.contains(key)) return fallback;
  if (!settings[key].is_number_integer() || settings[key].get<int64_t>() < minimum)
    throw ConfigError(std::string("settings.") + key + ": an integer >= " + std::to_string(minimum) + " is required");
  return settings[key].get<int64_t>();
}

// settings.<key> as a number in the open interval (low, high).
inline double setting_float(const Json& settings, const char* key, double fallback, double low, double high) {
  if (!settings.contains(key)) return fallback;
  if (!settings[key].is_number() || settings[key].get<double>() <= low || settings[key].get<double>() >= high)
    throw ConfigError(std::string("settings.") + key + ": a number in (" + std::to_string(low) + ", " +
                      std::to_string(high) + ") is required");
  return settings[key].get<double>();
}

inline bool setting_bool(const Json& settings, const char* key, bool fallback) {
  if (!settings.contains(key)) return fallback;
  if (!settings[key].is_boolean()) throw ConfigError(std::string("settings.") + key + ": true or false is required");
  return settings[key].get<bool>();
}

struct Objective {
  std::string metric;
  bool maximize = true;
  double score(double value) const { return maximize ? -value : value; }
};

// The fields of the tuner config every search reads (docs/tuning.md):
// {"objective": {"metric": M, "goal": "maximize"|"minimize"}, "space": {...},
//  "settings": {...}, "max_trials": N, "seed": S}. `space` is handed over as
// given; the sampler parses it.
struct SearchConfig {
  Objective objective;
  // "objectives" (several metrics, searched for their Pareto front): the
  // host ranks the trials; a search with more than one only works with
  // samplers and schedulers that read no results, or samplers that read all
  // of them (Sampler::multi_objective); Search refuses others.
  std::vector<Objective> objectives;
  Json space = Json::object();
  Json settings = Json::object();
  int64_t max_trials = 10;
  uint64_t seed = 0;
  // Trial k of a sampler that uses_history() learns from trials
  // 0 ... k - history_lag, once every one of them has finished: suggest
  // answers fewer trials than asked for (even none) until they have, and the
  // host asks again when a trial finishes. settings.history_lag, else the
  // host's "parallel_trials" (so no slot waits while trials finish in
  // order); 0 (neither given, or settings.history_lag: 0): the sampler and
  // schedulers see every trial as it stands and no suggestion waits: the
  // search then depends on which trials finished first when several run at
  // once (as Optuna's parallel runs do), in exchange for slots that never
  // idle. The host's tuner log records the order of the calls, so a resume
  // still puts such a search back exactly where it stood.
  int64_t history_lag = 0;

  static SearchConfig from_json(const Json& config) {
    if (!config.is_object()) throw ConfigError("tuner config: expected a JSON object");
    SearchConfig out;
    const Json objective = config.value("objective", Json::object());
    if (!objective.is_object() || !objective.contains("metric") || !objective["metric"].is_string() ||
        objective["metric"].get<std::string>().empty())
      throw ConfigError("objective.metric: a metric name is required");
    out.objective.metric = objective["metric"].get<std::string>();
    const std::string goal = objective.value("goal", "maximize");
    if (goal != "maximize" && goal != "minimize")
      throw ConfigError("objective.goal: expected maximize or minimize, got '" + goal + "'");
    out.objective.maximize = goal == "maximize";
    if (config.contains("objectives")) {
      const Json& list = config["objectives"];
      if (!list.is_array()) throw ConfigError("objectives: expected a list of {metric, goal}");
      for (const Json& o : list) {
        if (!o.is_object() || !o.contains("metric") || !o["metric"].is_string())
          throw ConfigError("objectives: each needs a metric name");
        const std::string g = o.value("goal", "maximize");
        if (g != "maximize" && g != "minimize")
          throw ConfigError("objectives: goal: expected maximize or minimize, got '" + g + "'");
        out.objectives.push_back({o["metric"].get<std::string>(), g == "maximize"});
      }
    }
    out.space = config.value("space", Json::object());
    if (config.contains("settings")) {
      if (!config["settings"].is_object()) throw ConfigError("settings: expected a mapping");
      out.settings = config["settings"];
    }
    if (config.contains("max_trials")) {
      if (!config["max_trials"].is_number_integer() || config["max_trials"].get<int64_t>() < 1)
        throw ConfigError("max_trials: a positive integer is required");
      out.max_trials = config["max_trials"].get<int64_t>();
    }
    if (config.contains("seed")) {
      if (!config["seed"].is_number_integer()) throw ConfigError("seed: an integer is required");
      out.seed = config["seed"].get<uint64_t>();
    }
    if (config.contains("parallel_trials")) {
      if (!config["parallel_trials"].is_number_integer() || config["parallel_trials"].get<int64_t>() < 1)
        throw ConfigError("parallel_trials: a positive integer is required");
      out.history_lag = config["parallel_trials"].get<int64_t>();
    }
    out.history_lag = setting_int(out.settings, "history_lag", out.history_lag, 0);
    return out;
  }
};

// One sampler and its schedulers behind suggest / observe / should_stop,
// with the trial bookkeeping and max_trials.
class Search {
 public:
  Search(SearchConfig config, std::unique_ptr<Sampler> sampler, std::vector<std::unique_ptr<Scheduler>> schedulers)
      : config_(std::move(config)), rng_(config_.seed), sampler_(std::move(sampler)), schedulers_(std::move(schedulers)) {
    if (config_.objectives.size() > 1 && learns_from_one_objective())
      throw ConfigError(
          "objectives: this search learns from one objective's results; several objectives need a sampler that "
          "reads none or all of them (random, grid, sobol or nsga2) with scheduler none and no early_stopping");
  }
  virtual ~Search() = default;
  Search(const Search&) = delete;
  Search& operator=(const Search&) = delete;

  // Up to max_count new trials as [{"trial": id, "parameters": {...}}];
  // empty once max_trials were suggested or the sampler is exhausted.
  Json suggest(size_t max_count) {
    Json out = Json::array();
    while (out.size() < max_count && next_id_ < config_.max_trials) {
      std::optional<Json> parameters;
      if (gated()) {
        const std::optional<Trials> history = history_of(next_id_);
        if (!history) break;  // asked again when a trial finishes
        // A sampler that reads no history (or keeps its own rule, as PBT
        // does for its rounds) gets every trial; the wait above is the
        // schedulers'.
        parameters = sampler_->next(next_id_, sampler_->uses_history() ? *history : trials_, rng_);
      } else {
        parameters = sampler_->next(next_id_, trials_, rng_);
      }
      if (!parameters) break;
      Trial t;
      t.id = next_id_++;
      t.parameters = std::move(*parameters);
      out.push_back({{"trial", t.id}, {"parameters", t.parameters}});
      trials_.emplace(t.id, std::move(t));
    }
    return out;
  }

  // `value` is the metric as reported (not a score); a non-finite value (a
  // failed trial that reported nothing) only records the status.
  void observe(int64_t id, int64_t step, double value, TrialStatus status) {
    Trial& t = trial(id);
    const bool known = std::isfinite(value);
    if (status == TrialStatus::Running) {
      if (!known || t.finished()) return;
      t.scores[step] = config_.objective.score(value);
      const Trials& view = scheduler_view(t);
      for (const auto& scheduler : schedulers_)
        if (scheduler->on_report(t, step, view)) t.stop = true;
      return;
    }
    if (known) t.final_score = config_.objective.score(value);
    t.state = status;
  }

  // A finished trial's value of every objective (SearchConfig::objectives
  // order, as reported; NaN: none), before its final observe: kept as
  // Trial::objective_scores.
  void observe_objectives(int64_t id, const std::vector<double>& values) {
    Trial& t = trial(id);
    if (values.size() != config_.objectives.size())
      throw ConfigError("observe_objectives: " + std::to_string(values.size()) + " values for " +
                        std::to_string(config_.objectives.size()) + " objectives");
    t.objective_scores.clear();
    for (size_t i = 0; i < values.size(); ++i)
      t.objective_scores.push_back(std::isfinite(values[i]) ? config_.objectives[i].score(values[i]) : values[i]);
  }

  bool should_stop(int64_t id) {
    Trial& t = trial(id);
    if (t.finished()) return false;
    if (t.stop) return true;
    const Trials& view = scheduler_view(t);
    for (const auto& scheduler : schedulers_)
      if (!t.stop && scheduler->should_stop(t, view)) t.stop = true;
    return t.stop;
  }

  const Trials& trials() const { return trials_; }
  const SearchConfig& search_config() const { return config_; }

 protected:
  void add_scheduler(std::unique_ptr<Scheduler> scheduler) {
    if (config_.objectives.size() > 1 && scheduler->uses_history())
      throw ConfigError("objectives: early stopping follows one objective; several objectives take none");
    schedulers_.push_back(std::move(scheduler));
  }

 private:
  // Whether suggestions wait for the history (SearchConfig::history_lag):
  // a lag is set and the sampler or a scheduler reads other trials.
  bool gated() const { return config_.history_lag > 0 && gated_by_any(); }

  // Whether the sampler or a scheduler reads one objective's results only.
  bool learns_from_one_objective() const {
    if (sampler_->uses_history() && !sampler_->multi_objective()) return true;
    for (const auto& scheduler : schedulers_)
      if (scheduler->uses_history()) return true;
    return false;
  }

  // Whether the sampler or a scheduler reads other trials.
  bool gated_by_any() const {
    if (sampler_->uses_history()) return true;
    for (const auto& scheduler : schedulers_)
      if (scheduler->uses_history()) return true;
    return false;
  }

  // What schedulers see when deciding about `t`: with a lag, a copy of `t`
  // and trials 0 ... t.id - history_lag (finished before `t` was suggested);
  // else every trial. The lagged view is kept between decisions and moved
  // to each one's bound: the trials below it were finished when copied and
  // never change, so a report costs the few trials between two bounds and
  // `t`, not a copy of the whole search (valid until the next call).
  const Trials& scheduler_view(const Trial& t) {
    if (config_.history_lag <= 0) return trials_;
    if (view_decided_) view_.erase(*view_decided_);  // the last decision's copy, stale now
    const int64_t bound = t.id - config_.history_lag;
    view_.erase(view_.upper_bound(bound), view_.end());
    const int64_t have = view_.empty() ? -1 : view_.rbegin()->first;
    for (auto it = trials_.upper_bound(have); it != trials_.end() && it->first <= bound; ++it)
      view_.emplace(it->first, it->second);
    view_[t.id] = t;
    view_decided_ = t.id;
    return view_;
  }

  // Trials 0 ... id - history_lag, if every one of them has finished.
  std::optional<Trials> history_of(int64_t id) const {
    const auto end = trials_.upper_bound(id - config_.history_lag);
    for (auto it = trials_.begin(); it != end; ++it)
      if (!it->second.finished()) return std::nullopt;
    return Trials(trials_.begin(), end);
  }

  Trial& trial(int64_t id) {
    const auto it = trials_.find(id);
    if (it == trials_.end()) throw ConfigError("no trial " + std::to_string(id) + " was suggested");
    return it->second;
  }

  SearchConfig config_;
  Rng rng_;
  std::unique_ptr<Sampler> sampler_;
  std::vector<std::unique_ptr<Scheduler>> schedulers_;
  Trials trials_;
  int64_t next_id_ = 0;
  Trials view_;                          // scheduler_view's, between decisions
  std::optional<int64_t> view_decided_;  // the trial whose copy view_ holds above its bound
};

// A scheduler that never stops a trial, constructed like any composed one.
struct NeverStop : Scheduler {
  explicit NeverStop(const SearchConfig& /*config*/) {}
  bool uses_history() const override { return false; }
};

namespace detail {

// Runs `f`, turning configuration errors into KILN_ERROR_INVALID_ARGUMENT
// (the SDK makes anything else internal).
template <class F>
auto config_errors_are_invalid_arguments(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const ConfigError& e) {
    throw Error(e.what(), KILN_ERROR_INVALID_ARGUMENT);
  } catch (const Json::exception& e) {
    throw Error(std::string("tuner config: ") + e.what(), KILN_ERROR_INVALID_ARGUMENT);
  }
}

// A Search made by Factory::create(const Json& config) behind the tuner
// class shape of kiln/sdk/tuner.hpp.
template <class Factory>
class SearchTuner {
 public:
  explicit SearchTuner(const std::string& config_json)
      : impl_(config_errors_are_invalid_arguments([&] { return Factory::create(Json::parse(config_json)); })) {}

  std::vector<kiln::Trial> suggest(uint32_t max_count) {
    return config_errors_are_invalid_arguments([&] {
      std::vector<kiln::Trial> out;
      for (const Json& s : impl_->suggest(max_count))
        out.push_back({s.at("trial").template get<int64_t>(), s.at("parameters").dump()});
      return out;
    });
  }

  void observe(const Observation& o) {
    config_errors_are_invalid_arguments([&] { impl_->observe(o.trial, o.step, o.value, o.status); });
  }

  void observe_objectives(int64_t trial, const std::vector<double>& values) {
    config_errors_are_invalid_arguments([&] { impl_->observe_objectives(trial, values); });
  }

  bool should_stop(int64_t trial) {
    return config_errors_are_invalid_arguments([&] { return impl_->should_stop(trial); });
  }

 private:
  std::unique_ptr<Search> impl_;
};

template <class SamplerT, class SchedulerT>
struct Composed {
  static std::unique_ptr<Search> create(const Json& json) {
    SearchConfig config = SearchConfig::from_json(json);
    std::unique_ptr<Sampler> sampler = std::make_unique<SamplerT>(config);
    std::vector<std::unique_ptr<Scheduler>> schedulers;
    schedulers.push_back(std::make_unique<SchedulerT>(config));
    return std::make_unique<Search>(std::move(config), std::move(sampler), std::move(schedulers));
  }
};

}  // namespace detail

// The KilnTunerApi of the searches Factory::create(const Json& config)
// returns (a std::unique_ptr<Search>); static, valid for the life of the process.
template <class Factory>
const KilnTunerApi* search_table() {
  return tuner_table<detail::SearchTuner<Factory>>();
}

// The KilnTunerApi of SamplerT composed with SchedulerT, both constructed
// from the parsed SearchConfig.
template <class SamplerT, class SchedulerT = NeverStop>
const KilnTunerApi* composed_table() {
  return search_table<detail::Composed<SamplerT, SchedulerT>>();
}

}  // namespace kiln::search

#endif  // KILN_SDK_SEARCH_HPP

#include "tuner.hpp"

#include "pbt.hpp"

#include <cmath>

namespace kiln::tune {
namespace {

TrialState final_state(const std::string& status) {
  for (const TrialState state : {TrialState::Succeeded, TrialState::Failed, TrialState::EarlyStopped})
    if (status == trial_status_name(state)) return state;
  throw ConfigError("observe: status must be succeeded, failed or early-stopped, got '" + status + "'");
}

std::string setting_name(const Json& settings, const char* key, const char* fallback) {
  if (!settings.contains(key)) return fallback;
  if (!settings[key].is_string()) throw ConfigError(std::string("settings.") + key + ": a name is required");
  return settings[key].get<std::string>();
}

}  // namespace

TunerConfig TunerConfig::from_json(const Json& config) {
  TunerConfig out;
  out.search = search::SearchConfig::from_json(config);
  out.space = SearchSpace::from_json(out.search.space);
  if (config.contains("early_stopping") && !config["early_stopping"].is_null()) {
    const Json& es = config["early_stopping"];
    if (!es.is_object() || es.value("rule", "") != "median") throw ConfigError("early_stopping.rule: expected median");
    MedianStop m;
    m.grace_steps = es.value("grace_steps", m.grace_steps);
    m.min_trials = es.value("min_trials", m.min_trials);
    out.median_stop = m;
  }
  return out;
}

Tuner::Tuner(TunerConfig config, std::unique_ptr<Sampler> sampler, std::vector<std::unique_ptr<Scheduler>> schedulers)
    : search::Search(config.search, std::move(sampler), std::move(schedulers)), config_(std::move(config)) {
  if (config_.median_stop) add_scheduler(make_median_scheduler(*config_.median_stop));
}

void Tuner::observe(int64_t trial, int64_t step, double value, bool is_final, const std::string& status) {
  search::Search::observe(trial, step, value, is_final ? final_state(status) : TrialState::Running);
}

std::unique_ptr<Tuner> make_tuner(const std::string& algorithm, const Json& config) {
  TunerConfig parsed = TunerConfig::from_json(config);
  std::string sampler = "random", scheduler = "none";
  if (algorithm == "search") {
    sampler = setting_name(parsed.search.settings, "sampler", "random");
    scheduler = setting_name(parsed.search.settings, "scheduler", "none");
  } else if (algorithm == "grid" || algorithm == "tpe" || algorithm == "nsga2") {
    sampler = algorithm;
  } else if (algorithm == "asha" || algorithm == "hyperband" || algorithm == "pbt") {
    scheduler = algorithm;
  } else if (algorithm != "random") {
    throw ConfigError("algorithm: expected search, random, grid, tpe, nsga2, asha, hyperband or pbt, got '" + algorithm +
                      "'");
  }
  std::vector<std::unique_ptr<Scheduler>> schedulers;
  if (scheduler == "pbt") {  // PBT proposes every round after the first: it wraps the sampler
    const int64_t population = PbtSettings::from_json(parsed.search.settings, parsed.search.seed).population;
    if (parsed.search.max_trials % population != 0)
      throw ConfigError("max_trials: " + std::to_string(parsed.search.max_trials) +
                        " is not a multiple of settings.population (" + std::to_string(population) + ")");
    if (parsed.search.objectives.size() > 1)
      throw ConfigError("objectives: population-based training ranks its population by one objective");
    std::unique_ptr<Sampler> s = make_pbt_sampler(parsed.space, parsed.search.settings, parsed.search.seed,
                                                  make_sampler(sampler, parsed.space, parsed.search.settings),
                                                  parsed.search.history_lag);
    schedulers.push_back(make_scheduler("none", parsed.search.settings));
    return std::make_unique<Tuner>(std::move(parsed), std::move(s), std::move(schedulers));
  }
  std::unique_ptr<Sampler> s = make_sampler(sampler, parsed.space, parsed.search.settings);
  schedulers.push_back(make_scheduler(scheduler, parsed.search.settings));
  return std::make_unique<Tuner>(std::move(parsed), std::move(s), std::move(schedulers));
}

}  // namespace kiln::tune

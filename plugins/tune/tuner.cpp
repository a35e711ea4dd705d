#include "tuner.hpp"

#include <cmath>

namespace kiln::tune {
namespace {

TrialState final_state(const std::string& status) {
  if (status == "succeeded") return TrialState::Succeeded;
  if (status == "failed") return TrialState::Failed;
  if (status == "early-stopped") return TrialState::EarlyStopped;
  throw ConfigError("observe: status must be succeeded, failed or early-stopped, got '" + status + "'");
}

std::string setting_name(const Json& settings, const char* key, const char* fallback) {
  if (!settings.contains(key)) return fallback;
  if (!settings[key].is_string()) throw ConfigError(std::string("settings.") + key + ": a name is required");
  return settings[key].get<std::string>();
}

}  // namespace

TunerConfig TunerConfig::from_json(const Json& config) {
  if (!config.is_object()) throw ConfigError("tuner config: expected a JSON object");
  TunerConfig out;
  const Json objective = config.value("objective", Json::object());
  if (!objective.contains("metric") || !objective["metric"].is_string() ||
      objective["metric"].get<std::string>().empty())
    throw ConfigError("objective.metric: a metric name is required");
  out.objective.metric = objective["metric"].get<std::string>();
  const std::string goal = objective.value("goal", "maximize");
  if (goal != "maximize" && goal != "minimize")
    throw ConfigError("objective.goal: expected maximize or minimize, got '" + goal + "'");
  out.objective.maximize = goal == "maximize";
  out.space = SearchSpace::from_json(config.value("space", Json::object()));
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
    : config_(std::move(config)), rng_(config_.seed), sampler_(std::move(sampler)), schedulers_(std::move(schedulers)) {
  if (config_.median_stop) schedulers_.push_back(make_median_scheduler(*config_.median_stop));
}

Trial& Tuner::trial(int64_t id) {
  const auto it = trials_.find(id);
  if (it == trials_.end()) throw ConfigError("no trial " + std::to_string(id) + " was suggested");
  return it->second;
}

Json Tuner::suggest(size_t max_count) {
  Json out = Json::array();
  while (out.size() < max_count && next_id_ < config_.max_trials) {
    std::optional<Json> parameters = sampler_->next(next_id_, trials_, rng_);
    if (!parameters) break;
    Trial t;
    t.id = next_id_++;
    t.parameters = *parameters;
    out.push_back({{"trial", t.id}, {"parameters", t.parameters}});
    trials_.emplace(t.id, std::move(t));
  }
  return out;
}

void Tuner::observe(int64_t id, int64_t step, double value, bool is_final, const std::string& status) {
  Trial& t = trial(id);
  const bool known = std::isfinite(value);
  if (!is_final) {
    if (!known || t.finished()) return;
    t.scores[step] = config_.objective.score(value);
    for (const auto& scheduler : schedulers_)
      if (scheduler->on_report(t, step, trials_)) t.stop = true;
    return;
  }
  const TrialState state = final_state(status);
  if (known) t.final_score = config_.objective.score(value);
  t.state = state;
}

bool Tuner::should_stop(int64_t id) {
  Trial& t = trial(id);
  if (t.finished()) return false;
  for (const auto& scheduler : schedulers_)
    if (!t.stop && scheduler->should_stop(t, trials_)) t.stop = true;
  return t.stop;
}

std::unique_ptr<Tuner> make_tuner(const std::string& algorithm, const Json& config) {
  TunerConfig parsed = TunerConfig::from_json(config);
  std::string sampler = "random", scheduler = "none";
  if (algorithm == "search") {
    sampler = setting_name(parsed.settings, "sampler", "random");
    scheduler = setting_name(parsed.settings, "scheduler", "none");
  } else if (algorithm == "grid" || algorithm == "tpe") {
    sampler = algorithm;
  } else if (algorithm == "asha" || algorithm == "hyperband") {
    scheduler = algorithm;
  } else if (algorithm != "random") {
    throw ConfigError("algorithm: expected search, random, grid, tpe, asha or hyperband, got '" + algorithm + "'");
  }
  std::unique_ptr<Sampler> s = make_sampler(sampler, parsed.space, parsed.settings);
  std::vector<std::unique_ptr<Scheduler>> schedulers;
  schedulers.push_back(make_scheduler(scheduler, parsed.settings));
  return std::make_unique<Tuner>(std::move(parsed), std::move(s), std::move(schedulers));
}

}  // namespace kiln::tune

#include "tuner.hpp"

#include <algorithm>
#include <cmath>

namespace kiln::tune {

std::optional<double> Trial::result() const {
  if (final_score) return final_score;
  if (!scores.empty()) return scores.rbegin()->second;
  return std::nullopt;
}

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

Tuner::Tuner(TunerConfig config) : config_(std::move(config)), rng_(config_.seed) {}

Trial& Tuner::trial(int64_t id) {
  const auto it = trials_.find(id);
  if (it == trials_.end()) throw ConfigError("no trial " + std::to_string(id) + " was suggested");
  return it->second;
}

Json Tuner::suggest(size_t max_count) {
  Json out = Json::array();
  while (out.size() < max_count && next_id_ < config_.max_trials) {
    std::optional<Json> parameters = next_parameters();
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
    if (on_intermediate(t, step)) t.stop = true;
    return;
  }
  if (known) t.final_score = config_.objective.score(value);
  if (status != "succeeded" && status != "failed" && status != "early-stopped")
    throw ConfigError("observe: status must be succeeded, failed or early-stopped, got '" + status + "'");
  t.status = status;
}

bool Tuner::should_stop(int64_t id) {
  Trial& t = trial(id);
  if (t.finished()) return false;
  if (!t.stop && config_.median_stop && median_should_stop(t)) t.stop = true;
  return t.stop;
}

bool Tuner::median_should_stop(const Trial& t) const {
  if (t.scores.empty()) return false;
  const int64_t step = t.scores.rbegin()->first;
  if (step < config_.median_stop->grace_steps) return false;
  std::vector<double> averages;
  for (const auto& [id, other] : trials_) {
    if (id == t.id || other.status != "succeeded") continue;
    double sum = 0;
    size_t n = 0;
    for (const auto& [s, score] : other.scores) {
      if (s > step) break;
      sum += score;
      ++n;
    }
    if (n > 0 && other.scores.rbegin()->first >= step) averages.push_back(sum / static_cast<double>(n));
  }
  if (averages.empty() || averages.size() < config_.median_stop->min_trials) return false;
  std::sort(averages.begin(), averages.end());
  const size_t n = averages.size();
  const double median = n % 2 ? averages[n / 2] : (averages[n / 2 - 1] + averages[n / 2]) / 2;
  double best = t.scores.begin()->second;
  for (const auto& entry : t.scores) best = std::min(best, entry.second);
  return best > median;
}

}  // namespace kiln::tune

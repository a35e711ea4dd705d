// What samplers and schedulers see of a search: its trials, their curves and
// results, as scores (lower is better whatever the objective's goal).
#pragma once

#include "space.hpp"

#include <map>
#include <optional>
#include <string>

namespace kiln::tune {

enum class TrialState { Running, Succeeded, Failed, EarlyStopped };

struct Trial {
  int64_t id = 0;
  Json parameters;
  std::map<int64_t, double> scores;  // step -> score (lower is better)
  TrialState state = TrialState::Running;
  std::optional<double> final_score;
  bool stop = false;  // a stop decision, once taken, stands

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

// settings.<key> as an integer >= minimum (fallback when absent); ConfigError names the key.
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

}  // namespace kiln::tune

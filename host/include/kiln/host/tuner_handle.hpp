// The host's typed handle on one tuner object of a loaded component's
// KilnTunerApi: create in the constructor, destroy in the destructor, and
// suggest / observe / should_stop with the plugin's answers checked. The
// engine owns one per tuning step and calls it from one thread at a time.
#pragma once

#include <kiln/plugin_api.h>
#include <kiln/host/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::host {

// Where a trial stands when it is reported to its tuner.
enum class TrialStatus { Running, Succeeded, Failed, EarlyStopped };

// "running", "succeeded", "failed", "early-stopped" (the ABI's words).
const char* trial_status_name(TrialStatus status) noexcept;
// The status called `name`, or nullopt for any other word.
std::optional<TrialStatus> trial_status_from_name(std::string_view name) noexcept;

// One trial a tuner suggested.
struct SuggestedTrial {
  int id = 0;       // >= 0, never repeated by one tuner
  Json parameters;  // a JSON object
};

// A tuner call failed: the tuner's own message (a configuration error names
// its field first: "space.lr.low: must be > 0"), or what was wrong with its
// answer. code() is the KilnError code (KILN_ERROR_INTERNAL for a bad answer).
class TunerError : public std::runtime_error {
 public:
  TunerError(KilnErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  KilnErrorCode code() const noexcept { return code_; }

 private:
  KilnErrorCode code_;
};

class TunerHandle {
 public:
  // Creates a tuner through `api` (LoadedComponent::tuner) with `config`
  // (objective, space, settings, max_trials, seed). Throws TunerError with
  // the tuner's message when create fails, std::invalid_argument when `api`
  // is NULL or lacks a function.
  TunerHandle(const KilnTunerApi* api, const Json& config);
  ~TunerHandle();
  TunerHandle(TunerHandle&& other) noexcept;
  TunerHandle& operator=(TunerHandle&& other) noexcept;
  TunerHandle(const TunerHandle&) = delete;
  TunerHandle& operator=(const TunerHandle&) = delete;

  // Up to `max_count` new trials; empty when the search is exhausted. Throws
  // TunerError when the tuner fails or answers something other than a list of
  // at most `max_count` objects with a new non-negative int "trial" and an
  // object "parameters".
  std::vector<SuggestedTrial> suggest(uint32_t max_count);
  // Reports trial `trial`'s objective `value` at `step` (-1: none). `final`
  // marks the last report, whose `status` must then not be Running; an
  // intermediate report ignores `status`. Throws TunerError.
  void observe(int64_t trial, int64_t step, double value, bool final, TrialStatus status = TrialStatus::Running);
  // A finished trial's value of every objective of a multi-objective
  // search (config "objectives" order; NaN: none), before its final
  // observe. A no-op for a tuner without observe_objectives (ABI < 1.3, or
  // NULL). Throws TunerError.
  void observe_objectives(int64_t trial, const std::vector<double>& values);
  // Whether the tuner takes observe_objectives.
  bool takes_objectives() const noexcept;
  // Whether running trial `trial` should stop now. Throws TunerError.
  bool should_stop(int64_t trial);

 private:
  void reset() noexcept;

  const KilnTunerApi* api_ = nullptr;
  KilnTuner* tuner_ = nullptr;
  std::set<int> suggested_;  // every id handed out so far
};

}  // namespace kiln::host

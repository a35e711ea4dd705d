// kiln C++ SDK: a tuner (KilnTunerApi) written as a C++ class.
//
// The author writes a class T with
//
//   explicit T(const std::string& config_json);        // KilnTunerApi.create
//   std::vector<kiln::Trial> suggest(uint32_t max_count);
//   void observe(const kiln::Observation& observation);
//   bool should_stop(int64_t trial);
//   // optional (ABI 1.3): a multi-objective search's values of every
//   // objective for a finished trial, in config "objectives" order, NaN
//   // where none; called just before that trial's final observe
//   void observe_objectives(int64_t trial, const std::vector<double>& values);
//
// and hands `kiln::tuner_table<T>()` out from the component's
// `static const KilnTunerApi* tuner()`. The SDK owns the C side: every
// trampoline is noexcept and turns exceptions into KilnError values, the JSON
// text suggest hands out lives in the tuner until its next call, the host
// table is kept per tuner (no global), and destroy deletes the object.
// Included by kiln/sdk.hpp.
#ifndef KILN_SDK_TUNER_HPP
#define KILN_SDK_TUNER_HPP

#include <kiln/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace kiln {

// Where a trial stands when the host reports its objective.
enum class TrialStatus {
  Running,       // an intermediate report (is_final == 0)
  Succeeded,     // final reports: the trial's steps all succeeded,
  Failed,        // one failed,
  EarlyStopped,  // or the tuner stopped it (should_stop)
};

inline const char* trial_status_name(TrialStatus status) {
  switch (status) {
    case TrialStatus::Running:
      return "running";
    case TrialStatus::Succeeded:
      return "succeeded";
    case TrialStatus::Failed:
      return "failed";
    case TrialStatus::EarlyStopped:
      return "early-stopped";
  }
  return "running";
}

// One suggestion: a new trial id (>= 0, never repeated) and its parameters.
struct Trial {
  int64_t id = 0;
  std::string parameters_json;  // a JSON object: {"lr": 0.01, ...}
};

// One report of a trial's objective metric.
struct Observation {
  int64_t trial = 0;
  int64_t step = -1;   // the training step (epoch); -1 when there is none
  double value = 0.0;  // as the component reported it; NaN when a failed trial reported nothing
  TrialStatus status = TrialStatus::Running;
  bool is_final() const { return status != TrialStatus::Running; }
};

namespace detail {

// The plugin-side object behind a KilnTuner*: the author's tuner, the host
// table it was created with, and the text suggest last handed out.
template <class T>
struct TunerBox {
  TunerBox(const KilnHostApi* h, const std::string& config_json) : host(h), tuner(config_json) {}
  const KilnHostApi* host;
  T tuner;
  std::string last_json;
};

template <class T>
TunerBox<T>* tuner_box(KilnTuner* tuner) {
  return reinterpret_cast<TunerBox<T>*>(tuner);  // created by tuner_create<T>
}

// True when `json` starts with '{' and ends with '}' (ignoring blanks): a
// cheap guard against a tuner that returns a non-object as parameters.
inline bool looks_like_object(const std::string& json) {
  const auto first = json.find_first_not_of(" \t\r\n");
  const auto last = json.find_last_not_of(" \t\r\n");
  return first != std::string::npos && json[first] == '{' && json[last] == '}';
}

// The status of a final report: a JSON string ("\"succeeded\"") or a bare word.
inline TrialStatus final_status(const char* status) {
  std::string text = status == nullptr ? "" : status;
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"' && text.find('\\') == std::string::npos)
    text = text.substr(1, text.size() - 2);
  for (const TrialStatus s : {TrialStatus::Succeeded, TrialStatus::Failed, TrialStatus::EarlyStopped})
    if (text == trial_status_name(s)) return s;
  throw Error("observe: status must be succeeded, failed or early-stopped, got '" + text + "'",
              KILN_ERROR_INVALID_ARGUMENT);
}

template <class T>
KilnError* tuner_create(const KilnHostApi* host, const char* config_json, KilnTuner** tuner_out) noexcept {
  try {
    if (tuner_out == nullptr) throw Error("create: tuner_out is NULL", KILN_ERROR_INVALID_ARGUMENT);
    auto box = std::make_unique<TunerBox<T>>(host, config_json == nullptr ? "{}" : config_json);
    *tuner_out = reinterpret_cast<KilnTuner*>(box.release());  // owned by the host until destroy
    return nullptr;
  } catch (...) {
    return error_from_current_exception(host);
  }
}

template <class T>
KilnError* tuner_suggest(KilnTuner* handle, uint32_t max_count, const char** json_out) noexcept {
  TunerBox<T>* box = tuner_box<T>(handle);
  try {
    const std::vector<Trial> trials = box->tuner.suggest(max_count);
    if (trials.size() > max_count)
      throw Error("suggest returned " + std::to_string(trials.size()) + " trials, at most " +
                      std::to_string(max_count) + " were asked for",
                  KILN_ERROR_INTERNAL);
    std::string json = "[";
    for (const Trial& trial : trials) {
      if (trial.id < 0) throw Error("suggest returned a negative trial id", KILN_ERROR_INTERNAL);
      if (!looks_like_object(trial.parameters_json))
        throw Error("suggest: the parameters of trial " + std::to_string(trial.id) + " are not a JSON object",
                    KILN_ERROR_INTERNAL);
      json += (json.size() > 1 ? "," : "") + std::string("{\"trial\":") + std::to_string(trial.id) +
              ",\"parameters\":" + trial.parameters_json + "}";
    }
    box->last_json = json + "]";
    *json_out = box->last_json.c_str();  // owned by the tuner until its next call
    return nullptr;
  } catch (...) {
    return error_from_current_exception(box->host);
  }
}

template <class T>
KilnError* tuner_observe(KilnTuner* handle, int64_t trial, int64_t step, double value, int32_t is_final,
                         const char* status) noexcept {
  TunerBox<T>* box = tuner_box<T>(handle);
  try {
    const Observation observation{trial, step, value, is_final != 0 ? final_status(status) : TrialStatus::Running};
    box->tuner.observe(observation);
    return nullptr;
  } catch (...) {
    return error_from_current_exception(box->host);
  }
}

template <class T>
KilnError* tuner_should_stop(KilnTuner* handle, int64_t trial, int32_t* stop_out) noexcept {
  TunerBox<T>* box = tuner_box<T>(handle);
  try {
    *stop_out = box->tuner.should_stop(trial) ? 1 : 0;
    return nullptr;
  } catch (...) {
    return error_from_current_exception(box->host);
  }
}

template <class T, class = void>
struct has_observe_objectives : std::false_type {};
template <class T>
struct has_observe_objectives<T, std::void_t<decltype(std::declval<T&>().observe_objectives(
                                      int64_t{}, std::declval<const std::vector<double>&>()))>> : std::true_type {};

template <class T>
KilnError* tuner_observe_objectives(KilnTuner* handle, int64_t trial, const double* values, uint32_t count) noexcept {
  TunerBox<T>* box = tuner_box<T>(handle);
  try {
    if (values == nullptr && count > 0) throw Error("observe_objectives: values is NULL", KILN_ERROR_INVALID_ARGUMENT);
    box->tuner.observe_objectives(trial, std::vector<double>(values, values + count));
    return nullptr;
  } catch (...) {
    return error_from_current_exception(box->host);
  }
}

// observe_objectives' entry when T has the method, else NULL (not offered).
template <class T>
constexpr auto observe_objectives_entry() {
  KilnError* (*entry)(KilnTuner*, int64_t, const double*, uint32_t) = nullptr;
  if constexpr (has_observe_objectives<T>::value) entry = &tuner_observe_objectives<T>;
  return entry;
}

template <class T>
void tuner_destroy(KilnTuner* handle) noexcept {
  const std::unique_ptr<TunerBox<T>> owned(tuner_box<T>(handle));  // NULL is a no-op
}

}  // namespace detail

// The KilnTunerApi of tuner class T (see the top of this file); static, valid
// for the life of the process. Return it from a component's
// `static const KilnTunerApi* tuner()`.
template <class T>
const KilnTunerApi* tuner_table() {
  static const KilnTunerApi api{sizeof(KilnTunerApi),
                                0,
                                &detail::tuner_create<T>,
                                &detail::tuner_suggest<T>,
                                &detail::tuner_observe<T>,
                                &detail::tuner_should_stop<T>,
                                &detail::tuner_destroy<T>,
                                detail::observe_objectives_entry<T>()};
  return &api;
}

}  // namespace kiln

#endif  // KILN_SDK_TUNER_HPP

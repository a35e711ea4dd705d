#include "tuning_controller.hpp"

#include <kiln/host/step_context.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

namespace kiln::host {

namespace {

// A tuner's error as text (taking ownership of it).
std::string message_of(KilnError* error) {
  const KilnHostApi* host = host_api();
  const std::string message = host->error_message(error);
  host->error_release(error);
  return message;
}

}  // namespace

TuningController::TuningController(const TuneSpec& spec, const KilnTunerApi* api, const Json& config)
    : spec_(spec), api_(api) {
  if (KilnError* error = api_->create(host_api(), config.dump().c_str(), &tuner_)) {
    const std::string message = message_of(error);
    // A tuner names the field first ("space.lr.low: ..."): point at it.
    const auto colon = message.find(':');
    const SourcePos at = spec.position_of(colon == std::string::npos ? "" : message.substr(0, colon));
    throw std::runtime_error(at.str() + ": tuner " + spec.tuner + ": " + message);
  }
}

TuningController::~TuningController() {
  if (tuner_ != nullptr) api_->destroy(tuner_);
}

void TuningController::check(KilnError* error) const {
  if (error != nullptr) throw std::runtime_error("tuner: " + message_of(error));
}

std::vector<SuggestedTrial> TuningController::next(int active, int parallel) {
  if (exhausted_) return {};
  const int room = std::min(parallel - active, spec_.max_trials - suggested_);
  if (spec_.max_trials <= suggested_) exhausted_ = true;
  if (room <= 0) return {};
  const char* text = nullptr;
  check(api_->suggest(tuner_, static_cast<uint32_t>(room), &text));
  const Json trials = Json::parse(text == nullptr ? "[]" : text);
  if (!trials.is_array()) throw std::runtime_error("tuner: suggest returned " + trials.dump() + ", not a list");
  if (trials.empty()) exhausted_ = true;
  std::vector<SuggestedTrial> out;
  for (const Json& trial : trials) {
    if (suggested_ >= spec_.max_trials) break;  // a tuner that ignored max_count
    out.push_back(SuggestedTrial{trial.at("trial").get<int>(), trial.at("parameters")});
    if (out.back().id < 0 || !out.back().parameters.is_object())
      throw std::runtime_error("tuner: suggest returned a bad trial: " + trial.dump());
    ++suggested_;
  }
  return out;
}

bool TuningController::on_metric(int unit, int trial, const std::string& name, double value, int64_t at,
                                 bool may_stop) {
  if (name != spec_.metric || !std::isfinite(value)) return false;
  curves_[unit][at] = value;
  if (!may_stop) return false;
  int32_t stop = 0;
  check(api_->observe(tuner_, trial, at, value, 0, nullptr));
  check(api_->should_stop(tuner_, trial, &stop));
  return stop != 0;
}

Curve TuningController::restore(int unit, const Json& stored) {
  Curve replay;
  if (curves_.count(unit) || !stored.is_object()) return replay;
  for (const auto& [at, value] : stored.items())
    if (value.is_number()) {
      replay[std::stoll(at)] = value.get<double>();
      curves_[unit][std::stoll(at)] = value.get<double>();
    }
  return replay;
}

void TuningController::finished(int trial, StepStatus outcome, double value, const Curve& replay) {
  const StepStatus status = is_success(outcome) ? StepStatus::succeeded : outcome;
  for (const auto& [at, v] : replay) check(api_->observe(tuner_, trial, at, v, 0, nullptr));
  check(api_->observe(tuner_, trial, -1, value, 1, Json(std::string(to_string(status))).dump().c_str()));
  if (status == StepStatus::failed && ++failed_ > spec_.max_failed_trials)
    fail(std::to_string(failed_) + " trials failed (max_failed_trials: " + std::to_string(spec_.max_failed_trials) +
         ")");
}

void TuningController::fail(const std::string& why) {
  exhausted_ = true;
  if (failure_.empty()) failure_ = why;
}

Json TuningController::curve_json(int unit) const {
  const auto found = curves_.find(unit);
  if (found == curves_.end()) return nullptr;
  Json out = Json::object();
  for (const auto& [at, value] : found->second) out[std::to_string(at)] = value;
  return out;
}

Curve TuningController::curve_of(const std::vector<int>& units) const {
  Curve curve;
  for (const int u : units) {
    const auto found = curves_.find(u);
    if (found == curves_.end()) continue;
    for (const auto& [at, value] : found->second) curve[at] = value;
  }
  return curve;
}

}  // namespace kiln::host

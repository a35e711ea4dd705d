#include "tuning_controller.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kiln::host {

namespace {

// A tuner call: a TunerError (the tuner's own failure or a bad answer) becomes
// the engine's message, prefixed "tuner: ".
template <typename Call>
auto tuner_call(Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const TunerError& e) {
    throw std::runtime_error(std::string("tuner: ") + e.what());
  }
}

TrialStatus trial_status_of(StepStatus outcome) {
  switch (outcome) {
    case StepStatus::succeeded:
    case StepStatus::cached:
      return TrialStatus::Succeeded;
    case StepStatus::failed:
      return TrialStatus::Failed;
    case StepStatus::early_stopped:
      return TrialStatus::EarlyStopped;
    default:
      throw std::logic_error("a trial cannot end " + std::string(to_string(outcome)));
  }
}

// Creates the tuner; its configuration error ("space.lr.low: ...") points at
// the field it names in the spec.
TunerHandle create_tuner(const TuneSpec& spec, const KilnTunerApi* api, const Json& config) {
  try {
    return TunerHandle(api, config);
  } catch (const TunerError& e) {
    const std::string message = e.what();
    const auto colon = message.find(':');
    const SourcePos at = spec.position_of(colon == std::string::npos ? "" : message.substr(0, colon));
    throw std::runtime_error(at.str() + ": tuner " + spec.tuner + ": " + message);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(spec.position_of("").str() + ": tuner " + spec.tuner + ": " + e.what());
  }
}

}  // namespace

TuningController::TuningController(const TuneSpec& spec, const KilnTunerApi* api, const Json& config,
                                   const std::filesystem::path& log)
    : spec_(spec), tuner_(create_tuner(spec, api, config)) {
  replay(TunerLog::read(log), log.string());
  log_ = std::make_unique<TunerLog>(log);
}

void TuningController::replay(const std::vector<TunerRecord>& records, const std::string& name) {
  size_t line = 0;
  for (const TunerRecord& r : records) {
    ++line;
    if (r.kind == TunerRecord::Kind::Observe) {
      tuner_call([&] {
        if (r.final && !r.values.empty()) tuner_.observe_objectives(r.trial, r.values);
        tuner_.observe(r.trial, r.step, r.value, r.final, r.status);
      });
      if (r.final) {
        replayed_final_[r.trial] = r.status;
        if (r.status == TrialStatus::Failed) ++failed_;
      }
      continue;
    }
    const auto again = tuner_call([&] { return tuner_.suggest(static_cast<uint32_t>(r.trials.size())); });
    for (size_t i = 0; i < r.trials.size(); ++i)
      if (i >= again.size() || again[i].id != r.trials[i].id || again[i].parameters != r.trials[i].parameters)
        throw std::runtime_error(name + ":" + std::to_string(line) + ": the tuner, replayed, suggested " +
                                 (i < again.size() ? "trial " + std::to_string(again[i].id) + " " + again[i].parameters.dump()
                                                   : std::string("nothing")) +
                                 " where the log has trial " + std::to_string(r.trials[i].id) + " " +
                                 r.trials[i].parameters.dump() + " (was the tuner or its config changed?)");
    suggested_ += static_cast<int>(r.trials.size());
    replayed_.insert(replayed_.end(), r.trials.begin(), r.trials.end());
  }
}

void TuningController::observe(int trial, int64_t step, double value, bool final, TrialStatus status,
                               const std::vector<double>& values) {
  if (final && !values.empty()) tuner_.observe_objectives(trial, values);
  tuner_.observe(trial, step, value, final, status);
  TunerRecord r;
  r.trial = trial;
  r.step = step;
  r.value = value;
  r.final = final;
  r.status = status;
  if (final) r.values = values;
  log_->append(r);
}

std::vector<SuggestedTrial> TuningController::next(int active, int parallel) {
  if (!replayed_.empty()) return std::move(replayed_);
  if (exhausted_) return {};
  const int room = std::min(parallel - active, spec_.max_trials - suggested_);
  if (spec_.max_trials <= suggested_) exhausted_ = true;
  if (room <= 0) return {};
  std::vector<SuggestedTrial> out = tuner_call([&] { return tuner_.suggest(static_cast<uint32_t>(room)); });
  // Fewer than asked for, even none, while trials run means "later": a
  // model-based sampler waits for the trials its next suggestion learns from
  // (history_lag), PBT for a round to end. None with none running: done.
  if (out.empty() && active == 0) exhausted_ = true;
  TunerRecord r;
  r.kind = TunerRecord::Kind::Suggest;
  r.trials = out;
  if (!out.empty()) log_->append(r);
  suggested_ += static_cast<int>(out.size());
  return out;
}

bool TuningController::on_metric(int unit, int trial, const std::string& name, double value, int64_t at,
                                 bool may_stop) {
  if (name != spec_.metric || !std::isfinite(value)) return false;
  // What a trial reports after the tuner stopped it depends on how soon the
  // stop reached it: its curve (and an early-stopped trial's value) ends
  // where the tuner decided.
  if (stopped_units_.count(unit)) return false;
  curves_[unit][at] = value;
  if (!may_stop) return false;
  // A trial the log says ended, run again (early-stopped trials commit
  // nothing): the tuner knows its outcome; stopped then, stopped now.
  bool stop = false;
  if (const auto ended = replayed_final_.find(trial); ended != replayed_final_.end())
    stop = ended->second == TrialStatus::EarlyStopped;
  else
    stop = tuner_call([&] {
      observe(trial, at, value, false, TrialStatus::Running);
      return tuner_.should_stop(trial);
    });
  if (stop) stopped_units_.insert(unit);
  return stop;
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

void TuningController::finished(int trial, StepStatus outcome, double value, const Curve& replay,
                                const std::vector<double>& values) {
  const TrialStatus status = trial_status_of(outcome);
  if (replayed_final_.count(trial)) return;  // told before the resume, failures counted then
  tuner_call([&] {
    for (const auto& [at, v] : replay) observe(trial, at, v, false, TrialStatus::Running);
    observe(trial, -1, value, true, status, values);
  });
  if (status == TrialStatus::Failed && ++failed_ > spec_.max_failed_trials)
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

#include <kiln/host/run_events.hpp>

#include <cmath>

namespace kiln::host {
namespace {

using namespace events;

Json unit_json(const UnitName& unit) {
  Json j{{"step", unit.step}, {"unit", unit.display}};
  if (!unit.key.empty()) j["key"] = unit.key;
  return j;
}

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

// {step: [upstream steps]} for every step of a run_started event.
Json needs_json(const RunStarted& e) {
  Json needs = Json::object();
  for (size_t i = 0; i < e.steps.size(); ++i) needs[e.steps[i]] = i < e.needs.size() ? Json(e.needs[i]) : Json::array();
  return needs;
}

struct Encoder {
  Json operator()(const RunStarted& e) const {
    return {{"run", e.run_id},     {"pipeline", e.pipeline}, {"file", e.file},  {"executor", e.executor},
            {"parameters", e.parameters}, {"resumed", e.resumed}, {"steps", e.steps}, {"needs", needs_json(e)}};
  }
  Json operator()(const RunFinished& e) const {
    Json j{{"status", to_string(e.status)}, {"duration_seconds", e.duration_seconds}};
    if (!e.message.empty()) j["message"] = e.message;
    return j;
  }
  Json operator()(const StepChanged& e) const {
    Json j{{"step", e.step}, {"status", to_string(e.status)}};
    if (!e.message.empty()) j["message"] = e.message;
    if (!e.outputs.is_null()) j["outputs"] = e.outputs;
    if (e.items) j["items"] = *e.items;
    return j;
  }
  Json operator()(const AttemptStarted& e) const {
    Json j = unit_json(e.unit);
    j["attempt"] = e.attempt;
    j["executor"] = e.executor;
    j["dir"] = e.dir;
    if (!e.image.empty()) j["image"] = e.image;
    if (!e.gpus.empty()) j["gpus"] = e.gpus;
    if (!e.item.is_null()) j["item"] = e.item;
    j["parameters"] = e.parameters;
    j["inputs"] = e.inputs;
    return j;
  }
  Json operator()(const AttemptEnded& e) const {
    Json j = unit_json(e.unit);
    j["attempt"] = e.attempt;
    j["status"] = to_string(e.status);
    if (e.failure != FailureClass::none) j["failure"] = to_string(e.failure);
    if (!e.message.empty()) j["message"] = e.message;
    j["duration_seconds"] = e.duration_seconds;
    return j;
  }
  Json operator()(const RetryScheduled& e) const {
    Json j = unit_json(e.unit);
    j["attempt"] = e.attempt;
    j["delay_seconds"] = e.delay_seconds;
    j["message"] = e.message;
    return j;
  }
  Json operator()(const CacheDecided& e) const {
    Json j = unit_json(e.unit);
    j["key"] = e.key;
    j["cache"] = to_string(e.use);
    if (!e.reason.empty()) j["reason"] = e.reason;
    if (!e.parameters.is_null()) j["parameters"] = e.parameters;
    if (!e.inputs.is_null()) j["inputs"] = e.inputs;
    return j;
  }
  Json operator()(const UnitFinished& e) const {
    Json j = unit_json(e.unit);
    j["status"] = to_string(e.status);
    if (!e.message.empty()) j["message"] = e.message;
    if (is_success(e.status)) {
      j["outputs"] = e.outputs;
      Json artifacts = Json::object();
      for (const auto& a : e.artifacts) {
        artifacts[a.name] = {{"path", a.path}};
        if (!a.digest.empty()) artifacts[a.name]["digest"] = a.digest;
      }
      j["artifacts"] = artifacts;
    }
    if (e.resumed) j["resumed"] = true;
    return j;
  }
  Json operator()(const StopRequested& e) const {
    Json j = unit_json(e.unit);
    j["reason"] = e.reason;
    return j;
  }
  Json operator()(const CancelRequested& e) const { return {{"requests", e.requests}}; }
  Json operator()(const Progress& e) const {
    Json j = unit_json(e.unit);
    j["fraction"] = number_or_null(e.fraction);
    if (!e.message.empty()) j["message"] = e.message;
    return j;
  }
  Json operator()(const Metric& e) const {
    Json j = unit_json(e.unit);
    j["name"] = e.name;
    j["value"] = number_or_null(e.value);
    j["at"] = e.step;
    return j;
  }
  Json operator()(const Log& e) const {
    Json j = unit_json(e.unit);
    j["level"] = e.level;
    j["message"] = e.message;
    return j;
  }
  Json operator()(const TrialFinished& e) const {
    Json j{{"step", e.step}, {"trial", e.trial}, {"status", to_string(e.status)}, {"parameters", e.parameters}};
    j["value"] = e.value ? Json(*e.value) : Json(nullptr);
    return j;
  }
  Json operator()(const TrialsRecorded& e) const {
    Json j{{"step", e.step}, {"path", e.path}};
    if (!e.digest.empty()) j["digest"] = e.digest;
    return j;
  }
  Json operator()(const LogGrew& e) const {
    Json j = unit_json(e.unit);
    j["attempt"] = e.attempt;
    j["file"] = e.file;
    j["bytes"] = e.bytes;
    return j;
  }
};

struct Namer {
  std::string_view operator()(const RunStarted&) const { return "run_started"; }
  std::string_view operator()(const RunFinished&) const { return "run_finished"; }
  std::string_view operator()(const StepChanged&) const { return "step_changed"; }
  std::string_view operator()(const AttemptStarted&) const { return "attempt_started"; }
  std::string_view operator()(const AttemptEnded&) const { return "attempt_ended"; }
  std::string_view operator()(const RetryScheduled&) const { return "retry_scheduled"; }
  std::string_view operator()(const CacheDecided&) const { return "cache_decided"; }
  std::string_view operator()(const UnitFinished&) const { return "unit_finished"; }
  std::string_view operator()(const StopRequested&) const { return "stop_requested"; }
  std::string_view operator()(const CancelRequested&) const { return "cancel_requested"; }
  std::string_view operator()(const Progress&) const { return "progress"; }
  std::string_view operator()(const Metric&) const { return "metric"; }
  std::string_view operator()(const Log&) const { return "log"; }
  std::string_view operator()(const TrialFinished&) const { return "trial_finished"; }
  std::string_view operator()(const TrialsRecorded&) const { return "trials_recorded"; }
  std::string_view operator()(const LogGrew&) const { return "log_grew"; }
};

}  // namespace

std::string_view events::to_string(CacheUse use) {
  switch (use) {
    case CacheUse::hit: return "hit";
    case CacheUse::miss: return "miss";
    case CacheUse::off: return "off";
  }
  return "off";
}

std::string_view event_type(const RunEvent& event) { return std::visit(Namer{}, event); }

Json to_json(const RunEvent& event) {
  Json j = std::visit(Encoder{}, event);
  j["type"] = event_type(event);
  return j;
}

}  // namespace kiln::host

#include <unistd.h>
#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/run_record.hpp>

#include <algorithm>
#include <type_traits>

namespace kiln::host {
namespace fs = std::filesystem;

RunRecord::RunRecord(fs::path run_dir) : run_dir_(std::move(run_dir)) {}

void RunRecord::on_event(uint64_t, const RunEvent& event) {
  std::visit(*this, event);
}

void RunRecord::operator()(const events::RunStarted& e) {
  record_ = Json{{"id", e.run_id},
                 {"pipeline", {{"name", e.pipeline}, {"file", e.file}}},
                 {"parameters", e.parameters},
                 {"executor", e.executor},
                 {"status", to_string(RunStatus::running)},
                 {"started_at", wall_clock_now()},
                 {"host", host_name()},
                 {"pid", ::getpid()},
                 {"steps", Json::object()}};
  // The graph, for viewers: every step in plan order with the steps it waits for.
  Json plan = Json::array();
  for (size_t i = 0; i < e.steps.size(); ++i)
    plan.push_back(Json{{"name", e.steps[i]}, {"needs", i < e.needs.size() ? Json(e.needs[i]) : Json::array()}});
  record_["plan"] = std::move(plan);
  if (e.resumed) {
    // A resumed run keeps its start time and, for the steps it keeps, their
    // attempts (so `kiln logs` still finds them), from the last run.json the
    // dead host managed to write (it may be 100 ms stale: the database decides
    // what is kept, this is only for reading).
    record_["resumed"] = true;
    try {
      previous_ = Json::parse(read_file(run_dir_ / "run.json"));
      record_["started_at"] = previous_.value("started_at", record_["started_at"].get<std::string>());
    } catch (const std::exception&) {  // never written, or unreadable: start afresh
      previous_ = Json::object();
    }
  }
  for (const auto& step : e.steps) record_["steps"][step] = {{"status", to_string(StepStatus::pending)}};
  index_steps();
  dirty_ = true;
  flush(true);
}

void RunRecord::operator()(const events::RunFinished& e) {
  record_["status"] = to_string(e.status);
  record_["finished_at"] = wall_clock_now();
  record_["duration_seconds"] = e.duration_seconds;
  if (!e.message.empty()) record_["message"] = e.message;
  dirty_ = true;
}

void RunRecord::operator()(const events::StepChanged& e) {
  Json& record = step_record(e.step);
  record["status"] = to_string(e.status);
  if (!e.message.empty()) record["message"] = e.message;
  if (!e.outputs.is_null()) record["outputs"] = e.outputs;
  if (e.items) record["items"] = *e.items;
  dirty_ = true;
}

void RunRecord::operator()(const events::AttemptStarted& e) {
  Json& unit = unit_record(e.unit, e.item);
  Json attempt{{"attempt", e.attempt},
               {"status", to_string(StepStatus::running)},
               {"started_at", wall_clock_now()},
               {"executor", e.executor},
               {"dir", e.dir}};
  if (!e.image.empty()) attempt["image"] = e.image;
  if (!e.gpus.empty()) attempt["gpus"] = e.gpus;
  unit["attempts"].push_back(std::move(attempt));
  unit["status"] = to_string(StepStatus::running);
  unit["parameters"] = e.parameters;
  unit["inputs"] = e.inputs;
  dirty_ = true;
}

void RunRecord::operator()(const events::AttemptEnded& e) {
  Json& attempts = unit_record(e.unit, nullptr)["attempts"];
  if (attempts.empty()) return;
  Json& attempt = attempts.back();
  attempt["finished_at"] = wall_clock_now();
  attempt["duration_seconds"] = e.duration_seconds;
  attempt["status"] = to_string(e.status);
  if (e.failure != FailureClass::none) {
    attempt["failure"] = to_string(e.failure);
    attempt["message"] = e.message;
  }
  dirty_ = true;
}

void RunRecord::operator()(const events::RetryScheduled& e) {
  unit_record(e.unit, nullptr)["status"] = to_string(StepStatus::pending);
  dirty_ = true;
}

void RunRecord::operator()(const events::CacheDecided& e) {
  Json cache{{"key", e.key}, {"status", to_string(e.use)}};
  if (e.use != events::CacheUse::hit) cache["reason"] = e.reason;
  Json& unit = unit_record(e.unit, e.item);
  unit["cache"] = cache;
  if (!e.parameters.is_null()) unit["parameters"] = e.parameters;
  if (!e.inputs.is_null()) unit["inputs"] = e.inputs;
  dirty_ = true;
}

void RunRecord::operator()(const events::UnitFinished& e) {
  Json& record = unit_record(e.unit, e.item);
  if (e.resumed) {
    record["resumed"] = "kept from before the resume";
    const Json* before = previous_unit_record(e.unit);
    if (before)
      for (const char* field : {"attempts", "parameters", "inputs"})
        if (before->contains(field)) record[field] = (*before)[field];
  }
  record["status"] = to_string(e.status);
  if (!e.message.empty()) record["message"] = e.message;
  if (is_success(e.status)) {
    record["outputs"] = e.outputs;
    Json artifacts = Json::object(), digests = Json::object();
    for (const auto& a : e.artifacts) {
      artifacts[a.name] = a.path;
      if (!a.digest.empty()) digests[a.name] = a.digest;
    }
    record["artifacts"] = artifacts;
    if (!digests.empty()) record["digests"] = digests;
    if (!e.metadata.empty()) record["artifact_metadata"] = e.metadata;
  }
  dirty_ = true;
}

void RunRecord::operator()(const events::Metric& e) {
  unit_record(e.unit, nullptr)["metrics"][e.name] = std::isfinite(e.value) ? Json(e.value) : Json(nullptr);
  dirty_ = true;
}

void RunRecord::operator()(const events::TrialsRecorded& e) {
  Json& record = step_record(e.step);
  if (!e.digest.empty()) record["digests"]["trials"] = e.digest;
  record["trials"] = e.path;
  dirty_ = true;
}

void RunRecord::index_steps() {
  step_index_.clear();
  const auto& steps = record_["steps"].get_ref<const Json::object_t&>();
  size_t position = 0;
  for (auto it = steps.begin(); it != steps.end(); ++it) step_index_[it->first] = position++;
}

namespace {

// The entry of `step` in a steps object (const or not), at the indexed position.
template <typename J>
J* indexed_entry(J& steps, const std::unordered_map<std::string, size_t>& index, const std::string& step) {
  const auto found = index.find(step);
  if (found == index.end() || !steps.is_object() || found->second >= steps.size()) return nullptr;
  auto& object = steps.template get_ref<std::conditional_t<std::is_const_v<J>, const Json::object_t&, Json::object_t&>>();
  const auto it = object.begin() + static_cast<std::ptrdiff_t>(found->second);
  return it->first == step ? &it->second : nullptr;
}

}  // namespace

const Json* RunRecord::find_step_record(const std::string& step) const {
  return record_.contains("steps") ? indexed_entry(record_["steps"], step_index_, step) : nullptr;
}

Json& RunRecord::step_record(const std::string& step) {
  if (Json* known = indexed_entry(record_["steps"], step_index_, step)) return *known;
  record_["steps"][step] = Json::object();  // a step the run did not list at its start
  index_steps();
  return *indexed_entry(record_["steps"], step_index_, step);
}

Json& RunRecord::unit_record(const UnitName& unit, const Json& item) {
  Json& step = step_record(unit.step);
  if (unit.item_index < 0) {
    if (!step.contains("attempts")) step["attempts"] = Json::array();
    return step;
  }
  Json& entry = step["units"][unit.key];
  if (!entry.contains("attempts")) entry = Json{{"item", item}, {"attempts", Json::array()}};
  return entry;
}

const Json* RunRecord::previous_unit_record(const UnitName& unit) const {
  if (!previous_.contains("steps") || !previous_["steps"].contains(unit.step)) return nullptr;
  const Json* before = &previous_["steps"][unit.step];
  if (unit.item_index < 0) return before;
  return before->contains("units") && (*before)["units"].contains(unit.key) ? &(*before)["units"][unit.key] : nullptr;
}

double RunRecord::attempt_seconds(const UnitName& unit) const {
  const Json* found = find_step_record(unit.step);
  if (found == nullptr) return 0;
  const Json& step = *found;
  const Json* entry = &step;
  if (unit.item_index >= 0) {
    if (!step.contains("units") || !step["units"].contains(unit.key)) return 0;
    entry = &step["units"][unit.key];
  }
  double total = 0;
  for (const auto& attempt : entry->value("attempts", Json::array())) total += attempt.value("duration_seconds", 0.0);
  return total;
}

void RunRecord::flush(bool final) {
  const auto now = std::chrono::steady_clock::now();
  if (!dirty_ || (!final && now - last_save_ < interval_)) return;
  kill_point("run-json");
  // Snapshots of a running run are replaced within 100 ms: atomic, not
  // fsynced (the store is what resume trusts); the ended run's is fsynced.
  const bool ended = record_.value("status", "") != to_string(RunStatus::running);
  write_file_atomic(run_dir_ / "run.json", record_.dump(2, ' ', false, Json::error_handler_t::replace),
                    0644, ended ? FileSync::durable : FileSync::atomic);
  dirty_ = false;
  last_save_ = std::chrono::steady_clock::now();
  // Writing it may take at most a tenth of the time: a huge run is saved less often.
  interval_ = std::max<std::chrono::steady_clock::duration>(std::chrono::milliseconds(100), (last_save_ - now) * 10);
}

}  // namespace kiln::host

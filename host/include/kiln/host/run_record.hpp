// run.json: a readable snapshot of a run (what `kiln runs show` and `kiln
// logs` read), built from the run's events. It is rewritten atomically, at
// most every 100 ms while the run goes on (less often for a run so large that
// writing it takes more than a tenth of that) and always at its end; the
// database, not this file, is what resume and the cache trust.
#pragma once

#include <kiln/host/run_events.hpp>

#include <chrono>
#include <filesystem>
#include <unordered_map>

namespace kiln::host {

class RunRecord : public RunObserver {
 public:
  explicit RunRecord(std::filesystem::path run_dir);
  void on_event(uint64_t seq, const RunEvent& event) override;
  void flush(bool final) override;
  const Json& json() const { return record_; }
  // The recorded duration of a unit's attempts, those before a resume included.
  double attempt_seconds(const UnitName& unit) const;

  // Handlers, one per event that changes the record.
  void operator()(const events::RunStarted& e);
  void operator()(const events::RunFinished& e);
  void operator()(const events::StepChanged& e);
  void operator()(const events::AttemptStarted& e);
  void operator()(const events::AttemptEnded& e);
  void operator()(const events::RetryScheduled& e);
  void operator()(const events::CacheDecided& e);
  void operator()(const events::UnitFinished& e);
  void operator()(const events::Metric& e);
  void operator()(const events::TrialsRecorded& e);
  template <typename Other>
  void operator()(const Other&) {}

 private:
  Json& unit_record(const UnitName& unit, const Json& item);
  // A step's entry in record_["steps"] (a JSON object is a vector of pairs:
  // found through an index, not a scan, so an event costs the same in a
  // 10,000-step run as in a 10-step one).
  Json& step_record(const std::string& step);
  const Json* find_step_record(const std::string& step) const;
  void index_steps();
  const Json* previous_unit_record(const UnitName& unit) const;

  std::filesystem::path run_dir_;
  Json record_ = Json::object();
  Json previous_ = Json::object();  // resume: the run.json the dead host left
  std::unordered_map<std::string, size_t> step_index_;  // step -> position in record_["steps"]
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_save_{};
  std::chrono::steady_clock::duration interval_ = std::chrono::milliseconds(100);
};

}  // namespace kiln::host

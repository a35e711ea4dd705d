// run.json: a readable snapshot of a run (what `kiln runs show` and `kiln
// logs` read), built from the run's events. It is rewritten atomically, at
// most every 100 ms while the run goes on and always at its end; the
// database, not this file, is what resume and the cache trust.
#pragma once

#include <kiln/host/run_events.hpp>

#include <chrono>
#include <filesystem>

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
  const Json* previous_unit_record(const UnitName& unit) const;

  std::filesystem::path run_dir_;
  Json record_ = Json::object();
  Json previous_ = Json::object();  // resume: the run.json the dead host left
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_save_{};
};

}  // namespace kiln::host

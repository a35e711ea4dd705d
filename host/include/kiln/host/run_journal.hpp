// What the engine records in the workspace's store while a run goes on:
// the run and its host, every attempt, committed outputs and their lineage,
// metrics, and cache entries. Also answers the two questions that let a step
// not run: is there an exact cache hit, and (on resume) did it finish before.
// Used from the engine's scheduler thread only.
#pragma once

#include <kiln/host/executor.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/run_events.hpp>
#include <kiln/host/run_status.hpp>
#include <kiln/host/store.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kiln::host {

// A finished unit's results as recorded.
struct StoredOutputs {
  StepStatus status = StepStatus::succeeded;  // succeeded or cached
  Json outputs = Json::object();    // output parameters
  Json artifacts = Json::object();  // output name -> digest
  Json metadata = Json::object();   // output name -> metadata
};

struct CacheDecision {
  bool enabled = false;  // whether the step may use and create cache entries
  std::string key;
  Json parts = Json::object();
  Json parameters = Json::object();  // the resolved parameters, recorded for lineage
  std::optional<StoredOutputs> hit;
  std::string reason;  // why it did not hit, for `kiln runs show`
};

// A unit (a step, or one loop item) as the journal names it.
struct UnitRef {
  const PlannedStep* step = nullptr;
  std::string name;  // "train" or "train[2]"
  int item_index = -1;
  // The pipeline step the unit belongs to, where it is not `step`: a trial
  // template's step (planned on its own) belongs to its tuning step.
  const PlannedStep* owner = nullptr;
};

struct RunHeader {
  std::string id, pipeline, spec_file, spec_text, executor;
  std::filesystem::path run_dir;
  Json parameters = Json::object();
  Json options = Json::object();  // how it was started (jobs, executor, no_cache), for resume
};

// Group commit: what a unit's end records (its outputs, lineage, attempt
// and cache entry; a failure; a cache hit) waits in memory and is written
// with the records of other units that end close together, in one fsynced
// transaction. The group is written (see docs/architecture.md, "Durability"):
//   - before an attempt starts that could read it: a unit of a step
//     downstream of a waiting unit (a trial template's step: of its tuning
//     step, UnitRef::owner), another unit of the same step unless it is a
//     loop item or another trial of a tuning step (a trial template's next
//     step waits for its own trial's records);
//   - before population-based training removes old rounds' checkpoints;
//   - before a cache lookup for a key a waiting unit is about to store;
//   - at a scheduler pause once the oldest waiting record is `window` old,
//     or when no attempt is running (nothing else will end soon);
//   - when `max_group` records wait, and at the run's end.
// A unit whose record was lost to a crash before it was written simply runs
// again on resume; nothing downstream of it ran.
struct GroupCommit {
  std::chrono::milliseconds window{100};
  size_t max_group = 1000;
  // KILN_GROUP_COMMIT_MS overrides the window (0: one transaction per unit).
  static GroupCommit from_environment();
};

class RunJournal {
 public:
  RunJournal(Store& store, bool use_cache, GroupCommit group = GroupCommit::from_environment());

  // Records a new run, or (resume) takes over an existing one: its running
  // attempts are marked interrupted and its finished units are kept.
  void begin_run(const RunHeader& header, bool resume);
  void finish_run(RunStatus status, const std::string& message, double duration_seconds);

  // Resume: the recorded result of a unit that finished before, whose
  // artifacts are all still in the store.
  std::optional<StoredOutputs> kept(const std::string& unit) const;
  int last_attempt(const std::string& unit) const;

  CacheDecision decide(const UnitRef& unit, const Json& parameters, const std::map<std::string, InputArtifact>& inputs);

  void attempt_started(const UnitRef& unit, int attempt, const std::string& executor, const std::string& dir);
  void attempt_ended(const UnitRef& unit, int attempt, StepStatus status, FailureClass failure,
                     const std::string& message, double duration_seconds);
  // Moves a successful attempt's outputs into the artifact store and records
  // them, their lineage, the attempt and the cache entry in one transaction.
  StoredOutputs commit(const UnitRef& unit, int attempt, const std::filesystem::path& outputs_dir,
                       const AttemptResult& result, const CacheDecision& cache,
                       const std::map<std::string, InputArtifact>& inputs, double duration_seconds);
  // An artifact the engine itself makes for a step (a tuning step's trials
  // table): moves `dir` into the store and records it as the step's output
  // `output`, with its lineage. Returns its digest.
  std::string commit_step_artifact(const UnitRef& step, const std::string& output, const std::string& type,
                                   const std::string& description, const std::filesystem::path& dir,
                                   const Json& metadata, const std::map<std::string, InputArtifact>& inputs);
  void record_cache_hit(const UnitRef& unit, int attempt, const CacheDecision& cache,
                        const std::map<std::string, InputArtifact>& inputs);
  // A unit (or a step without units) that ended without outputs.
  void unit_ended(const UnitRef& unit, StepStatus status, const std::string& message);
  void metric(const std::string& unit, const std::string& name, int64_t step, double value, double time);

  // Writes the waiting group now (one transaction; fsynced).
  void write_group();
  // A scheduler pause: writes the group when it is due (see GroupCommit).
  void pause(bool attempts_running);
  size_t waiting() const { return group_.size(); }

  std::filesystem::path artifact_path(const std::string& digest) const { return store_.artifacts.path_of(digest); }

 private:
  void write_unit(const UnitRef& unit, StepStatus status, const std::string& message,
                  const StoredOutputs* outputs, const CacheDecision* cache);
  void write_inputs(const UnitRef& unit, const std::map<std::string, InputArtifact>& inputs);
  void flush_metrics();
  // Updates the run's heartbeat_at, at most once per kHeartbeatInterval.
  void heartbeat();
  // Takes the waiting writes (to run in a transaction), and after it commits,
  // passes the kill points of a written group.
  std::vector<std::function<void()>> take_group();
  void group_committed(int recorded_before);
  // Queues the writes of a unit's end; `step` is the step whose dependents
  // must not start before it is written.
  void enqueue(const UnitRef& unit, std::string cache_key, std::function<void()> write);
  // Whether an attempt of `unit` could read a waiting record.
  bool depends_on_waiting(const UnitRef& unit) const;

  Store& store_;
  bool use_cache_;
  std::string run_id_;
  std::map<std::string, StoredOutputs> kept_;
  std::map<std::string, int> last_attempt_;
  std::vector<Json> metrics_;  // written with the next transaction
  GroupCommit policy_;
  std::vector<std::function<void()>> group_;  // waiting writes, in order
  std::set<std::string> group_steps_;         // the steps ("tune" of "tune[3.train]") they belong to
  std::set<std::pair<std::string, int>> group_items_;  // their steps' items and trials (("tune", 3))
  std::set<std::string> group_keys_;          // cache keys they store
  std::chrono::steady_clock::time_point oldest_{};
  int recorded_steps_ = 0;  // successful units written so far (the step-recorded kill point)
  static constexpr std::chrono::seconds kHeartbeatInterval{1};
  std::chrono::steady_clock::time_point next_heartbeat_{};
};

// Writes the events the store keeps: attempts begun and ended, units that
// ended without outputs (a success is recorded by RunJournal::commit, with
// its artifacts), metrics and the run's end.
class JournalObserver : public RunObserver {
 public:
  explicit JournalObserver(RunJournal& journal) : journal_(journal) {}
  void on_event(uint64_t seq, const RunEvent& event) override;
  // A pause writes the group when due; the run's end is written at the final
  // flush, after run.json, with whatever waits.
  void flush(bool final) override;

 private:
  RunJournal& journal_;
  std::optional<events::RunFinished> finished_;
  int running_ = 0;  // attempts started and not ended
};

}  // namespace kiln::host

// The engine's record in the store. The order of effects is chosen for
// crashes: outputs are durable in the artifact store before the row that names
// them commits, so a recorded step always has its artifacts, and an
// unrecorded one simply runs again. The records of units that end close
// together are written in one transaction (group commit, see GroupCommit).
#include <kiln/host/cache_key.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/run_journal.hpp>

#include <cmath>
#include <cstdlib>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

Json parse_or(const Json& text, Json fallback) {
  if (!text.is_string() || text.get<std::string>().empty()) return fallback;
  return Json::parse(text.get<std::string>());
}

// The step a unit belongs to: "tune" for "tune[3.train]".
std::string step_of(const std::string& unit) {
  return unit.substr(0, unit.find('['));
}

StoredOutputs outputs_from_row(const Json& row, StepStatus status) {
  StoredOutputs out;
  out.status = status;
  out.outputs = parse_or(row["outputs"], Json::object());
  out.artifacts = parse_or(row["artifacts"], Json::object());
  out.metadata = parse_or(row["metadata"], Json::object());
  return out;
}

}  // namespace

GroupCommit GroupCommit::from_environment() {
  GroupCommit group;
  if (const char* ms = std::getenv("KILN_GROUP_COMMIT_MS")) {
    char* end = nullptr;
    const long value = std::strtol(ms, &end, 10);
    if (end != ms && *end == '\0' && value >= 0) group.window = std::chrono::milliseconds(value);
  }
  return group;
}

// Durability: a group of finished units' records and the run's start and end
// are fsynced, because resume trusts them. An attempt's start only survives a
// killed process (it is written before the attempt runs, so a resume marks it
// interrupted); lost to a power cut, it costs a rerun of an unfinished step.
// An attempt that could read a waiting record is written in the group's own
// transaction (fsynced, one commit instead of two).
RunJournal::RunJournal(Store& store, bool use_cache, GroupCommit group)
    : store_(store), use_cache_(use_cache), policy_(group) {}

void RunJournal::begin_run(const RunHeader& header, bool resume) {
  run_id_ = header.id;
  const HostIdentity me = current_host_identity();
  store_.db.transaction([&] {
    if (!resume) {
      store_.db.execute(
          "INSERT INTO runs (id, pipeline, spec_file, spec_text, parameters, executor, run_dir, status, started_at,"
          " host, pid, boot_id, process_start, heartbeat_at, options) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
          {header.id, header.pipeline, header.spec_file, header.spec_text, header.parameters.dump(), header.executor,
           header.run_dir.string(), "running", wall_clock_now(), me.host, me.pid, me.boot_id, me.process_start,
           wall_clock_now(), header.options.dump()});
      return;
    }
    store_.db.execute(
        "UPDATE runs SET status='running', message=NULL, finished_at=NULL, host=?, pid=?, boot_id=?,"
        " process_start=?, heartbeat_at=? WHERE id=?",
        {me.host, me.pid, me.boot_id, me.process_start, wall_clock_now(), header.id});
    store_.db.execute(
        "UPDATE attempts SET status='interrupted', message='the host stopped while it ran', finished_at=?"
        " WHERE run_id=? AND status='running'",
        {wall_clock_now(), header.id});
    for (const auto& row :
         store_.db.query("SELECT unit, MAX(attempt) AS n FROM attempts WHERE run_id=? GROUP BY unit", {header.id}))
      last_attempt_[row["unit"].get<std::string>()] = static_cast<int>(MetadataDb::integer(row["n"]));
    for (const auto& row : store_.db.query(
             "SELECT unit, status, outputs, artifacts, metadata FROM steps WHERE run_id=? AND status IN (?, ?)",
             {header.id, to_string(StepStatus::succeeded), to_string(StepStatus::cached)})) {
      StoredOutputs out =
          outputs_from_row(row, parse_step_status(row["status"].get<std::string>()).value_or(StepStatus::succeeded));
      bool complete = true;  // a finished step whose artifact vanished must run again
      for (const auto& [name, digest] : out.artifacts.items()) complete = complete && store_.artifacts.contains(digest);
      if (complete) kept_[row["unit"].get<std::string>()] = std::move(out);
    }
  });
}

void RunJournal::finish_run(RunStatus status, const std::string& message, double duration_seconds) {
  write_group();  // normally written already (JournalObserver::flush), so the end is its own short commit
  store_.db.transaction([&] {
    flush_metrics();
    store_.db.execute(
        "UPDATE runs SET status=?, message=?, finished_at=?, duration_seconds=? WHERE id=?",
        {to_string(status), message.empty() ? Json(nullptr) : Json(message), wall_clock_now(), duration_seconds, run_id_});
  });
}

std::optional<StoredOutputs> RunJournal::kept(const std::string& unit) const {
  const auto it = kept_.find(unit);
  if (it == kept_.end()) return std::nullopt;
  return it->second;
}

int RunJournal::last_attempt(const std::string& unit) const {
  const auto it = last_attempt_.find(unit);
  return it == last_attempt_.end() ? 0 : it->second;
}

CacheDecision RunJournal::decide(const UnitRef& unit, const Json& parameters,
                                 const std::map<std::string, InputArtifact>& inputs) {
  CacheDecision d;
  const auto& component = unit.step->component;
  CacheKeyInput key;
  key.component = component.manifest.name;
  key.version = component.manifest.version.str();
  key.library_digest = component.library_digest;
  key.files = component.file_digests;
  if (!key.files.empty()) key.component_file = component.library.filename().string();
  key.parameters = parameters;
  // N replicas sum gradients in another order than one process: other bits.
  if (unit.step->spec.replicas > 1) key.environment = "replicas:" + std::to_string(unit.step->spec.replicas);
  for (const auto& [name, input] : inputs) {
    std::string digest = input.digest;
    if (digest.empty() && !input.items.empty()) {  // a loop's collection: the digests of its items, in order
      std::string all;
      for (const auto& item : input.items) all += item + "\n";
      digest = "collection:" + sha256_hex(all);
    }
    key.inputs[name] = digest;
  }
  d.parts = cache_key_parts(key);
  d.parameters = parameters;
  d.key = cache_key(d.parts);
  d.enabled = unit.step->spec.cache && !component.library_digest.empty();
  if (!unit.step->spec.cache) {
    d.reason = "cache: false";
    return d;
  }
  if (!use_cache_) {
    d.reason = "--no-cache";
    return d;
  }
  if (group_keys_.count(d.key)) write_group();  // a unit that just ended stores this key
  if (const auto entry = store_.db.query_one("SELECT * FROM cache_entries WHERE key=?", {d.key})) {
    StoredOutputs out = outputs_from_row(*entry, StepStatus::cached);
    bool intact = true;
    for (const auto& [name, digest] : out.artifacts.items())
      intact = store_.artifacts.verify(digest.get<std::string>()) && intact;  // moves a corrupt one aside
    if (intact) {
      d.hit = std::move(out);
      return d;
    }
    store_.db.execute("DELETE FROM cache_entries WHERE key=?", {d.key});
    d.reason = "the cached artifact was missing or corrupt";
    return d;
  }
  // The latest entry of the same step of the same pipeline: another pipeline's
  // step of the same name would explain nothing.
  const auto before = store_.db.query_one(
      "SELECT c.parts FROM cache_entries c JOIN runs r ON r.id = c.run_id"
      " WHERE c.step=? AND c.component=? AND r.pipeline = (SELECT pipeline FROM runs WHERE id=?)"
      " ORDER BY c.created_at DESC, c.rowid DESC LIMIT 1",
      {unit.step->spec.name, component.manifest.name, run_id_});
  if (!before) {
    d.reason = "no earlier run of this step";
    return d;
  }
  d.reason = explain_cache_miss(d.parts, parse_or((*before)["parts"], Json::object()));
  if (d.reason.empty()) d.reason = "no cache entry for this key";
  return d;
}

void RunJournal::attempt_started(const UnitRef& unit, int attempt, const std::string& executor,
                                 const std::string& dir) {
  // An attempt that could read a waiting record: the group is written in the
  // same transaction as this start, fsynced, before the attempt runs (one
  // commit instead of two).
  const bool with_group = depends_on_waiting(unit);
  const std::vector<std::function<void()>> writes = with_group ? take_group() : std::vector<std::function<void()>>{};
  const int before = recorded_steps_;
  store_.db.transaction(
      [&] {
        flush_metrics();
        heartbeat();
        for (const auto& write : writes) write();
        store_.db.execute(
            "INSERT OR REPLACE INTO steps (run_id, unit, step, item_index, status, component) VALUES (?,?,?,?,?,?)",
            {run_id_, unit.name, unit.step->spec.name, unit.item_index, "running", unit.step->component.manifest.name});
        store_.db.execute(
            "INSERT OR REPLACE INTO attempts (run_id, unit, attempt, status, executor, dir, started_at)"
            " VALUES (?,?,?,?,?,?,?)",
            {run_id_, unit.name, attempt, "running", executor, dir, wall_clock_now()});
      },
      with_group ? MetadataDb::Durability::power_loss : MetadataDb::Durability::process_crash);
  if (with_group) group_committed(before);
}

void RunJournal::attempt_ended(const UnitRef& unit, int attempt, StepStatus status, FailureClass failure,
                               const std::string& message, double duration_seconds) {
  enqueue(unit, "", [this, name = unit.name, attempt, status, failure, message, duration_seconds,
                     at = wall_clock_now()] {
    store_.db.execute(
        "UPDATE attempts SET status=?, finished_at=?, duration_seconds=?, failure=?, message=?"
        " WHERE run_id=? AND unit=? AND attempt=?",
        {to_string(status), at, duration_seconds, to_string(failure), message, run_id_, name, attempt});
  });
}

StoredOutputs RunJournal::commit(const UnitRef& unit, int attempt, const fs::path& outputs_dir,
                                 const AttemptResult& result, const CacheDecision& cache,
                                 const std::map<std::string, InputArtifact>& inputs, double duration_seconds) {
  StoredOutputs out;
  out.status = StepStatus::succeeded;
  out.outputs = result.output_parameters;
  std::map<std::string, ArtifactStore::Committed> committed;
  for (const auto& port : unit.step->component.manifest.outputs) {
    const fs::path dir = outputs_dir / port.name;
    if (!fs::is_directory(dir)) fs::create_directories(dir);  // a plugin that deleted its output dir
    committed[port.name] = store_.artifacts.commit(dir);
    out.artifacts[port.name] = committed[port.name].digest;
    out.metadata[port.name] = result.output_metadata.value(port.name, Json::object());
  }
  kill_point("artifacts-committed");  // in the store, not yet recorded
  const std::string key = cache.enabled ? cache.key : "";
  enqueue(unit, key, [this, unit, attempt, committed, out, cache, inputs, duration_seconds, at = wall_clock_now()] {
    for (const auto& port : unit.step->component.manifest.outputs) {
      const auto& c = committed.at(port.name);
      store_.db.execute(
          "INSERT OR IGNORE INTO artifacts (digest, type, size, producer_run, producer_unit, producer_output,"
          " description, metadata, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
          {c.digest, port.type, static_cast<int64_t>(c.size), run_id_, unit.name, port.name, port.description,
           out.metadata.at(port.name).dump(), at});
      store_.db.execute("INSERT OR REPLACE INTO lineage (run_id, unit, role, name, digest) VALUES (?,?,?,?,?)",
                        {run_id_, unit.name, "output", port.name, c.digest});
    }
    write_inputs(unit, inputs);
    store_.db.execute(
        "UPDATE attempts SET status='succeeded', finished_at=?, duration_seconds=?, cache_key=? "
        "WHERE run_id=? AND unit=? AND attempt=?",
        {at, duration_seconds, cache.key, run_id_, unit.name, attempt});
    write_unit(unit, StepStatus::succeeded, "", &out, &cache);
    if (cache.enabled)
      store_.db.execute(
          "INSERT OR REPLACE INTO cache_entries (key, step, component, parts, outputs, artifacts, metadata, run_id,"
          " unit, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
          {cache.key, unit.step->spec.name, unit.step->component.manifest.name, cache.parts.dump(), out.outputs.dump(),
           out.artifacts.dump(), out.metadata.dump(), run_id_, unit.name, at});
    ++recorded_steps_;
  });
  kill_point("step-finished");  // ended, its record waiting for its group
  return out;
}

std::string RunJournal::commit_step_artifact(const UnitRef& step, const std::string& output,
                                             const std::string& type, const std::string& description,
                                             const fs::path& dir, const Json& metadata,
                                             const std::map<std::string, InputArtifact>& inputs) {
  write_group();
  const ArtifactStore::Committed committed = store_.artifacts.commit(dir);
  store_.db.transaction([&] {
    store_.db.execute(
        "INSERT OR IGNORE INTO artifacts (digest, type, size, producer_run, producer_unit, producer_output,"
        " description, metadata, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
        {committed.digest, type, static_cast<int64_t>(committed.size), run_id_, step.name, output, description,
         metadata.dump(), wall_clock_now()});
    store_.db.execute("INSERT OR REPLACE INTO lineage (run_id, unit, role, name, digest) VALUES (?,?,?,?,?)",
                      {run_id_, step.name, "output", output, committed.digest});
    write_inputs(step, inputs);
  });
  return committed.digest;
}

void RunJournal::record_cache_hit(const UnitRef& unit, int attempt, const CacheDecision& cache,
                                  const std::map<std::string, InputArtifact>& inputs) {
  enqueue(unit, "", [this, unit, attempt, cache, inputs, at = wall_clock_now()] {
    store_.db.execute(
        "INSERT OR REPLACE INTO attempts (run_id, unit, attempt, status, executor, dir, started_at, finished_at,"
        " duration_seconds, cache_key, cache_hit) VALUES (?,?,?,?,?,?,?,?,?,?,1)",
        {run_id_, unit.name, attempt, to_string(StepStatus::cached), "cache", "", at, at, 0.0, cache.key});
    for (const auto& [name, digest] : cache.hit->artifacts.items())
      store_.db.execute("INSERT OR REPLACE INTO lineage (run_id, unit, role, name, digest) VALUES (?,?,?,?,?)",
                        {run_id_, unit.name, "output", name, digest});
    write_inputs(unit, inputs);
    write_unit(unit, StepStatus::cached, "", &*cache.hit, &cache);
  });
}

void RunJournal::unit_ended(const UnitRef& unit, StepStatus status, const std::string& message) {
  enqueue(unit, "", [this, unit, status, message] { write_unit(unit, status, message, nullptr, nullptr); });
}

void RunJournal::metric(const std::string& unit, const std::string& name, int64_t step, double value, double time) {
  metrics_.push_back(Json{run_id_, unit, name, step, value, time});
}

void RunJournal::write_unit(const UnitRef& unit, StepStatus status, const std::string& message,
                            const StoredOutputs* outputs, const CacheDecision* cache) {
  std::string cache_status = "off";
  if (cache && cache->hit) cache_status = "hit";
  if (cache && !cache->hit && cache->enabled && use_cache_) cache_status = "miss";
  store_.db.execute(
      "INSERT OR REPLACE INTO steps (run_id, unit, step, item_index, status, message, component, parameters,"
      " outputs, artifacts, metadata, cache_key, cache_status, cache_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
      {run_id_, unit.name, unit.step->spec.name, unit.item_index, to_string(status), message,
       unit.step->component.manifest.name,
       cache ? cache->parameters.dump() : "", outputs ? outputs->outputs.dump() : "",
       outputs ? outputs->artifacts.dump() : "", outputs ? outputs->metadata.dump() : "", cache ? cache->key : "",
       cache ? cache_status : "", cache && !cache->hit ? cache->reason : ""});
}

void RunJournal::write_inputs(const UnitRef& unit, const std::map<std::string, InputArtifact>& inputs) {
  for (const auto& [name, input] : inputs) {
    if (!input.digest.empty())
      store_.db.execute("INSERT OR REPLACE INTO lineage (run_id, unit, role, name, digest) VALUES (?,?,?,?,?)",
                        {run_id_, unit.name, "input", name, input.digest});
    for (size_t i = 0; i < input.items.size(); ++i)
      store_.db.execute("INSERT OR REPLACE INTO lineage (run_id, unit, role, name, digest) VALUES (?,?,?,?,?)",
                        {run_id_, unit.name, "input", name + "[" + std::to_string(i) + "]", input.items[i]});
  }
}

void RunJournal::flush_metrics() {
  for (const auto& m : metrics_)
    store_.db.execute("INSERT INTO metrics (run_id, unit, name, step, value, time) VALUES (?,?,?,?,?,?)",
                      {m[0], m[1], m[2], m[3], m[4], m[5]});
  metrics_.clear();
}

void RunJournal::heartbeat() {
  // heartbeat_at says when the host last wrote; liveness is decided by boot
  // id + pid + start time (host_identity), so once a second is enough. The
  // runs row holds the spec's text: rewriting it per attempt cost 5 % of the
  // engine thread's CPU on a 500-step DAG (issue 16).
  const auto now = std::chrono::steady_clock::now();
  if (now < next_heartbeat_) return;
  next_heartbeat_ = now + kHeartbeatInterval;
  store_.db.execute("UPDATE runs SET heartbeat_at=? WHERE id=?", {wall_clock_now(), run_id_});
}

void RunJournal::enqueue(const UnitRef& unit, std::string cache_key, std::function<void()> write) {
  if (group_.empty()) oldest_ = std::chrono::steady_clock::now();
  group_.push_back(std::move(write));
  group_steps_.insert(step_of(unit.name));
  if (unit.item_index >= 0) group_items_.emplace(step_of(unit.name), unit.item_index);
  if (!cache_key.empty()) group_keys_.insert(std::move(cache_key));
  if (policy_.window.count() == 0 || group_.size() >= policy_.max_group) write_group();
}

bool RunJournal::depends_on_waiting(const UnitRef& unit) const {
  if (group_.empty()) return false;
  // A trial template's step reads what is outside its trial through its
  // tuning step (the owner): its own upstream names only its trial's steps.
  const PlannedStep& owner = unit.owner ? *unit.owner : *unit.step;
  if (owner.spec.is_finally) return true;  // it may read the run's whole outcome
  for (const auto& up : owner.upstream)
    if (group_steps_.count(up)) return true;
  // Another unit of the same step: a trial template's next step may read
  // its trial's records (the same trial). A tuner's other trials do not:
  // what a trial reached goes to the tuner, whose log a resume replays, so
  // a trial whose record was lost runs again and is told the outcome it had
  // (TuningController); a loop's items are independent of each other.
  // (A unit with an item index is a loop item or a trial: a template's
  // step, planned on its own, has the tuning step's name in its unit's.)
  const std::string step = step_of(unit.name);
  if (!group_steps_.count(step)) return false;
  if (unit.item_index < 0) return true;
  if (owner.spec.for_each) return false;
  return group_items_.count({step, unit.item_index}) > 0;
}

std::vector<std::function<void()>> RunJournal::take_group() {
  std::vector<std::function<void()>> writes;
  writes.swap(group_);
  group_steps_.clear();
  group_items_.clear();
  group_keys_.clear();
  return writes;
}

void RunJournal::group_committed(int recorded_before) {
  kill_point("group-committed");
  for (int i = recorded_before; i < recorded_steps_; ++i) kill_point("step-recorded");
}

void RunJournal::write_group() {
  if (group_.empty()) return;
  const std::vector<std::function<void()>> writes = take_group();
  const int before = recorded_steps_;
  store_.db.transaction([&] {
    flush_metrics();
    heartbeat();
    for (const auto& write : writes) write();
  });
  group_committed(before);
}

void RunJournal::pause(bool attempts_running) {
  if (group_.empty()) return;
  if (!attempts_running || std::chrono::steady_clock::now() - oldest_ >= policy_.window) write_group();
}

namespace {

UnitRef ref_of(const UnitName& unit) { return UnitRef{unit.planned, unit.display, unit.item_index, unit.owner}; }

struct JournalWriter {
  RunJournal& journal;
  std::optional<events::RunFinished>& finished;
  int& running;
  void operator()(const events::AttemptStarted& e) const {
    ++running;
    journal.attempt_started(ref_of(e.unit), e.attempt, e.executor, e.dir);
    kill_point("attempt-recorded");
  }
  void operator()(const events::AttemptEnded& e) const {
    --running;
    if (e.status != StepStatus::succeeded)  // a success is recorded with its outputs (commit)
      journal.attempt_ended(ref_of(e.unit), e.attempt, e.status, e.failure, e.message, e.duration_seconds);
  }
  void operator()(const events::UnitFinished& e) const {
    if (!is_success(e.status)) journal.unit_ended(ref_of(e.unit), e.status, e.message);
  }
  void operator()(const events::StepChanged& e) const {
    if (!e.has_units && is_terminal(e.status)) journal.unit_ended(UnitRef{e.planned, e.step, -1}, e.status, e.message);
  }
  void operator()(const events::Metric& e) const {
    if (std::isfinite(e.value)) journal.metric(e.unit.display, e.name, e.step, e.value, e.time);
  }
  void operator()(const events::RunFinished& e) const { finished = e; }
  template <typename Other>
  void operator()(const Other&) const {}
};

}  // namespace

void JournalObserver::on_event(uint64_t, const RunEvent& event) {
  std::visit(JournalWriter{journal_, finished_, running_}, event);
}

void JournalObserver::flush(bool final) {
  if (!final) return journal_.pause(running_ > 0);
  if (!finished_) return;
  const events::RunFinished finished = *finished_;
  finished_.reset();
  journal_.write_group();
  kill_point("run-finishing");
  journal_.finish_run(finished.status, finished.message, finished.duration_seconds);
}

}  // namespace kiln::host

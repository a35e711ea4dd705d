// The engine's scheduler: one thread owns all state; attempts report through
// a queue; the thread sleeps until a message arrives or the nearest deadline
// (timeout, kill after grace, retry backoff, run timeout) passes.
#include <unistd.h>
#include <kiln/host/engine.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/invoke.hpp>
#include <kiln/host/placeholders.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/run_journal.hpp>
#include <kiln/host/step_context.hpp>

#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>

namespace kiln::host {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kPending = "pending";
constexpr const char* kRunning = "running";
constexpr const char* kUpstreamFailed = "upstream-failed";

bool terminal(const std::string& status) {
  return status != kPending && status != kRunning;
}

bool success(const std::string& status) {
  return status == kSucceeded || status == kCached;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// A message from an attempt to the scheduler thread.
struct Message {
  int unit = -1;
  int attempt = 0;
  std::optional<RunnerEvent> event;
  std::optional<AttemptResult> result;
  bool cancel = false;
};

// The scheduler's inbox: many writers, one reader.
class Inbox {
 public:
  void post(Message m) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back(std::move(m));
    }
    ready_.notify_one();
  }
  // Waits until a message arrives or `until` passes; returns what arrived.
  std::deque<Message> wait(std::optional<Clock::time_point> until) {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto has = [&] { return !messages_.empty(); };
    if (until)
      ready_.wait_until(lock, *until, has);
    else
      ready_.wait(lock, has);
    std::deque<Message> out;
    out.swap(messages_);
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Message> messages_;
};

class Observer : public AttemptObserver {
 public:
  Observer(std::shared_ptr<Inbox> inbox, int unit, int attempt)
      : inbox_(std::move(inbox)), unit_(unit), attempt_(attempt) {}
  void on_event(RunnerEvent event) override { inbox_->post({unit_, attempt_, std::move(event), std::nullopt, false}); }
  void on_finished(AttemptResult result) override {
    inbox_->post({unit_, attempt_, std::nullopt, std::move(result), false});
  }

 private:
  std::shared_ptr<Inbox> inbox_;
  int unit_, attempt_;
};

}  // namespace

// One runnable thing: a step, or one item of a loop step.
struct Unit {
  size_t step = 0;  // index into Impl::steps_
  int item_index = -1;
  int part = -1;  // a trial template's step: index into PlannedStep::trial_steps
  Json item;
  std::string display;
  fs::path dir;
  std::string status = kPending;
  int attempt = 0;
  int attempt_base = 0;  // attempts made before a resume: they do not count against retries
  std::unique_ptr<RunningAttempt> running;
  std::optional<Clock::time_point> deadline, kill_at, retry_at;
  bool timed_out = false;
  bool stop_requested = false;  // the engine asked this attempt to stop
  bool early_stop = false;      // ... because its tuner said so (a trial)
  Clock::time_point started;
  std::ofstream events;
  AttemptResult result;
  fs::path outputs_dir;
  std::map<std::string, InputArtifact> artifacts;  // its outputs, for downstream steps
  std::map<std::string, InputArtifact> inputs;     // what the running attempt reads (for lineage)
  CacheDecision cache;
};

// A tuning step's tuner object and trial bookkeeping (docs/tuning.md).
// Only the scheduler thread touches it, so tuner calls are serialised.
struct TuneState {
  const KilnTunerApi* api = nullptr;
  KilnTuner* tuner = nullptr;
  int suggested = 0, failed = 0;
  bool exhausted = false;      // no more suggestions: max_trials, the tuner's [] or a stop
  std::string failure;         // why the step fails (too many failed trials, a tuner error)
  std::map<int, Json> curves;  // per unit (a trial's step): {"step": value} of the objective metric
  TuneState() = default;
  TuneState(const TuneState&) = delete;
  TuneState& operator=(const TuneState&) = delete;
  ~TuneState() {
    if (api != nullptr && tuner != nullptr) api->destroy(tuner);
  }
};

// The output parameter in which a trial keeps its objective curve
// ({"step": value}); the engine adds it, the component never sees it.
constexpr const char* kCurveOutput = "kiln.curve";

Json without_curve(Json outputs) {
  outputs.erase(kCurveOutput);
  return outputs;
}

// Throws a tuner's error as std::runtime_error (taking ownership of it).
void check_tuner(KilnError* error) {
  if (error == nullptr) return;
  const KilnHostApi* host = host_api();
  const std::string message = host->error_message(error);
  host->error_release(error);
  throw std::runtime_error("tuner: " + message);
}

struct StepRun {
  const PlannedStep* planned = nullptr;
  std::unique_ptr<TuneState> tune;  // tuning steps only
  std::string status = kPending;
  std::string message;
  std::vector<int> units;
  Json outputs = Json::object();                   // output parameters (lists for loops)
  std::map<std::string, InputArtifact> artifacts;  // output artifacts for downstream inputs
};

class Engine::Impl {
 public:
  Impl(const Plan& plan, RunOptions options, std::map<std::string, std::unique_ptr<Executor>> executors)
      : plan_(plan), options_(std::move(options)), executors_(std::move(executors)), inbox_(std::make_shared<Inbox>()) {
    for (const auto& step : plan_.steps) {
      StepRun run;
      run.planned = &step;
      step_index_[step.spec.name] = steps_.size();
      steps_.push_back(std::move(run));
    }
  }

  Json run() {
    started_ = Clock::now();
    fs::create_directories(options_.run_dir / "steps");
    record_ = Json{{"id", options_.run_id},
                   {"pipeline", {{"name", plan_.spec.name}, {"file", plan_.spec.file}}},
                   {"parameters", plan_.parameters},
                   {"executor", options_.executor},
                   {"status", kRunning},
                   {"started_at", wall_clock_now()},
                   {"host", host_name()},
                   {"pid", ::getpid()},
                   {"steps", Json::object()}};
    if (options_.resume) resume_record();
    for (const auto& s : steps_) record_["steps"][s.planned->spec.name] = {{"status", kPending}};
    if (options_.store) begin_journal();
    save();
    flush_record(true);
    if (plan_.spec.timeout_seconds) run_deadline_ = started_ + seconds(*plan_.spec.timeout_seconds);
    try {
      loop();
    } catch (const std::exception& e) {  // e.g. a full disk: stop what runs, record why
      run_status_ = kFailed;
      run_message_ = std::string("the engine stopped: ") + e.what();
      for (auto& unit : units_)
        if (unit.status == kRunning && unit.running) unit.running->kill();
    }
    record_["status"] = run_status_;
    record_["finished_at"] = wall_clock_now();
    record_["duration_seconds"] = seconds_since(started_);
    if (!run_message_.empty()) record_["message"] = run_message_;
    save();
    flush_record(true);
    if (journal_) {
      kill_point("run-finishing");
      journal_->finish_run(run_status_, run_message_, record_["duration_seconds"].get<double>());
    }
    emit({{"type", "run"}, {"status", run_status_}});
    return record_;
  }

  void request_cancel() { inbox_->post({-1, 0, std::nullopt, std::nullopt, true}); }

 private:
  // A resumed run keeps its start time and, for the steps it keeps, their
  // attempts (so `kiln logs` still finds them), from the last run.json the
  // dead host managed to write (it may be 100 ms stale: the database decides
  // what is kept, this is only for reading).
  void resume_record() {
    record_["resumed"] = true;
    try {
      previous_record_ = Json::parse(read_file(options_.run_dir / "run.json"));
      record_["started_at"] = previous_record_.value("started_at", record_["started_at"].get<std::string>());
    } catch (const std::exception&) {  // never written, or unreadable: start afresh
      previous_record_ = Json::object();
    }
  }

  void begin_journal() {
    journal_ = std::make_unique<RunJournal>(*options_.store, options_.use_cache);
    RunHeader header;
    header.id = options_.run_id;
    header.pipeline = plan_.spec.name;
    header.spec_file = plan_.spec.file;
    header.spec_text = options_.spec_text;
    header.executor = options_.executor;
    header.run_dir = options_.run_dir;
    header.parameters = plan_.parameters;
    header.options = options_.options_record;
    journal_->begin_run(header, options_.resume);
    kill_point("run-recorded");
  }

  // ---- the loop -----------------------------------------------------------

  void loop() {
    for (;;) {
      schedule();
      if (all_terminal(false) && !main_done_) {
        finish_main_phase();
        continue;  // the finally steps can begin now
      }
      if (main_done_ && all_terminal(true)) return;
      flush_record();
      for (auto& message : inbox_->wait(next_deadline())) handle(std::move(message));
      check_deadlines();
    }
  }

  bool all_terminal(bool finally_phase) const {
    for (const auto& s : steps_)
      if (s.planned->spec.is_finally == finally_phase && !terminal(s.status)) return false;
    return true;
  }

  void finish_main_phase() {
    main_done_ = true;
    Json failed = Json::array();
    bool cancelled = false;
    for (const auto& s : steps_) {
      if (s.planned->spec.is_finally) continue;
      if (s.status == kFailed) failed.push_back(s.planned->spec.name);
      cancelled = cancelled || s.status == kCancelled;
    }
    if (run_timed_out_)
      run_status_ = kFailed;
    else if (cancel_requests_ > 0)
      run_status_ = kCancelled;
    else
      run_status_ = failed.empty() && !cancelled ? kSucceeded : kFailed;  // nobody asked to cancel
    failed_steps_ = failed;
  }

  std::optional<Clock::time_point> next_deadline() const {
    std::optional<Clock::time_point> next = run_deadline_;
    const auto consider = [&](const std::optional<Clock::time_point>& t) {
      if (t && (!next || *t < *next)) next = t;
    };
    for (const auto& u : units_) {
      if (u.status == kRunning) {
        if (!u.timed_out) consider(u.deadline);
        consider(u.kill_at);
      } else if (u.status == kPending) {
        consider(u.retry_at);
      }
    }
    return next;
  }

  // ---- scheduling ---------------------------------------------------------

  // Repeats while steps finish without running (cache hits, resumed steps):
  // their dependents may start now, and no message will come to say so.
  void schedule() {
    do {
      settled_ = false;
      for (size_t i = 0; i < steps_.size(); ++i)
        if (steps_[i].status == kPending && (!steps_[i].planned->spec.is_finally || main_done_)) try_begin(i);
      launch_ready_units();
    } while (settled_);
  }

  // Decides whether a pending step can begin, and how.
  void try_begin(size_t index) {
    StepRun& step = steps_[index];
    std::string blocked_by_failure, blocked_by_cancel, blocked_by_skip;
    for (const auto& up : step.planned->upstream) {
      const StepRun& u = step_named(up);
      if (!terminal(u.status)) return;
      if (u.status == kFailed || u.status == kUpstreamFailed) blocked_by_failure = up;
      if (u.status == kCancelled) blocked_by_cancel = up;
      // Like Argo: a skipped step satisfies an ordering dependency, but a
      // step that needs its outputs cannot run without them.
      if (u.status == kSkipped && step.planned->data_upstream.count(up)) blocked_by_skip = up;
    }
    if (!blocked_by_failure.empty())
      return finish_step(index, kUpstreamFailed, "upstream step '" + blocked_by_failure + "' did not succeed");
    if (!blocked_by_cancel.empty())
      return finish_step(index, kCancelled, "not started: upstream step '" + blocked_by_cancel + "' was cancelled");
    if (!blocked_by_skip.empty())
      return finish_step(index, kSkipped, "upstream step '" + blocked_by_skip + "' was skipped");
    if (stopping() && !step.planned->spec.is_finally)
      return finish_step(index, kCancelled, "not started: the run is stopping");
    try {
      if (step.planned->when && !step.planned->when->evaluate_condition(resolver(step, nullptr)))
        return finish_step(index, kSkipped, "condition is false: " + step.planned->when->text());
      if (step.planned->spec.tune)
        begin_tune(index);
      else if (step.planned->spec.for_each)
        begin_loop(index);
      else
        add_unit(index, -1, nullptr);
    } catch (const std::exception& e) {
      return finish_step(index, kFailed, e.what());
    }
    if (step.status == kPending) set_step_status(index, kRunning);
  }

  void begin_loop(size_t index) {
    StepRun& step = steps_[index];
    const Json items = render_placeholders(step.planned->spec.for_each->value, resolver(step, nullptr));
    if (!items.is_array()) throw std::runtime_error("for_each resolved to " + items.dump() + ", not a list");
    for (const auto& output : step.planned->component.manifest.output_parameters)
      step.outputs[output.name] = Json::array();
    if (items.empty()) return finish_step(index, kSucceeded, "for_each is empty");
    for (size_t i = 0; i < items.size(); ++i) add_unit(index, static_cast<int>(i), items[i]);
  }

  // ---- tuning steps: trials are units whose parameters the tuner suggests ----

  void begin_tune(size_t index) {
    StepRun& step = steps_[index];
    const TuneSpec& spec = *step.planned->spec.tune;
    if (!step.planned->tuner) throw std::runtime_error("tuner '" + spec.tuner + "' is not in the plan");
    const auto library = PluginLibrary::load(step.planned->tuner->library);
    const LoadedComponent* component = library->find(spec.tuner);
    if (component == nullptr || component->tuner == nullptr)
      throw std::runtime_error("component '" + spec.tuner + "' offers no tuner table");
    auto state = std::make_unique<TuneState>();
    state->api = component->tuner;
    const Json config = render_placeholders(spec.tuner_config(), resolver(step, nullptr));
    if (KilnError* error = state->api->create(host_api(), config.dump().c_str(), &state->tuner)) {
      const KilnHostApi* host = host_api();
      const std::string message = host->error_message(error);
      host->error_release(error);
      // A tuner names the field first ("space.lr.low: ..."): point at it.
      const auto colon = message.find(':');
      const SourcePos at = spec.position_of(colon == std::string::npos ? "" : message.substr(0, colon));
      throw std::runtime_error(at.str() + ": tuner " + spec.tuner + ": " + message);
    }
    step.tune = std::move(state);
    suggest_trials(index);
    if (step.units.empty()) finish_step(index, kFailed, "the tuner suggested no trial");
  }

  // Adds trials until parallel_trials are pending or running, max_trials were
  // suggested, or the tuner has no more.
  void suggest_trials(size_t index) {
    StepRun& step = steps_[index];
    TuneState& tune = *step.tune;
    const TuneSpec& spec = *step.planned->spec.tune;
    if (tune.exhausted || stopping()) return;
    const int parallel = spec.parallel_trials > 0             ? spec.parallel_trials
                         : step.planned->spec.parallelism > 0 ? step.planned->spec.parallelism
                                                              : options_.jobs;
    std::set<int> active;  // trials with a step still to finish
    for (const int u : step.units)
      if (!terminal(units_[static_cast<size_t>(u)].status)) active.insert(units_[static_cast<size_t>(u)].item_index);
    const int room = std::min(parallel - static_cast<int>(active.size()), spec.max_trials - tune.suggested);
    if (spec.max_trials <= tune.suggested) tune.exhausted = true;
    if (room <= 0) return;
    const char* text = nullptr;
    check_tuner(tune.api->suggest(tune.tuner, static_cast<uint32_t>(room), &text));
    const Json trials = Json::parse(text == nullptr ? "[]" : text);
    if (!trials.is_array()) throw std::runtime_error("tuner: suggest returned " + trials.dump() + ", not a list");
    if (trials.empty()) tune.exhausted = true;
    std::set<int> known;
    for (const int u : step.units) known.insert(units_[static_cast<size_t>(u)].item_index);
    for (const Json& trial : trials) {
      if (tune.suggested >= spec.max_trials) break;  // a tuner that ignored max_count
      const int id = trial.at("trial").get<int>();
      if (id < 0 || !known.insert(id).second || !trial.at("parameters").is_object())
        throw std::runtime_error("tuner: suggest returned a bad or repeated trial: " + trial.dump());
      add_trial(index, id, trial.at("parameters"));
      ++tune.suggested;
    }
  }

  // The objective metric of a running trial: to the tuner, which may stop it.
  void on_trial_metric(int id, const Json& event) {
    Unit& unit = units_[static_cast<size_t>(id)];
    StepRun& step = steps_[unit.step];
    TuneState& tune = *step.tune;
    if (event.value("name", "") != step.planned->spec.tune->metric || !event["value"].is_number()) return;
    const double value = event["value"].get<double>();
    const int64_t at = event.value("step", int64_t{-1});
    tune.curves[id][std::to_string(at)] = value;
    if (unit.stop_requested || unit.status != kRunning || !unit.running) return;
    int32_t stop = 0;
    try {
      check_tuner(tune.api->observe(tune.tuner, unit.item_index, at, value, 0, nullptr));
      check_tuner(tune.api->should_stop(tune.tuner, unit.item_index, &stop));
    } catch (const std::exception& e) {
      return stop_trials(unit.step, e.what());
    }
    if (stop == 0) return;
    unit.early_stop = true;
    unit.stop_requested = true;
    unit.running->cancel();
    unit.kill_at = Clock::now() + seconds(options_.grace_seconds);
    // The rest of its trial waits for this step, and is settled when it ends
    // (a step that finishes anyway keeps its success).
    emit({{"type", "status"}, {"step", unit.display}, {"status", "stopping"}, {"message", "stopped by the tuner"}});
  }

  // The units of one trial: one, or one per step of a trial template, in the template's order.
  std::vector<int> trial_units(size_t index, int trial) const {
    std::vector<int> out;
    for (const int u : steps_[index].units)
      if (units_[static_cast<size_t>(u)].item_index == trial) out.push_back(u);
    return out;
  }

  // A trial's outcome from its steps': a failed step fails it, a stopped one
  // stops it; it succeeded when every step did (cached when every step was).
  // Empty while a step has yet to finish.
  std::string trial_status(size_t index, int trial) const {
    std::set<std::string> statuses;
    for (const int u : trial_units(index, trial)) statuses.insert(units_[static_cast<size_t>(u)].status);
    for (const auto& status : statuses)
      if (!terminal(status)) return "";
    for (const char* status : {kFailed, kEarlyStopped, kCancelled, kUpstreamFailed})
      if (statuses.count(status)) return status == std::string(kUpstreamFailed) ? kFailed : status;
    return statuses.count(kSucceeded) ? kSucceeded : kCached;
  }

  // One step of a trial did not succeed: the rest of the trial does not
  // start (`status` says why), and what runs of it is told to stop.
  void settle_trial(size_t index, int trial, const std::string& status, const std::string& why) {
    halt_units(trial_units(index, trial), status, why);
  }

  // Units that have not started end with `status` (not through finish_unit,
  // which would recurse into their step); running ones are asked to stop.
  void halt_units(const std::vector<int>& units, const std::string& status, const std::string& why) {
    const auto kill_at = Clock::now() + seconds(options_.grace_seconds);
    for (const int u : units) {
      Unit& unit = units_[static_cast<size_t>(u)];
      if (unit.status == kPending) {
        unit.status = status;
        unit_record(unit)["status"] = status;
        if (!why.empty()) unit_record(unit)["message"] = why;
      } else if (unit.status == kRunning && unit.running && !unit.stop_requested) {
        unit.stop_requested = true;
        unit.running->cancel();
        unit.kill_at = kill_at;
      }
    }
  }

  // The objective curve of a trial: its steps' reported values by step.
  std::map<int64_t, double> trial_curve(size_t index, int trial) const {
    std::map<int64_t, double> curve;
    for (const int u : trial_units(index, trial)) {
      const auto found = steps_[index].tune->curves.find(u);
      if (found == steps_[index].tune->curves.end()) continue;
      for (const auto& [at, value] : found->second.items()) curve[std::stoll(at)] = value.get<double>();
    }
    return curve;
  }

  // The objective a finished trial reached: the output parameter of the
  // metric's name of its last step that set one, else the last value it
  // reported, else NaN.
  double trial_value(size_t index, int trial) const {
    const std::vector<int> units = trial_units(index, trial);
    const std::string& metric = steps_[index].planned->spec.tune->metric;
    for (auto u = units.rbegin(); u != units.rend(); ++u) {
      const Unit& unit = units_[static_cast<size_t>(*u)];
      const Json& outputs = unit.result.output_parameters;
      if (success(unit.status) && outputs.contains(metric) && outputs[metric].is_number())
        return outputs[metric].get<double>();
    }
    const auto curve = trial_curve(index, trial);
    return curve.empty() ? std::nan("") : curve.rbegin()->second;
  }

  // A trial's step served from the cache or kept by a resume did not report
  // here: its stored curve becomes its curve, so rung rules see it too.
  // Returns the values to replay to the tuner, by step.
  std::map<int64_t, double> restore_stored_curves(size_t index, int trial) {
    TuneState& tune = *steps_[index].tune;
    std::map<int64_t, double> replay;
    for (const int u : trial_units(index, trial)) {
      const Unit& unit = units_[static_cast<size_t>(u)];
      const Json& stored = unit.result.output_parameters;
      if (!success(unit.status) || tune.curves.count(u) || !stored.contains(kCurveOutput) ||
          !stored[kCurveOutput].is_object())
        continue;
      for (const auto& [at, value] : stored[kCurveOutput].items())
        if (value.is_number()) {
          replay[std::stoll(at)] = value.get<double>();
          tune.curves[u][at] = value;
        }
    }
    return replay;
  }

  // A unit of a trial ended: when it was the trial's last, tell the tuner,
  // count failures, suggest more. May add units (references into units_ are
  // invalid afterwards).
  void on_trial_finished(size_t index, int id) {
    StepRun& step = steps_[index];
    TuneState& tune = *step.tune;
    const TuneSpec& spec = *step.planned->spec.tune;
    const int trial = units_[static_cast<size_t>(id)].item_index;
    const std::string ended = units_[static_cast<size_t>(id)].status;
    if (!success(ended))
      settle_trial(index, trial, ended == kFailed ? kUpstreamFailed : kCancelled,
                   "step '" + units_[static_cast<size_t>(id)].display + "' of this trial did not succeed");
    const std::string outcome = trial_status(index, trial);
    if (outcome.empty() || outcome == kCancelled) return;  // still running, or the run or step is stopping
    const std::string status = success(outcome) ? "succeeded" : outcome;
    try {
      for (const auto& [at, value] : restore_stored_curves(index, trial))
        check_tuner(tune.api->observe(tune.tuner, trial, at, value, 0, nullptr));
      check_tuner(
          tune.api->observe(tune.tuner, trial, -1, trial_value(index, trial), 1, Json(status).dump().c_str()));
      if (status == kFailed && ++tune.failed > spec.max_failed_trials)
        return stop_trials(index, std::to_string(tune.failed) + " trials failed (max_failed_trials: " +
                                      std::to_string(spec.max_failed_trials) + ")");
      suggest_trials(index);
    } catch (const std::exception& e) {
      stop_trials(index, e.what());
    }
  }

  // The tuning step fails: no more trials; running ones are told to stop.
  void stop_trials(size_t index, const std::string& why) {
    StepRun& step = steps_[index];
    step.tune->exhausted = true;
    if (step.tune->failure.empty()) step.tune->failure = why;
    halt_units(step.units, kCancelled, "");
  }

  // The trials of a tuning step, in the order they were suggested.
  std::vector<int> trial_ids(size_t index) const {
    std::vector<int> ids;
    for (const int u : steps_[index].units) {
      const int trial = units_[static_cast<size_t>(u)].item_index;
      if (std::find(ids.begin(), ids.end(), trial) == ids.end()) ids.push_back(trial);
    }
    return ids;
  }

  // One row of the trials table.
  Json trial_row(size_t index, int trial) const {
    const TuneSpec& spec = *steps_[index].planned->spec.tune;
    const std::vector<int> units = trial_units(index, trial);
    const double value = trial_value(index, trial);
    double duration = 0;
    Json outputs = Json::object(), curve = Json::object();
    for (const int u : units) {
      const Unit& unit = units_[static_cast<size_t>(u)];
      for (const auto& attempt : unit_record(unit).value("attempts", Json::array()))
        duration += attempt.value("duration_seconds", 0.0);
      const Json own = success(unit.status) ? without_curve(unit.result.output_parameters) : Json::object();
      if (unit.part < 0)
        outputs = own;
      else
        outputs[steps_[index].planned->trial_steps[static_cast<size_t>(unit.part)].spec.name] = own;
    }
    for (const auto& [at, v] : trial_curve(index, trial)) curve[std::to_string(at)] = v;
    return Json{{"trial", trial},
                {"parameters", units_[static_cast<size_t>(units.front())].item},
                {"status", trial_status(index, trial)},
                {spec.metric, std::isfinite(value) ? Json(value) : Json(nullptr)},
                {"curve", curve},
                {"outputs", outputs},
                {"duration_seconds", duration}};
  }

  // Every trial is done: the trials artifact, the best trial's parameters and
  // artifacts as the step's outputs.
  void complete_tuning(size_t index) {
    StepRun& step = steps_[index];
    const TuneSpec& spec = *step.planned->spec.tune;
    Json rows = Json::array();
    int best = -1;
    double best_value = 0;
    std::map<std::string, int> counts;
    for (const int trial : trial_ids(index)) {
      rows.push_back(trial_row(index, trial));
      const std::string status = rows.back()["status"];
      const double value = trial_value(index, trial);
      ++counts[status];
      if (success(status) && std::isfinite(value) &&
          (best < 0 || (spec.maximize ? value > best_value : value < best_value))) {
        best = trial;
        best_value = value;
      }
    }
    const InputArtifact trials = store_trials_table(index, rows);
    std::string summary;
    for (const auto& [status, n] : counts) summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + status;
    if (!step.tune->failure.empty()) return finish_step(index, kFailed, step.tune->failure + " (" + summary + ")");
    if (counts.count(kCancelled))  // the run is stopping: a partial search is no result
      return finish_step(index, kCancelled, "the search was cancelled (" + summary + ")");
    if (best < 0) return finish_step(index, kFailed, "no trial succeeded (" + summary + ")");
    const std::vector<int> winner = trial_units(index, best);
    const Json& parameters = units_[static_cast<size_t>(winner.front())].item;
    step.outputs = Json{{"best_parameters", parameters}, {"best_value", best_value}, {"best_trial", best}};
    for (const auto& [name, value] : parameters.items()) step.outputs["best_" + name] = value;
    step.artifacts.clear();
    for (const int u : winner)  // a trial template's later steps win a name several produce
      for (const auto& [name, artifact] : units_[static_cast<size_t>(u)].artifacts) step.artifacts[name] = artifact;
    step.artifacts[kTrialsOutput] = trials;
    finish_step(index, kSucceeded,
                "best: trial " + std::to_string(best) + ", " + spec.metric + " = " + Json(best_value).dump() + " (" +
                    summary + ")");
  }

  // The trials artifact (trials.json): with a store, committed there like
  // any step output (a digest, lineage from the step's inputs), else left
  // in the step's directory. run.json's step record points at it.
  InputArtifact store_trials_table(size_t index, const Json& rows) {
    const StepRun& step = steps_[index];
    const TuneSpec& spec = *step.planned->spec.tune;
    const fs::path dir = options_.run_dir / "steps" / step.planned->spec.name / kTrialsOutput;
    fs::remove_all(dir);  // a resumed run writes it again
    fs::create_directories(dir);
    write_file_atomic(dir / "trials.json",
                      Json{{"objective", {{"metric", spec.metric}, {"goal", spec.maximize ? "maximize" : "minimize"}}},
                           {"trials", rows}}
                              .dump(2) +
                          "\n");
    InputArtifact trials{dir, Json{{"type", kTrialsArtifactType}, {"trials", rows.size()}}, "", {}};
    Json& record = record_["steps"][step.planned->spec.name];
    if (journal_) {
      std::map<std::string, InputArtifact> inputs;
      for (const auto& [name, wire] : step.planned->spec.inputs) {
        const auto& artifacts = step_named(wire.step).artifacts;
        if (const auto it = artifacts.find(wire.output); it != artifacts.end()) inputs[name] = it->second;
      }
      trials.digest = journal_->commit_step_artifact(UnitRef{step.planned, step.planned->spec.name, -1}, kTrialsOutput,
                                                     kTrialsArtifactType, "every trial of the tuning step", dir,
                                                     trials.metadata, inputs);
      trials.path = journal_->artifact_path(trials.digest);
      record["digests"][kTrialsOutput] = trials.digest;
    }
    record["trials"] = relative_to_run(trials.path / "trials.json");
    return trials;
  }

  // A trial: one unit, or one per step of its trial template.
  void add_trial(size_t index, int trial, const Json& parameters) {
    const auto& parts = steps_[index].planned->trial_steps;
    if (parts.empty()) return add_unit(index, trial, parameters);
    for (size_t part = 0; part < parts.size(); ++part) add_unit(index, trial, parameters, static_cast<int>(part));
  }

  void add_unit(size_t index, int item_index, Json item, int part = -1) {
    Unit unit;
    unit.step = index;
    unit.item_index = item_index;
    unit.part = part;
    unit.item = std::move(item);
    const std::string& name = steps_[index].planned->spec.name;
    unit.display = item_index < 0 ? name : name + "[" + unit_key(unit) + "]";  // a trial's step: tune[3.train]
    unit.dir = options_.run_dir / "steps" / name;
    if (item_index >= 0) unit.dir /= std::to_string(item_index);
    if (part >= 0) unit.dir /= planned_of(unit).spec.name;
    if (journal_) unit.attempt = unit.attempt_base = journal_->last_attempt(unit.display);
    steps_[index].units.push_back(static_cast<int>(units_.size()));
    units_.push_back(std::move(unit));
  }

  void launch_ready_units() {
    const auto now = Clock::now();
    for (size_t i = 0; i < units_.size() && running_ < options_.jobs; ++i) {
      Unit& unit = units_[i];
      if (unit.status != kPending) continue;
      if (stopping() && !steps_[unit.step].planned->spec.is_finally) {  // also ends a retry's backoff
        finish_unit(static_cast<int>(i), kCancelled, "not started: the run is stopping");
        continue;
      }
      if (unit.retry_at && *unit.retry_at > now) continue;
      if (!loop_has_room(unit.step) || !siblings_done(unit)) continue;
      launch(static_cast<int>(i));
    }
  }

  // A trial template's step starts once the steps of its trial it reads
  // from (or runs after) succeeded; a failed one settles it instead.
  bool siblings_done(const Unit& unit) const {
    if (unit.part < 0) return true;
    for (const auto& name : planned_of(unit).upstream) {
      const Unit* sibling = sibling_named(unit, name);
      if (sibling == nullptr || !success(sibling->status)) return false;
    }
    return true;
  }

  const Unit* sibling_named(const Unit& unit, const std::string& name) const {
    for (const int u : steps_[unit.step].units) {
      const Unit& other = units_[static_cast<size_t>(u)];
      if (other.item_index == unit.item_index && other.part >= 0 && planned_of(other).spec.name == name) return &other;
    }
    return nullptr;
  }

  // What a unit runs: its step, or its step of a trial template.
  const PlannedStep& planned_of(const Unit& unit) const {
    const PlannedStep& planned = *steps_[unit.step].planned;
    return unit.part < 0 ? planned : planned.trial_steps[static_cast<size_t>(unit.part)];
  }

  // How run.json and displays name an item: "3", or "3.train" for a trial's step.
  std::string unit_key(const Unit& unit) const {
    const std::string index = std::to_string(unit.item_index);
    return unit.part < 0 ? index : index + "." + planned_of(unit).spec.name;
  }

  bool loop_has_room(size_t step_index) const {
    const int limit = steps_[step_index].planned->spec.parallelism;
    if (limit <= 0) return true;
    int running = 0;
    for (const int u : steps_[step_index].units) running += units_[static_cast<size_t>(u)].status == kRunning;
    return running < limit;
  }

  void launch(int id) {
    Unit& unit = units_[static_cast<size_t>(id)];
    StepRun& step = steps_[unit.step];
    const auto& spec = planned_of(unit).spec;
    ++unit.attempt;
    StepLaunch launch;
    launch.step = unit.display;
    launch.component = planned_of(unit).component;
    launch.attempt_dir = unit.dir / ("attempt-" + std::to_string(unit.attempt));
    launch.output_dir = launch.attempt_dir / "outputs";
    launch.temp_dir = launch.attempt_dir / "tmp";
    launch.checkpoint_dir = unit.dir / "checkpoint";
    launch.container = spec.container;
    try {
      fs::remove_all(launch.output_dir);  // left by an attempt a crashed host never recorded
      fs::create_directories(launch.output_dir);
      launch.parameters = render_parameters(step, unit);
      launch.inputs = wired_inputs(unit);
    } catch (const std::exception& e) {
      return finish_unit(id, kFailed, std::string("cannot prepare the step: ") + e.what());
    }
    if (journal_ && settle_without_running(id, launch)) {
      std::error_code ignored;
      fs::remove_all(launch.attempt_dir, ignored);  // created above for an attempt that was not needed
      return;
    }
    const std::string executor_name = spec.executor.empty() ? options_.executor : spec.executor;
    const auto executor = executors_.find(executor_name);
    if (executor == executors_.end()) return finish_unit(id, kFailed, "no executor named '" + executor_name + "'");
    unit.events.open(launch.attempt_dir / "events.jsonl", std::ios::app);
    unit.status = kRunning;
    unit.started = Clock::now();
    unit.timed_out = false;
    unit.stop_requested = false;
    unit.kill_at.reset();
    unit.retry_at.reset();
    unit.deadline = spec.timeout_seconds ? std::optional(unit.started + seconds(*spec.timeout_seconds)) : std::nullopt;
    ++running_;
    Json& attempts = unit_record(unit)["attempts"];
    attempts.push_back({{"attempt", unit.attempt},
                        {"status", kRunning},
                        {"started_at", wall_clock_now()},
                        {"executor", executor_name},
                        {"dir", relative_to_run(launch.attempt_dir)}});
    if (executor_name == "container") attempts.back()["image"] = spec.container.image;
    unit_record(unit)["status"] = kRunning;
    save();
    emit({{"type", "status"}, {"step", unit.display}, {"status", kRunning}, {"attempt", unit.attempt}});
    if (journal_) {
      journal_->attempt_started(unit_ref(unit), unit.attempt, executor_name, relative_to_run(launch.attempt_dir));
      kill_point("attempt-recorded");
    }
    try {
      unit.running = executor->second->start(launch, std::make_shared<Observer>(inbox_, id, unit.attempt));
      kill_point("attempt-started");
    } catch (const std::exception& e) {
      unit.running.reset();
      AttemptResult failed;
      failed.failure_class = "crash";
      failed.message = std::string("cannot start the step: ") + e.what();
      attempt_finished(id, std::move(failed));
    }
  }

  // Resume keeps what finished before the host stopped; the cache serves an
  // exact repeat. Either way the unit does not run. Returns whether it was settled.
  bool settle_without_running(int id, const StepLaunch& launch) {
    Unit& unit = units_[static_cast<size_t>(id)];
    if (options_.resume) {
      if (const auto kept = journal_->kept(unit.display)) {
        --unit.attempt;  // nothing ran
        adopt_outputs(unit, *kept);
        unit_record(unit)["resumed"] = "kept from before the resume";
        const std::string name = steps_[unit.step].planned->spec.name;
        const Json* before = previous_record_.contains("steps") && previous_record_["steps"].contains(name)
                                 ? &previous_record_["steps"][name]
                                 : nullptr;
        if (before && unit.item_index >= 0)
          before = before->contains("units") && (*before)["units"].contains(unit_key(unit))
                       ? &(*before)["units"][unit_key(unit)]
                       : nullptr;
        if (before && before->contains("attempts")) unit_record(unit)["attempts"] = (*before)["attempts"];
        finish_unit(id, kept->status, "");
        return true;
      }
    }
    unit.cache = journal_->decide(unit_ref(unit), launch.parameters, launch.inputs);
    unit.inputs = launch.inputs;
    Json cache{{"key", unit.cache.key}};
    if (unit.cache.hit) {
      kill_point("cache-hit");
      journal_->record_cache_hit(unit_ref(unit), unit.attempt, unit.cache, launch.inputs);
      cache["status"] = "hit";
      unit_record(unit)["cache"] = cache;
      adopt_outputs(unit, *unit.cache.hit);
      finish_unit(id, kCached, "");
      return true;
    }
    cache["status"] = unit.cache.enabled && options_.use_cache ? "miss" : "off";
    cache["reason"] = unit.cache.reason;
    unit_record(unit)["cache"] = cache;
    return false;
  }

  void adopt_outputs(Unit& unit, const StoredOutputs& stored) {
    unit.result.output_parameters = stored.outputs;
    unit.result.output_metadata = stored.metadata;
    unit.artifacts.clear();
    for (const auto& [name, digest] : stored.artifacts.items())
      unit.artifacts[name] = InputArtifact{
          journal_->artifact_path(digest), stored.metadata.value(name, Json::object()), digest.get<std::string>(), {}};
  }

  UnitRef unit_ref(const Unit& unit) const { return UnitRef{&planned_of(unit), unit.display, unit.item_index}; }

  Json render_parameters(const StepRun& step, const Unit& unit) const {
    const PlannedStep& planned = planned_of(unit);
    Json given = Json::object();
    for (const auto& [name, value] : planned.spec.parameters)
      given[name] = render_placeholders(value.value, resolver(step, &unit));
    if (step.planned->spec.tune)  // a trial: the suggestion wins over the step's own values
      for (const auto& [name, value] : unit.item.items())
        if (unit.part < 0 || planned.component.manifest.find_parameter(name) != nullptr) given[name] = value;
    std::vector<std::string> problems;
    Json resolved = resolve_parameters(planned.component.manifest, given, problems);
    if (!problems.empty()) throw std::runtime_error(problems.front());
    return resolved;
  }

  std::map<std::string, InputArtifact> wired_inputs(const Unit& unit) const {
    std::map<std::string, InputArtifact> inputs;
    for (const auto& [name, wire] : planned_of(unit).spec.inputs) {
      if (const Unit* sibling = unit.part < 0 ? nullptr : sibling_named(unit, wire.step)) {  // the same trial's step
        const auto it = sibling->artifacts.find(wire.output);
        if (it == sibling->artifacts.end())
          throw std::runtime_error("step '" + sibling->display + "' produced no output '" + wire.output + "'");
        inputs[name] = it->second;
        continue;
      }
      const StepRun& source = step_named(wire.step);
      const auto it = source.artifacts.find(wire.output);
      if (it == source.artifacts.end())
        throw std::runtime_error("step '" + wire.step + "' produced no output '" + wire.output + "'");
      inputs[name] = it->second;
    }
    return inputs;
  }

  // Resolves references in `when`, `for_each` and parameter placeholders.
  Expression::Resolver resolver(const StepRun& step, const Unit* unit) const {
    return [this, &step, unit](const std::string& ref) -> Json {
      if (ref == "item") {
        if (unit == nullptr || unit->item_index < 0) throw std::runtime_error("'item' is only defined inside a loop");
        return unit->item;
      }
      if (ref.rfind("params.", 0) == 0) return plan_.parameters.at(ref.substr(7));
      // Lets a pipeline name files that travel with it (bundled data sets).
      if (ref == "pipeline.dir") return fs::absolute(plan_.spec.file).parent_path().lexically_normal().string();
      if (ref == "run.status") return run_status_;
      if (ref == "run.id") return options_.run_id;
      if (ref == "run.name") return plan_.spec.name;
      if (ref == "run.failed_steps") return failed_steps_;
      const auto marker = ref.find(".outputs.");
      if (ref.rfind("steps.", 0) == 0 && marker != std::string::npos) {
        const StepRun& source = step_named(ref.substr(6, marker - 6));
        const std::string output = ref.substr(marker + 9);
        if (!source.outputs.contains(output))
          throw std::runtime_error("step '" + source.planned->spec.name + "' set no output parameter '" + output + "'");
        return source.outputs[output];
      }
      (void)step;
      throw std::runtime_error("unknown reference '" + ref + "'");
    };
  }

  // ---- messages and deadlines --------------------------------------------

  void handle(Message message) {
    if (message.cancel) return on_cancel_request();
    Unit& unit = units_.at(static_cast<size_t>(message.unit));
    if (message.attempt != unit.attempt || unit.status != kRunning) return;  // an abandoned attempt
    if (message.event) return on_attempt_event(unit, std::move(*message.event));
    if (message.result) attempt_finished(message.unit, std::move(*message.result));
  }

  void on_attempt_event(Unit& unit, const RunnerEvent& event) {
    Json record = event_json(event);
    record["time"] = seconds_since(started_);
    if (unit.events) unit.events << record.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    if (const auto* metric = std::get_if<MetricEvent>(&event)) {
      unit_record(unit)["metrics"][metric->name] = metric->value;
      if (steps_[unit.step].tune) on_trial_metric(static_cast<int>(&unit - units_.data()), record);
      if (journal_)
        journal_->metric(unit.display, metric->name, metric->step, metric->value, record["time"].get<double>());
    }
    const RunnerEventKind kind = kind_of(event);
    if (kind == RunnerEventKind::Progress || kind == RunnerEventKind::Log || kind == RunnerEventKind::Metric) {
      Json view = record;
      view["type"] = record["event"];
      view["step"] = unit.display;
      emit(view);
    }
  }

  void attempt_finished(int id, AttemptResult result) {
    Unit& unit = units_[static_cast<size_t>(id)];
    StepRun& step = steps_[unit.step];
    --running_;
    unit.running.reset();
    unit.events.close();
    if (unit.timed_out) {
      result.failure_class = "timeout";
      result.message = "timed out after " + Json(*planned_of(unit).spec.timeout_seconds).dump() + " s";
    } else if (!result.ok() && unit.stop_requested) {
      result.failure_class = kCancelled;
    }
    unit.outputs_dir = unit.dir / ("attempt-" + std::to_string(unit.attempt)) / "outputs";
    if (result.ok() && step.tune) {  // a trial keeps its curve, for the tuner of a later cached or resumed run
      const auto curve = step.tune->curves.find(id);
      if (curve != step.tune->curves.end()) result.output_parameters[kCurveOutput] = curve->second;
    }
    if (result.ok()) store_outputs(unit, result);
    Json& attempt = unit_record(unit)["attempts"].back();
    attempt["finished_at"] = wall_clock_now();
    attempt["duration_seconds"] = seconds_since(unit.started);
    attempt["status"] = result.ok() ? kSucceeded : (result.failure_class == kCancelled ? kCancelled : kFailed);
    if (!result.ok()) {
      attempt["failure"] = result.failure_class;
      attempt["message"] = result.message;
    }
    if (!result.ok() && unit.early_stop) {
      attempt["status"] = kEarlyStopped;
      if (journal_)
        journal_->attempt_ended(unit_ref(unit), unit.attempt, kEarlyStopped, result,
                                attempt["duration_seconds"].get<double>());
      return finish_unit(id, kEarlyStopped, "stopped by the tuner");
    }
    if (result.ok()) {
      std::error_code ignored;  // checkpoints only matter to a retry, and there will be none
      fs::remove_all(unit.dir / "checkpoint", ignored);
      return finish_unit(id, kSucceeded, "");
    }
    if (journal_)
      journal_->attempt_ended(unit_ref(unit), unit.attempt, attempt["status"].get<std::string>(), result,
                              attempt["duration_seconds"].get<double>());
    const auto& retries = planned_of(unit).spec.retries;
    const int made = unit.attempt - unit.attempt_base;
    if (made <= retries.limit && retries.on.count(result.failure_class) && !halted(unit)) {
      const double delay = retries.delay_before(made);
      unit.status = kPending;
      unit.retry_at = Clock::now() + seconds(delay);
      unit_record(unit)["status"] = kPending;
      save();
      emit({{"type", "status"},
            {"step", unit.display},
            {"status", "retrying"},
            {"attempt", unit.attempt},
            {"message", result.message + " (retry in " + Json(delay).dump() + " s)"}});
      return;
    }
    finish_unit(id, result.failure_class == kCancelled ? kCancelled : kFailed, result.message);
  }

  // A successful attempt's outputs: into the artifact store (with a store),
  // else left in the attempt directory. A failure to store fails the attempt.
  void store_outputs(Unit& unit, AttemptResult& result) {
    if (!journal_) {
      unit.result = result;
      unit.artifacts.clear();
      for (const auto& output : planned_of(unit).component.manifest.outputs)
        unit.artifacts[output.name] = InputArtifact{
            unit.outputs_dir / output.name, result.output_metadata.value(output.name, Json::object()), "", {}};
      return;
    }
    kill_point("attempt-finished");
    try {
      const StoredOutputs stored = journal_->commit(unit_ref(unit), unit.attempt, unit.outputs_dir, result, unit.cache,
                                                    unit.inputs, seconds_since(unit.started));
      adopt_outputs(unit, stored);
    } catch (const std::exception& e) {
      result.failure_class = "error";
      result.message = std::string("cannot store the outputs: ") + e.what();
    }
  }

  void check_deadlines() {
    const auto now = Clock::now();
    if (run_deadline_ && now >= *run_deadline_) {
      run_deadline_.reset();
      run_message_ = "the run timed out after " + Json(*plan_.spec.timeout_seconds).dump() + " s";
      run_timed_out_ = true;
      on_cancel_request();
    }
    for (size_t i = 0; i < units_.size(); ++i) {
      Unit& unit = units_[i];
      if (unit.status != kRunning || !unit.running) continue;
      if (unit.deadline && !unit.timed_out && now >= *unit.deadline) {
        unit.timed_out = true;
        unit.running->cancel();
        unit.kill_at = now + seconds(options_.grace_seconds);
      }
      if (unit.kill_at && now >= *unit.kill_at) {
        unit.kill_at.reset();
        unit.running->kill();
        if (executor_of(unit) == "inprocess") {  // a thread cannot be killed: stop waiting for it
          AttemptResult abandoned;
          abandoned.failure_class = "crash";
          abandoned.message = "did not stop within the grace period; abandoned (the inprocess executor cannot kill)";
          attempt_finished(static_cast<int>(i), std::move(abandoned));
        }
      }
    }
  }

  std::string executor_of(const Unit& unit) const {
    const auto& e = planned_of(unit).spec.executor;
    return e.empty() ? options_.executor : e;
  }

  void on_cancel_request() {
    ++cancel_requests_;
    const auto now = Clock::now();
    for (auto& unit : units_) {
      if (unit.status != kRunning || !unit.running) continue;
      unit.stop_requested = true;
      if (cancel_requests_ > 1) {
        unit.kill_at = now;  // a second request: no more grace
      } else {
        unit.running->cancel();
        if (!unit.kill_at) unit.kill_at = now + seconds(options_.grace_seconds);
      }
    }
    emit({{"type", "cancel"}, {"requests", cancel_requests_}});
  }

  bool stopping() const { return cancel_requests_ > 0 || policy_stop_; }

  // Whether a unit must not start again: asked to stop, or a DAG step of a
  // stopping run (finally steps run and retry whatever the policy did).
  bool halted(const Unit& unit) const {
    return unit.stop_requested || (stopping() && !steps_[unit.step].planned->spec.is_finally);
  }

  // failure_policy stop: ask every running DAG step to stop; none starts.
  void begin_policy_stop() {
    if (plan_.spec.failure_policy != "stop" || policy_stop_) return;
    policy_stop_ = true;
    const auto kill_at = Clock::now() + seconds(options_.grace_seconds);
    for (auto& unit : units_)
      if (unit.status == kRunning && unit.running && !steps_[unit.step].planned->spec.is_finally) {
        unit.stop_requested = true;
        unit.running->cancel();
        unit.kill_at = unit.kill_at ? std::min(*unit.kill_at, kill_at) : kill_at;
      }
  }

  // ---- state changes -------------------------------------------------------

  void finish_unit(int id, const std::string& status, const std::string& message) {
    Unit& unit = units_[static_cast<size_t>(id)];
    unit.status = status;
    Json& record = unit_record(unit);
    record["status"] = status;
    if (!message.empty()) record["message"] = message;
    if (success(status)) {
      record["outputs"] = unit.result.output_parameters;
      Json artifacts = Json::object(), digests = Json::object();
      for (const auto& [name, artifact] : unit.artifacts) {
        artifacts[name] = relative_to_run(artifact.path);
        if (!artifact.digest.empty()) digests[name] = artifact.digest;
      }
      record["artifacts"] = artifacts;
      if (!digests.empty()) record["digests"] = digests;
      if (!unit.result.output_metadata.empty()) record["artifact_metadata"] = unit.result.output_metadata;
    } else if (journal_) {
      journal_->unit_ended(unit_ref(unit), status, message);
    }
    save();
    emit({{"type", "status"}, {"step", unit.display}, {"status", status}, {"message", message}});
    const size_t index = unit.step;
    StepRun& step = steps_[index];
    if (step.tune)
      on_trial_finished(index, id);  // may add units: `unit` is not used below
    else if (status == kFailed && !step.planned->spec.is_finally)
      begin_policy_stop();  // a loop need not finish first
    for (const int u : step.units)
      if (!terminal(units_[static_cast<size_t>(u)].status)) return;
    if (step.tune) return complete_tuning(index);
    complete_step(index);
  }

  // All units of a step are done: aggregate their outcome and outputs.
  void complete_step(size_t index) {
    StepRun& step = steps_[index];
    std::string status = kCached, message;
    for (const int u : step.units) {
      const Unit& unit = units_[static_cast<size_t>(u)];
      if (unit.status == kSucceeded && status == kCached) status = kSucceeded;  // cached only if every unit was
      if (!success(unit.status) && success(status)) {
        status = unit.status;
        message = unit.display + ": " + unit_record(unit).value("message", unit.status);
      }
    }
    if (success(status)) collect_outputs(step);
    finish_step(index, status, message);
  }

  void collect_outputs(StepRun& step) {
    const auto& manifest = step.planned->component.manifest;
    if (!step.planned->spec.for_each) {
      const Unit& unit = units_[static_cast<size_t>(step.units.front())];
      step.outputs = unit.result.output_parameters;
      step.artifacts = unit.artifacts;
      return;
    }
    // A loop collects one value per item, in item order; an artifact becomes a
    // directory with one entry per item (0, 1, ...) linking to that item's output.
    for (const int u : step.units) {
      const Unit& unit = units_[static_cast<size_t>(u)];
      for (const auto& output : manifest.output_parameters)
        step.outputs[output.name].push_back(unit.result.output_parameters.value(output.name, Json(nullptr)));
    }
    for (const auto& output : manifest.outputs) {
      const fs::path collected = options_.run_dir / "steps" / step.planned->spec.name / "collected" / output.name;
      fs::remove_all(collected);  // a resumed run collects again
      fs::create_directories(collected);
      std::vector<std::string> digests;
      for (const int u : step.units) {
        const Unit& unit = units_[static_cast<size_t>(u)];
        const InputArtifact& item = unit.artifacts.at(output.name);
        fs::create_directory_symlink(item.path, collected / std::to_string(unit.item_index));
        digests.push_back(item.digest);
      }
      step.artifacts[output.name] = InputArtifact{collected, Json{{"collection", true}, {"items", step.units.size()}},
                                                  "", journal_ ? digests : std::vector<std::string>{}};
    }
  }

  void finish_step(size_t index, const std::string& status, const std::string& message) {
    StepRun& step = steps_[index];
    step.status = status;
    step.message = message;
    settled_ = settled_ || terminal(status);
    Json& record = record_["steps"][step.planned->spec.name];
    record["status"] = status;
    if (!message.empty()) record["message"] = message;
    if (success(status)) record["outputs"] = step.outputs;
    if (step.planned->spec.for_each) record["items"] = step.units.size();
    if (journal_ && step.units.empty() && terminal(status))
      journal_->unit_ended(UnitRef{step.planned, step.planned->spec.name, -1}, status, message);
    save();
    if (step.planned->spec.for_each || step.planned->spec.tune || status != kRunning)
      emit({{"type", "step"}, {"step", step.planned->spec.name}, {"status", status}, {"message", message}});
    if (status == kFailed && !step.planned->spec.is_finally) begin_policy_stop();
  }

  void set_step_status(size_t index, const std::string& status) {
    steps_[index].status = status;
    record_["steps"][steps_[index].planned->spec.name]["status"] = status;
  }

  // ---- helpers ---------------------------------------------------------------

  const StepRun& step_named(const std::string& name) const {
    const auto it = step_index_.find(name);
    if (it == step_index_.end()) throw std::runtime_error("unknown step '" + name + "'");
    return steps_[it->second];
  }

  Json& unit_record(const Unit& unit) {
    Json& step = record_["steps"][steps_[unit.step].planned->spec.name];
    if (unit.item_index < 0) {
      if (!step.contains("attempts")) step["attempts"] = Json::array();
      return step;
    }
    Json& item = step["units"][unit_key(unit)];
    if (!item.contains("attempts")) item = Json{{"item", unit.item}, {"attempts", Json::array()}};
    return item;
  }

  const Json& unit_record(const Unit& unit) const {
    const Json& step = record_["steps"][steps_[unit.step].planned->spec.name];
    return unit.item_index < 0 ? step : step["units"][unit_key(unit)];
  }

  // run.json is rewritten atomically (temp file, fsync, rename); to keep that
  // off the per-step path, changes are batched: written when the scheduler
  // is about to wait, at most every 100 ms, and always at the end.
  void save() { record_dirty_ = true; }

  // `path` (always under the run directory) relative to it, without the
  // file-system calls fs::relative makes.
  std::string relative_to_run(const fs::path& path) const {
    const std::string full = path.string(), base = options_.run_dir.string() + "/";
    return full.rfind(base, 0) == 0 ? full.substr(base.size()) : full;
  }

  void flush_record(bool force = false) {
    const auto now = Clock::now();
    if (!record_dirty_ || (!force && now - last_save_ < std::chrono::milliseconds(100))) return;
    kill_point("run-json");
    write_file_atomic(options_.run_dir / "run.json", record_.dump(2, ' ', false, Json::error_handler_t::replace));
    record_dirty_ = false;
    last_save_ = now;
  }

  void emit(const Json& event) const {
    if (options_.on_event) options_.on_event(event);
  }

  static std::string host_name() {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    return name;
  }

  const Plan& plan_;
  RunOptions options_;
  std::map<std::string, std::unique_ptr<Executor>> executors_;
  std::shared_ptr<Inbox> inbox_;
  std::vector<StepRun> steps_;
  std::unordered_map<std::string, size_t> step_index_;
  std::vector<Unit> units_;
  Json record_;
  Clock::time_point started_;
  std::optional<Clock::time_point> run_deadline_;
  int running_ = 0;
  int cancel_requests_ = 0;
  bool policy_stop_ = false;
  bool run_timed_out_ = false;
  bool record_dirty_ = false;
  Clock::time_point last_save_{};
  bool main_done_ = false;
  std::string run_status_ = kRunning;
  std::string run_message_;
  Json failed_steps_ = Json::array();
  std::unique_ptr<RunJournal> journal_;    // with a store only
  bool settled_ = false;                   // a step ended during this scheduling pass
  Json previous_record_ = Json::object();  // resume: the run.json the dead host left
};

Engine::Engine(const Plan& plan, RunOptions options, std::map<std::string, std::unique_ptr<Executor>> executors)
    : impl_(std::make_unique<Impl>(plan, std::move(options), std::move(executors))) {}

Engine::~Engine() = default;

Json Engine::run() {
  return impl_->run();
}

void Engine::request_cancel() {
  impl_->request_cancel();
}

std::string new_run_id(const std::string& pipeline_name) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  std::random_device random;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%04x", random() & 0xffffu);
  std::string name;
  for (const char c : pipeline_name.empty() ? std::string("run") : pipeline_name)
    name += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '-';
  return std::string(stamp) + "-" + name + "-" + suffix;
}

}  // namespace kiln::host

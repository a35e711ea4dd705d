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
  std::optional<Json> event;
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
  void on_event(Json event) override { inbox_->post({unit_, attempt_, std::move(event), std::nullopt, false}); }
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

// A tuning step's tuner object and trial bookkeeping (docs/tuning-status.md).
// Only the scheduler thread touches it, so tuner calls are serialised.
struct TuneState {
  const KilnTunerApi* api = nullptr;
  KilnTuner* tuner = nullptr;
  int suggested = 0, failed = 0;
  bool exhausted = false;      // no more suggestions: max_trials, the tuner's [] or a stop
  std::string failure;         // why the step fails (too many failed trials, a tuner error)
  std::map<int, Json> curves;  // per unit: {"step": value} of the objective metric
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
    int active = 0;
    for (const int u : step.units) active += terminal(units_[static_cast<size_t>(u)].status) ? 0 : 1;
    const int room = std::min(parallel - active, spec.max_trials - tune.suggested);
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
      add_unit(index, id, trial.at("parameters"));
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
    emit({{"type", "status"}, {"step", unit.display}, {"status", "stopping"}, {"message", "stopped by the tuner"}});
  }

  // The objective a finished trial reached: its output parameter of the
  // metric's name, else the last value it reported, else NaN.
  double trial_value(int id) const {
    const Unit& unit = units_[static_cast<size_t>(id)];
    const StepRun& step = steps_[unit.step];
    const std::string& metric = step.planned->spec.tune->metric;
    if (success(unit.status) && unit.result.output_parameters.contains(metric) &&
        unit.result.output_parameters[metric].is_number())
      return unit.result.output_parameters[metric].get<double>();
    const auto curve = step.tune->curves.find(id);
    if (curve == step.tune->curves.end() || curve->second.empty()) return std::nan("");
    int64_t last = std::numeric_limits<int64_t>::min();
    double value = std::nan("");
    for (const auto& [at, v] : curve->second.items())
      if (std::stoll(at) >= last) last = std::stoll(at), value = v.get<double>();
    return value;
  }

  // A trial ended: tell the tuner, count failures, suggest more. May add
  // units (references into units_ are invalid afterwards).
  void on_trial_finished(size_t index, int id) {
    StepRun& step = steps_[index];
    TuneState& tune = *step.tune;
    const TuneSpec& spec = *step.planned->spec.tune;
    const Unit& unit = units_[static_cast<size_t>(id)];
    if (unit.status == kCancelled) return;  // the run or the step is stopping: nothing to learn
    const std::string status = success(unit.status)           ? "succeeded"
                               : unit.status == kEarlyStopped ? kEarlyStopped
                                                              : "failed";
    const int64_t trial = unit.item_index;
    try {
      // A trial served from the cache or kept by a resume did not report
      // here: replay the curve it stored, so rung rules see it too.
      const Json& stored = unit.result.output_parameters;
      if (success(unit.status) && !tune.curves.count(id) && stored.contains(kCurveOutput) &&
          stored[kCurveOutput].is_object()) {
        std::map<int64_t, double> curve;
        for (const auto& [at, value] : stored[kCurveOutput].items())
          if (value.is_number()) curve[std::stoll(at)] = value.get<double>();
        for (const auto& [at, value] : curve) {
          check_tuner(tune.api->observe(tune.tuner, trial, at, value, 0, nullptr));
          tune.curves[id][std::to_string(at)] = value;
        }
      }
      check_tuner(tune.api->observe(tune.tuner, trial, -1, trial_value(id), 1, Json(status).dump().c_str()));
      if (status == "failed" && ++tune.failed > spec.max_failed_trials)
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
    const auto kill_at = Clock::now() + seconds(options_.grace_seconds);
    for (const int u : step.units) {
      Unit& unit = units_[static_cast<size_t>(u)];
      if (unit.status == kPending) {
        unit.status = kCancelled;  // never started; finish_unit below would recurse into this step
        unit_record(unit)["status"] = kCancelled;
      } else if (unit.status == kRunning && unit.running && !unit.stop_requested) {
        unit.stop_requested = true;
        unit.running->cancel();
        unit.kill_at = kill_at;
      }
    }
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
    for (const int u : step.units) {
      const Unit& unit = units_[static_cast<size_t>(u)];
      const double value = trial_value(u);
      double duration = 0;
      for (const auto& attempt : unit_record(unit).value("attempts", Json::array()))
        duration += attempt.value("duration_seconds", 0.0);
      const auto curve = step.tune->curves.find(u);
      Json row{{"trial", unit.item_index},
               {"parameters", unit.item},
               {"status", unit.status},
               {spec.metric, std::isfinite(value) ? Json(value) : Json(nullptr)},
               {"curve", curve == step.tune->curves.end() ? Json::object() : curve->second},
               {"outputs", success(unit.status) ? without_curve(unit.result.output_parameters) : Json::object()},
               {"duration_seconds", duration}};
      rows.push_back(std::move(row));
      ++counts[unit.status];
      if (success(unit.status) && std::isfinite(value) &&
          (best < 0 || (spec.maximize ? value > best_value : value < best_value))) {
        best = u;
        best_value = value;
      }
    }
    const fs::path dir = options_.run_dir / "steps" / step.planned->spec.name / kTrialsOutput;
    fs::create_directories(dir);
    std::ofstream(dir / "trials.json")
        << Json{{"objective", {{"metric", spec.metric}, {"goal", spec.maximize ? "maximize" : "minimize"}}},
                {"trials", rows}}
               .dump(2)
        << "\n";
    std::string summary;
    for (const auto& [status, n] : counts) summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + status;
    record_["steps"][step.planned->spec.name]["trials"] = relative_to_run(dir / "trials.json");
    if (!step.tune->failure.empty()) return finish_step(index, kFailed, step.tune->failure + " (" + summary + ")");
    if (counts.count(kCancelled))  // the run is stopping: a partial search is no result
      return finish_step(index, kCancelled, "the search was cancelled (" + summary + ")");
    if (best < 0) return finish_step(index, kFailed, "no trial succeeded (" + summary + ")");
    const Unit& winner = units_[static_cast<size_t>(best)];
    step.outputs =
        Json{{"best_parameters", winner.item}, {"best_value", best_value}, {"best_trial", winner.item_index}};
    for (const auto& [name, value] : winner.item.items()) step.outputs["best_" + name] = value;
    step.artifacts = winner.artifacts;
    step.artifacts[kTrialsOutput] =
        InputArtifact{dir, Json{{"type", kTrialsArtifactType}, {"trials", rows.size()}}, "", {}};
    finish_step(index, kSucceeded,
                "best: trial " + std::to_string(winner.item_index) + ", " + spec.metric + " = " +
                    Json(best_value).dump() + " (" + summary + ")");
  }

  void add_unit(size_t index, int item_index, Json item) {
    Unit unit;
    unit.step = index;
    unit.item_index = item_index;
    unit.item = std::move(item);
    const std::string& name = steps_[index].planned->spec.name;
    unit.display = item_index < 0 ? name : name + "[" + std::to_string(item_index) + "]";
    unit.dir = options_.run_dir / "steps" / name;
    if (item_index >= 0) unit.dir /= std::to_string(item_index);
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
      if (!loop_has_room(unit.step)) continue;
      launch(static_cast<int>(i));
    }
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
    const auto& spec = step.planned->spec;
    ++unit.attempt;
    StepLaunch launch;
    launch.step = unit.display;
    launch.component = step.planned->component;
    launch.attempt_dir = unit.dir / ("attempt-" + std::to_string(unit.attempt));
    launch.output_dir = launch.attempt_dir / "outputs";
    launch.temp_dir = launch.attempt_dir / "tmp";
    launch.checkpoint_dir = unit.dir / "checkpoint";
    launch.container = spec.container;
    try {
      fs::remove_all(launch.output_dir);  // left by an attempt a crashed host never recorded
      fs::create_directories(launch.output_dir);
      launch.parameters = render_parameters(step, unit);
      launch.inputs = wired_inputs(step);
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
          before = before->contains("units") && (*before)["units"].contains(std::to_string(unit.item_index))
                       ? &(*before)["units"][std::to_string(unit.item_index)]
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

  UnitRef unit_ref(const Unit& unit) const { return UnitRef{steps_[unit.step].planned, unit.display, unit.item_index}; }

  Json render_parameters(const StepRun& step, const Unit& unit) const {
    Json given = Json::object();
    for (const auto& [name, value] : step.planned->spec.parameters)
      given[name] = render_placeholders(value.value, resolver(step, &unit));
    if (step.planned->spec.tune)  // a trial: the suggestion wins over the step's own values
      for (const auto& [name, value] : unit.item.items()) given[name] = value;
    std::vector<std::string> problems;
    Json resolved = resolve_parameters(step.planned->component.manifest, given, problems);
    if (!problems.empty()) throw std::runtime_error(problems.front());
    return resolved;
  }

  std::map<std::string, InputArtifact> wired_inputs(const StepRun& step) const {
    std::map<std::string, InputArtifact> inputs;
    for (const auto& [name, wire] : step.planned->spec.inputs) {
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

  void on_attempt_event(Unit& unit, Json event) {
    event["time"] = seconds_since(started_);
    if (unit.events) unit.events << event.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    const std::string kind = event.value("event", "");
    if (kind == "metric") {
      unit_record(unit)["metrics"][event.value("name", "")] = event["value"];
      if (steps_[unit.step].tune) on_trial_metric(static_cast<int>(&unit - units_.data()), event);
      if (journal_ && event["value"].is_number())
        journal_->metric(unit.display, event.value("name", ""), event.value("step", int64_t{0}),
                         event["value"].get<double>(), event["time"].get<double>());
    }
    if (kind == "progress" || kind == "log" || kind == "metric") {
      Json view = event;
      view["type"] = kind;
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
      result.message = "timed out after " + Json(*step.planned->spec.timeout_seconds).dump() + " s";
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
    const auto& retries = step.planned->spec.retries;
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
      for (const auto& output : steps_[unit.step].planned->component.manifest.outputs)
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
    const auto& e = steps_[unit.step].planned->spec.executor;
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
    Json& item = step["units"][std::to_string(unit.item_index)];
    if (!item.contains("attempts")) item = Json{{"item", unit.item}, {"attempts", Json::array()}};
    return item;
  }

  const Json& unit_record(const Unit& unit) const {
    const Json& step = record_["steps"][steps_[unit.step].planned->spec.name];
    return unit.item_index < 0 ? step : step["units"][std::to_string(unit.item_index)];
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

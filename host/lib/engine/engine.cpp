// The engine's scheduler: one thread owns all state; attempts report through
// a queue; the thread sleeps until a message arrives or the nearest deadline
// (timeout, kill after grace, retry backoff, run timeout) passes.
#include <unistd.h>
#include <kiln/host/engine.hpp>
#include <kiln/host/engine_time.hpp>
#include <kiln/host/event_log.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/invoke.hpp>
#include <kiln/host/placeholders.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/run_journal.hpp>
#include <kiln/host/run_record.hpp>
#include <kiln/host/step_context.hpp>

#include "tuning_controller.hpp"

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

using S = StepStatus;


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
  // What arrived, without waiting (virtual time: the clock posts while it advances).
  std::deque<Message> take() {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::deque<Message> out;
    out.swap(messages_);
    return out;
  }
  bool empty() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return messages_.empty();
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
  UnitName name;  // name.name.display: "train", "loop[3]", "tune[3.train]"
  fs::path dir;
  StepStatus status = S::pending;
  int attempt = 0;
  int attempt_base = 0;  // attempts made before a resume: they do not count against retries
  std::unique_ptr<RunningAttempt> running;
  std::optional<Clock::time_point> deadline, kill_at, retry_at;
  bool timed_out = false;
  bool stop_requested = false;  // the engine asked this attempt to stop
  bool early_stop = false;      // ... because its tuner said so (a trial)
  std::string message;          // why it ended, when it did not succeed
  Clock::time_point started;
  std::ofstream events;
  std::map<std::string, uint64_t> log_sizes{{"stdout.log", 0}, {"stderr.log", 0}};  // for LogGrew hints
  double attempt_seconds = 0;  // all its attempts' durations
  AttemptResult result;
  fs::path outputs_dir;
  std::map<std::string, InputArtifact> artifacts;  // its outputs, for downstream steps
  std::map<std::string, InputArtifact> inputs;     // what the running attempt reads (for lineage)
  CacheDecision cache;
};

// The output parameter in which a trial keeps its objective curve
// ({"step": value}); the engine adds it, the component never sees it.
constexpr const char* kCurveOutput = "kiln.curve";

Json without_curve(Json outputs) {
  outputs.erase(kCurveOutput);
  return outputs;
}

struct StepRun {
  const PlannedStep* planned = nullptr;
  std::unique_ptr<TuningController> tune;  // tuning steps only
  StepStatus status = S::pending;
  std::string message;
  std::vector<int> units;
  Json outputs = Json::object();                   // output parameters (lists for loops)
  std::map<std::string, InputArtifact> artifacts;  // output artifacts for downstream inputs
};

class Engine::Impl {
 public:
  Impl(const Plan& plan, RunOptions options, std::map<std::string, std::unique_ptr<Executor>> executors)
      : plan_(plan),
        options_(std::move(options)),
        executors_(std::move(executors)),
        inbox_(std::make_shared<Inbox>()),
        time_(options_.time != nullptr ? options_.time : &real_time_) {
    for (const auto& step : plan_.steps) {
      StepRun run;
      run.planned = &step;
      step_index_[step.spec.name] = steps_.size();
      steps_.push_back(std::move(run));
    }
  }

  Json run() {
    started_ = clock_now();
    fs::create_directories(options_.run_dir / "steps");
    if (options_.store) begin_journal();
    event_log_ = std::make_unique<EventLogWriter>(options_.run_dir / kEventLogName);
    next_seq_ = event_log_->next_seq();
    observers_ = {&record_, event_log_.get()};
    if (journal_) {
      journal_observer_ = std::make_unique<JournalObserver>(*journal_);
      observers_.push_back(journal_observer_.get());
    }
    for (RunObserver* observer : options_.observers) observers_.push_back(observer);
    events::RunStarted started{options_.run_id, plan_.spec.name, plan_.spec.file, options_.executor,
                               plan_.parameters, options_.resume, {}};
    for (const auto& s : steps_) started.steps.push_back(s.planned->spec.name);
    publish(std::move(started));
    flush(true);
    if (plan_.spec.timeout_seconds) run_deadline_ = started_ + seconds(*plan_.spec.timeout_seconds);
    try {
      loop();
    } catch (const std::exception& e) {  // e.g. a full disk: stop what runs, record why
      run_status_ = RunStatus::failed;
      run_message_ = std::string("the engine stopped: ") + e.what();
      for (auto& unit : units_)
        if (unit.status == S::running && unit.running) unit.running->kill();
    }
    publish(events::RunFinished{run_status_, run_message_, seconds_since(started_)});
    flush(true);
    return record_.json();
  }

  void request_cancel() { inbox_->post({-1, 0, std::nullopt, std::nullopt, true}); }

 private:
  // One state change: every observer records it, in order (run.json, the
  // event log, the store's journal, then the caller's: the live view).
  template <typename Event>
  void publish(Event&& event) {
    const RunEvent e(std::forward<Event>(event));
    const uint64_t seq = next_seq_++;
    for (RunObserver* observer : observers_) observer->on_event(seq, e);
  }

  // The scheduler is about to wait (or the run ended): observers write what they batched.
  void flush(bool final) {
    for (RunObserver* observer : observers_) observer->flush(final);
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
      flush(false);
      for (auto& message : wait()) handle(std::move(message));
      check_deadlines();
      check_log_growth();
    }
  }

  // The messages that arrive before the next deadline (real time: blocks;
  // virtual time: the clock moves on instead).
  std::deque<Message> wait() {
    if (!time_->is_virtual()) return inbox_->wait(next_deadline());
    if (inbox_->empty() && !time_->advance(next_deadline()))
      throw std::logic_error("virtual time: no deadline and no event to wait for; the run cannot end");
    return inbox_->take();
  }

  Clock::time_point clock_now() const { return time_->now(); }
  double seconds_since(Clock::time_point start) const { return std::chrono::duration<double>(clock_now() - start).count(); }

  // Readers tailing a running attempt's stdout.log / stderr.log learn from
  // the event log that it grew, at most every kLogGrowthInterval.
  static constexpr std::chrono::milliseconds kLogGrowthInterval{500};

  void check_log_growth() {
    const auto now = clock_now();
    if (now < next_log_check_) return;
    next_log_check_ = now + kLogGrowthInterval;
    for (auto& unit : units_) {
      if (unit.status != S::running) continue;
      for (auto& [file, known] : unit.log_sizes) {
        std::error_code error;
        const auto path = unit.dir / ("attempt-" + std::to_string(unit.attempt)) / file;
        const uint64_t size = fs::file_size(path, error);
        if (error || size == known) continue;
        known = size;
        publish(events::LogGrew{unit.name, unit.attempt, relative_to_run(path), size});
      }
    }
  }

  bool all_terminal(bool finally_phase) const {
    for (const auto& s : steps_)
      if (s.planned->spec.is_finally == finally_phase && !is_terminal(s.status)) return false;
    return true;
  }

  void finish_main_phase() {
    main_done_ = true;
    Json failed = Json::array();
    bool cancelled = false;
    for (const auto& s : steps_) {
      if (s.planned->spec.is_finally) continue;
      if (s.status == S::failed) failed.push_back(s.planned->spec.name);
      cancelled = cancelled || s.status == S::cancelled;
    }
    if (run_timed_out_)
      run_status_ = RunStatus::failed;
    else if (cancel_requests_ > 0)
      run_status_ = RunStatus::cancelled;
    else  // nobody asked to cancel
      run_status_ = failed.empty() && !cancelled ? RunStatus::succeeded : RunStatus::failed;
    failed_steps_ = failed;
  }

  std::optional<Clock::time_point> next_deadline() const {
    std::optional<Clock::time_point> next = run_deadline_;
    const auto consider = [&](const std::optional<Clock::time_point>& t) {
      if (t && (!next || *t < *next)) next = t;
    };
    for (const auto& u : units_) {
      if (u.status == S::running) {
        if (!u.timed_out) consider(u.deadline);
        consider(u.kill_at);
        consider(next_log_check_);
      } else if (u.status == S::pending) {
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
        if (steps_[i].status == S::pending && (!steps_[i].planned->spec.is_finally || main_done_)) try_begin(i);
      launch_ready_units();
    } while (settled_);
  }

  // Decides whether a pending step can begin, and how.
  void try_begin(size_t index) {
    StepRun& step = steps_[index];
    std::string blocked_by_failure, blocked_by_cancel, blocked_by_skip;
    for (const auto& up : step.planned->upstream) {
      const StepRun& u = step_named(up);
      if (!is_terminal(u.status)) return;
      if (u.status == S::failed || u.status == S::upstream_failed) blocked_by_failure = up;
      if (u.status == S::cancelled) blocked_by_cancel = up;
      // Like Argo: a skipped step satisfies an ordering dependency, but a
      // step that needs its outputs cannot run without them.
      if (u.status == S::skipped && step.planned->data_upstream.count(up)) blocked_by_skip = up;
    }
    if (!blocked_by_failure.empty())
      return finish_step(index, S::upstream_failed, "upstream step '" + blocked_by_failure + "' did not succeed");
    if (!blocked_by_cancel.empty())
      return finish_step(index, S::cancelled, "not started: upstream step '" + blocked_by_cancel + "' was cancelled");
    if (!blocked_by_skip.empty())
      return finish_step(index, S::skipped, "upstream step '" + blocked_by_skip + "' was skipped");
    if (stopping() && !step.planned->spec.is_finally)
      return finish_step(index, S::cancelled, "not started: the run is stopping");
    try {
      if (step.planned->when && !step.planned->when->evaluate_condition(resolver(step, nullptr)))
        return finish_step(index, S::skipped, "condition is false: " + step.planned->when->text());
      if (step.planned->spec.tune)
        begin_tune(index);
      else if (step.planned->spec.for_each)
        begin_loop(index);
      else
        add_unit(index, -1, nullptr);
    } catch (const std::exception& e) {
      return finish_step(index, S::failed, e.what());
    }
    if (step.status == S::pending) finish_step(index, S::running, "");
  }

  void begin_loop(size_t index) {
    StepRun& step = steps_[index];
    const Json items = render_placeholders(step.planned->spec.for_each->value, resolver(step, nullptr));
    if (!items.is_array()) throw std::runtime_error("for_each resolved to " + items.dump() + ", not a list");
    for (const auto& output : step.planned->component.manifest.output_parameters)
      step.outputs[output.name] = Json::array();
    if (items.empty()) return finish_step(index, S::succeeded, "for_each is empty");
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
    const Json config = render_placeholders(spec.tuner_config(), resolver(step, nullptr));
    step.tune = std::make_unique<TuningController>(spec, component->tuner, config);
    suggest_trials(index);
    if (step.units.empty()) finish_step(index, S::failed, "the tuner suggested no trial");
  }

  // Adds trials until parallel_trials are pending or running, max_trials were
  // suggested, or the tuner has no more.
  void suggest_trials(size_t index) {
    StepRun& step = steps_[index];
    const TuneSpec& spec = *step.planned->spec.tune;
    if (step.tune->exhausted() || stopping()) return;
    const int parallel = spec.parallel_trials > 0             ? spec.parallel_trials
                         : step.planned->spec.parallelism > 0 ? step.planned->spec.parallelism
                                                              : options_.jobs;
    std::set<int> active, known;  // trials with a step still to finish; every trial so far
    for (const int u : step.units) {
      const Unit& unit = units_[static_cast<size_t>(u)];
      known.insert(unit.item_index);
      if (!is_terminal(unit.status)) active.insert(unit.item_index);
    }
    for (const SuggestedTrial& trial : step.tune->next(static_cast<int>(active.size()), parallel)) {
      if (!known.insert(trial.id).second)
        throw std::runtime_error("tuner: suggest returned a repeated trial: " + std::to_string(trial.id));
      add_trial(index, trial.id, trial.parameters);
    }
  }

  // The objective metric of a running trial: to the tuner, which may stop it.
  void on_trial_metric(int id, const std::string& name, double value, int64_t at) {
    Unit& unit = units_[static_cast<size_t>(id)];
    bool stop = false;
    try {
      const bool may_stop = !unit.stop_requested && unit.status == S::running && unit.running;
      stop = steps_[unit.step].tune->on_metric(id, unit.item_index, name, value, at, may_stop);
    } catch (const std::exception& e) {
      return stop_trials(unit.step, e.what());
    }
    if (!stop) return;
    unit.early_stop = true;
    unit.stop_requested = true;
    unit.running->cancel();
    unit.kill_at = clock_now() + seconds(options_.grace_seconds);
    // The rest of its trial waits for this step, and is settled when it ends
    // (a step that finishes anyway keeps its success).
    publish(events::StopRequested{unit.name, "stopped by the tuner"});
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
  std::optional<StepStatus> trial_status(size_t index, int trial) const {
    std::set<StepStatus> statuses;
    for (const int u : trial_units(index, trial)) statuses.insert(units_[static_cast<size_t>(u)].status);
    for (const StepStatus status : statuses)
      if (!is_terminal(status)) return std::nullopt;
    for (const StepStatus status : {S::failed, S::early_stopped, S::cancelled, S::upstream_failed})
      if (statuses.count(status)) return status == S::upstream_failed ? S::failed : status;
    return statuses.count(S::succeeded) ? S::succeeded : S::cached;
  }

  // One step of a trial did not succeed: the rest of the trial does not
  // start (`status` says why), and what runs of it is told to stop.
  void settle_trial(size_t index, int trial, StepStatus status, const std::string& why) {
    halt_units(trial_units(index, trial), status, why);
  }

  // Units that have not started end with `status` (not through finish_unit,
  // which would recurse into their step); running ones are asked to stop.
  void halt_units(const std::vector<int>& units, StepStatus status, const std::string& why) {
    const auto kill_at = clock_now() + seconds(options_.grace_seconds);
    for (const int u : units) {
      Unit& unit = units_[static_cast<size_t>(u)];
      if (unit.status == S::pending) {
        unit.status = status;
        events::UnitFinished halted;
        halted.unit = unit.name;
        halted.item = unit.item;
        halted.status = status;
        halted.message = why;
        publish(std::move(halted));
      } else if (unit.status == S::running && unit.running && !unit.stop_requested) {
        unit.stop_requested = true;
        unit.running->cancel();
        unit.kill_at = kill_at;
      }
    }
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
      if (is_success(unit.status) && outputs.contains(metric) && outputs[metric].is_number())
        return outputs[metric].get<double>();
    }
    const Curve curve = steps_[index].tune->curve_of(trial_units(index, trial));
    return curve.empty() ? std::nan("") : curve.rbegin()->second;
  }

  // A trial's step served from the cache or kept by a resume did not report
  // here: its stored curve becomes its curve, so rung rules see it too.
  // Returns the values to replay to the tuner, by step.
  Curve restore_stored_curves(size_t index, int trial) {
    Curve replay;
    for (const int u : trial_units(index, trial)) {
      const Unit& unit = units_[static_cast<size_t>(u)];
      const Json& stored = unit.result.output_parameters;
      if (is_success(unit.status) && stored.contains(kCurveOutput))
        for (const auto& [at, value] : steps_[index].tune->restore(u, stored[kCurveOutput])) replay[at] = value;
    }
    return replay;
  }

  // A unit of a trial ended: when it was the trial's last, tell the tuner,
  // count failures, suggest more. May add units (references into units_ are
  // invalid afterwards).
  void on_trial_finished(size_t index, int id) {
    StepRun& step = steps_[index];
    const int trial = units_[static_cast<size_t>(id)].item_index;
    const StepStatus ended = units_[static_cast<size_t>(id)].status;
    if (!is_success(ended))
      settle_trial(index, trial, ended == S::failed ? S::upstream_failed : S::cancelled,
                   "step '" + units_[static_cast<size_t>(id)].name.display + "' of this trial did not succeed");
    const std::optional<StepStatus> outcome = trial_status(index, trial);
    if (!outcome || *outcome == S::cancelled) return;  // still running, or the run or step is stopping
    const double value = trial_value(index, trial);
    publish(events::TrialFinished{step.planned->spec.name, trial, *outcome,
                                  std::isfinite(value) ? std::optional<double>(value) : std::nullopt,
                                  units_[static_cast<size_t>(trial_units(index, trial).front())].item});
    try {
      step.tune->finished(trial, *outcome, value, restore_stored_curves(index, trial));
      if (!step.tune->failure().empty()) return stop_trials(index, step.tune->failure());
      suggest_trials(index);
    } catch (const std::exception& e) {
      stop_trials(index, e.what());
    }
  }

  // The tuning step fails: no more trials; running ones are told to stop.
  void stop_trials(size_t index, const std::string& why) {
    StepRun& step = steps_[index];
    step.tune->fail(why);
    halt_units(step.units, S::cancelled, "");
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
      duration += record_.attempt_seconds(unit.name);
      const Json own = is_success(unit.status) ? without_curve(unit.result.output_parameters) : Json::object();
      if (unit.part < 0)
        outputs = own;
      else
        outputs[steps_[index].planned->trial_steps[static_cast<size_t>(unit.part)].spec.name] = own;
    }
    for (const auto& [at, v] : steps_[index].tune->curve_of(units)) curve[std::to_string(at)] = v;
    return Json{{"trial", trial},
                {"parameters", units_[static_cast<size_t>(units.front())].item},
                {"status", to_string(trial_status(index, trial).value_or(S::pending))},
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
      const StepStatus status = trial_status(index, trial).value_or(S::pending);
      const double value = trial_value(index, trial);
      ++counts[std::string(to_string(status))];
      if (is_success(status) && std::isfinite(value) &&
          (best < 0 || (spec.maximize ? value > best_value : value < best_value))) {
        best = trial;
        best_value = value;
      }
    }
    const InputArtifact trials = store_trials_table(index, rows);
    std::string summary;
    for (const auto& [status, n] : counts) summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + status;
    if (!step.tune->failure().empty())
      return finish_step(index, S::failed, step.tune->failure() + " (" + summary + ")");
    if (counts.count(std::string(to_string(S::cancelled))))  // the run is stopping: a partial search is no result
      return finish_step(index, S::cancelled, "the search was cancelled (" + summary + ")");
    if (best < 0) return finish_step(index, S::failed, "no trial succeeded (" + summary + ")");
    const std::vector<int> winner = trial_units(index, best);
    const Json& parameters = units_[static_cast<size_t>(winner.front())].item;
    step.outputs = Json{{"best_parameters", parameters}, {"best_value", best_value}, {"best_trial", best}};
    for (const auto& [name, value] : parameters.items()) step.outputs["best_" + name] = value;
    step.artifacts.clear();
    for (const int u : winner)  // a trial template's later steps win a name several produce
      for (const auto& [name, artifact] : units_[static_cast<size_t>(u)].artifacts) step.artifacts[name] = artifact;
    step.artifacts[kTrialsOutput] = trials;
    finish_step(index, S::succeeded,
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
    }
    publish(events::TrialsRecorded{step.planned->spec.name, relative_to_run(trials.path / "trials.json"), trials.digest});
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
    unit.name.step = name;
    unit.name.key = item_index < 0 ? "" : unit_key(unit);
    unit.name.display = item_index < 0 ? name : name + "[" + unit.name.key + "]";  // a trial's step: tune[3.train]
    unit.name.item_index = item_index;
    unit.name.planned = &planned_of(unit);
    unit.dir = options_.run_dir / "steps" / name;
    if (item_index >= 0) unit.dir /= std::to_string(item_index);
    if (part >= 0) unit.dir /= planned_of(unit).spec.name;
    if (journal_) unit.attempt = unit.attempt_base = journal_->last_attempt(unit.name.display);
    steps_[index].units.push_back(static_cast<int>(units_.size()));
    units_.push_back(std::move(unit));
  }

  void launch_ready_units() {
    const auto now = clock_now();
    for (size_t i = 0; i < units_.size() && running_ < options_.jobs; ++i) {
      Unit& unit = units_[i];
      if (unit.status != S::pending) continue;
      if (stopping() && !steps_[unit.step].planned->spec.is_finally) {  // also ends a retry's backoff
        finish_unit(static_cast<int>(i), S::cancelled, "not started: the run is stopping");
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
      if (sibling == nullptr || !is_success(sibling->status)) return false;
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
    for (const int u : steps_[step_index].units) running += units_[static_cast<size_t>(u)].status == S::running;
    return running < limit;
  }

  void launch(int id) {
    Unit& unit = units_[static_cast<size_t>(id)];
    StepRun& step = steps_[unit.step];
    const auto& spec = planned_of(unit).spec;
    ++unit.attempt;
    StepLaunch launch;
    launch.step = unit.name.display;
    launch.component = planned_of(unit).component;
    launch.attempt_dir = unit.dir / ("attempt-" + std::to_string(unit.attempt));
    launch.output_dir = launch.attempt_dir / "outputs";
    launch.temp_dir = launch.attempt_dir / "tmp";
    launch.checkpoint_dir = unit.dir / "checkpoint";
    launch.container = spec.container;
    try {
      launch.parameters = render_parameters(step, unit);
      launch.inputs = wired_inputs(unit);
    } catch (const std::exception& e) {
      return finish_unit(id, S::failed, std::string("cannot prepare the step: ") + e.what());
    }
    if (journal_ && settle_without_running(id, launch)) return;  // no directory made for it (issue 16: speed)
    try {
      fs::remove_all(launch.output_dir);  // left by an attempt a crashed host never recorded
      fs::create_directories(launch.attempt_dir);  // outputs/<port> is made when written (or committed)
    } catch (const std::exception& e) {
      return finish_unit(id, S::failed, std::string("cannot prepare the step: ") + e.what());
    }
    const std::string executor_name = spec.executor.empty() ? options_.executor : spec.executor;
    const auto executor = executors_.find(executor_name);
    if (executor == executors_.end()) return finish_unit(id, S::failed, "no executor named '" + executor_name + "'");
    unit.status = S::running;
    unit.started = clock_now();
    unit.timed_out = false;
    unit.stop_requested = false;
    unit.kill_at.reset();
    unit.retry_at.reset();
    unit.deadline = spec.timeout_seconds ? std::optional(unit.started + seconds(*spec.timeout_seconds)) : std::nullopt;
    ++running_;
    for (auto& [file, size] : unit.log_sizes) size = 0;
    publish(events::AttemptStarted{unit.name, unit.item, unit.attempt, executor_name,
                                   relative_to_run(launch.attempt_dir),
                                   executor_name == "container" ? spec.container.image : ""});
    try {
      unit.running = executor->second->start(launch, std::make_shared<Observer>(inbox_, id, unit.attempt));
      kill_point("attempt-started");
    } catch (const std::exception& e) {
      unit.running.reset();
      AttemptResult failed;
      failed.failure_class = std::string(to_string(FailureClass::crash));
      failed.message = std::string("cannot start the step: ") + e.what();
      attempt_finished(id, std::move(failed));
    }
  }

  // Resume keeps what finished before the host stopped; the cache serves an
  // exact repeat. Either way the unit does not run. Returns whether it was settled.
  bool settle_without_running(int id, const StepLaunch& launch) {
    Unit& unit = units_[static_cast<size_t>(id)];
    if (options_.resume) {
      if (const auto kept = journal_->kept(unit.name.display)) {
        --unit.attempt;  // nothing ran
        adopt_outputs(unit, *kept);
        finish_unit(id, kept->status, "", /*resumed=*/true);
        return true;
      }
    }
    unit.cache = journal_->decide(unit_ref(unit), launch.parameters, launch.inputs);
    unit.inputs = launch.inputs;
    if (unit.cache.hit) {
      kill_point("cache-hit");
      journal_->record_cache_hit(unit_ref(unit), unit.attempt, unit.cache, launch.inputs);
      publish(events::CacheDecided{unit.name, unit.item, unit.cache.key, events::CacheUse::hit, ""});
      adopt_outputs(unit, *unit.cache.hit);
      finish_unit(id, S::cached, "");
      return true;
    }
    const bool looked = unit.cache.enabled && options_.use_cache;
    publish(events::CacheDecided{unit.name, unit.item, unit.cache.key,
                                 looked ? events::CacheUse::miss : events::CacheUse::off, unit.cache.reason});
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

  UnitRef unit_ref(const Unit& unit) const { return UnitRef{&planned_of(unit), unit.name.display, unit.item_index}; }

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
          throw std::runtime_error("step '" + sibling->name.display + "' produced no output '" + wire.output + "'");
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

  // Resolves references in `when`, `for_each` and parameter placeholders,
  // each bound to a typed Reference by the plan.
  Expression::ReferenceResolver resolver(const StepRun& step, const Unit* unit) const {
    return [this, &step, unit](const Reference& ref) -> Json {
      switch (ref.kind) {
        case Reference::Kind::Item:
          if (unit == nullptr || unit->item_index < 0) throw std::runtime_error("'item' is only defined inside a loop");
          return unit->item;
        case Reference::Kind::Param:
          return plan_.parameters.at(ref.name);
        case Reference::Kind::PipelineDir:  // lets a pipeline name files that travel with it (bundled data sets)
          return fs::absolute(plan_.spec.file).parent_path().lexically_normal().string();
        case Reference::Kind::RunStatus:
          return std::string(to_string(run_status_));
        case Reference::Kind::RunId:
          return options_.run_id;
        case Reference::Kind::RunName:
          return plan_.spec.name;
        case Reference::Kind::RunFailedSteps:
          return failed_steps_;
        case Reference::Kind::StepOutput: {
          const StepRun& source = step_named(ref.step);
          if (!source.outputs.contains(ref.output))
            throw std::runtime_error("step '" + source.planned->spec.name + "' set no output parameter '" + ref.output +
                                     "'");
          return source.outputs[ref.output];
        }
      }
      (void)step;
      throw std::logic_error("unhandled reference kind");
    };
  }

  // ---- messages and deadlines --------------------------------------------

  void handle(Message message) {
    if (message.cancel) return on_cancel_request();
    Unit& unit = units_.at(static_cast<size_t>(message.unit));
    if (message.attempt != unit.attempt || unit.status != S::running) return;  // an abandoned attempt
    if (message.event) return on_attempt_event(unit, std::move(*message.event));
    if (message.result) attempt_finished(message.unit, std::move(*message.result));
  }

  void on_attempt_event(Unit& unit, const RunnerEvent& event) {
    const double time = seconds_since(started_);
    Json record = event_json(event);
    record["time"] = time;
    if (!unit.events.is_open())  // made at the first event: most steps of a big DAG send none
      unit.events.open(unit.dir / ("attempt-" + std::to_string(unit.attempt)) / "events.jsonl", std::ios::app);
    if (unit.events) unit.events << record.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    if (const auto* metric = std::get_if<MetricEvent>(&event)) {
      publish(events::Metric{unit.name, metric->name, metric->value, metric->step, time});
      if (steps_[unit.step].tune)
        on_trial_metric(static_cast<int>(&unit - units_.data()), metric->name, metric->value, metric->step);
    } else if (const auto* progress = std::get_if<ProgressEvent>(&event)) {
      publish(events::Progress{unit.name, progress->fraction, progress->message});
    } else if (const auto* log = std::get_if<LogEvent>(&event)) {
      publish(events::Log{unit.name, log_level_text(log->level), log->message});
    }
  }

  void attempt_finished(int id, AttemptResult result) {
    Unit& unit = units_[static_cast<size_t>(id)];
    StepRun& step = steps_[unit.step];
    --running_;
    unit.running.reset();
    unit.events.close();
    if (unit.timed_out) {
      result.failure_class = std::string(to_string(FailureClass::timeout));
      result.message = "timed out after " + Json(*planned_of(unit).spec.timeout_seconds).dump() + " s";
    } else if (!result.ok() && unit.stop_requested) {
      result.failure_class = std::string(to_string(FailureClass::stopped));
    }
    unit.outputs_dir = unit.dir / ("attempt-" + std::to_string(unit.attempt)) / "outputs";
    if (result.ok() && step.tune) {  // a trial keeps its curve, for the tuner of a later cached or resumed run
      if (Json curve = step.tune->curve_json(id); !curve.is_null()) result.output_parameters[kCurveOutput] = curve;
    }
    if (result.ok()) store_outputs(unit, result);
    const FailureClass failure =
        result.ok() ? FailureClass::none : parse_failure_class(result.failure_class).value_or(FailureClass::crash);
    const double duration = seconds_since(unit.started);
    unit.attempt_seconds += duration;
    StepStatus status = result.ok() ? S::succeeded : failure == FailureClass::stopped ? S::cancelled : S::failed;
    if (!result.ok() && unit.early_stop) status = S::early_stopped;
    publish(events::AttemptEnded{unit.name, unit.attempt, status, failure, result.message, duration});
    if (status == S::early_stopped) return finish_unit(id, S::early_stopped, "stopped by the tuner");
    if (result.ok()) {
      std::error_code ignored;  // checkpoints only matter to a retry, and there will be none
      fs::remove_all(unit.dir / "checkpoint", ignored);
      return finish_unit(id, S::succeeded, "");
    }
    const auto& retries = planned_of(unit).spec.retries;
    const int made = unit.attempt - unit.attempt_base;
    if (made <= retries.limit && retries.on.count(result.failure_class) && !halted(unit)) {
      const double delay = retries.delay_before(made);
      unit.status = S::pending;
      unit.retry_at = clock_now() + seconds(delay);
      publish(events::RetryScheduled{unit.name, unit.attempt, delay,
                                     result.message + " (retry in " + Json(delay).dump() + " s)"});
      return;
    }
    finish_unit(id, failure == FailureClass::stopped ? S::cancelled : S::failed, result.message);
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
      result.failure_class = std::string(to_string(FailureClass::error));
      result.message = std::string("cannot store the outputs: ") + e.what();
    }
  }

  void check_deadlines() {
    const auto now = clock_now();
    if (run_deadline_ && now >= *run_deadline_) {
      run_deadline_.reset();
      run_message_ = "the run timed out after " + Json(*plan_.spec.timeout_seconds).dump() + " s";
      run_timed_out_ = true;
      on_cancel_request();
    }
    for (size_t i = 0; i < units_.size(); ++i) {
      Unit& unit = units_[i];
      if (unit.status != S::running || !unit.running) continue;
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
          abandoned.failure_class = std::string(to_string(FailureClass::crash));
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
    const auto now = clock_now();
    for (auto& unit : units_) {
      if (unit.status != S::running || !unit.running) continue;
      unit.stop_requested = true;
      if (cancel_requests_ > 1) {
        unit.kill_at = now;  // a second request: no more grace
      } else {
        unit.running->cancel();
        if (!unit.kill_at) unit.kill_at = now + seconds(options_.grace_seconds);
      }
    }
    publish(events::CancelRequested{cancel_requests_});
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
    const auto kill_at = clock_now() + seconds(options_.grace_seconds);
    for (auto& unit : units_)
      if (unit.status == S::running && unit.running && !steps_[unit.step].planned->spec.is_finally) {
        unit.stop_requested = true;
        unit.running->cancel();
        unit.kill_at = unit.kill_at ? std::min(*unit.kill_at, kill_at) : kill_at;
      }
  }

  // ---- state changes -------------------------------------------------------

  void finish_unit(int id, StepStatus status, const std::string& message, bool resumed = false) {
    Unit& unit = units_[static_cast<size_t>(id)];
    unit.status = status;
    unit.message = message;
    events::UnitFinished finished;
    finished.unit = unit.name;
    finished.item = unit.item;
    finished.status = status;
    finished.message = message;
    finished.resumed = resumed;
    if (is_success(status)) {
      finished.outputs = unit.result.output_parameters;
      for (const auto& [name, artifact] : unit.artifacts)
        finished.artifacts.push_back({name, relative_to_run(artifact.path), artifact.digest});
      finished.metadata = unit.result.output_metadata;
    }
    publish(std::move(finished));
    const size_t index = unit.step;
    StepRun& step = steps_[index];
    if (step.tune)
      on_trial_finished(index, id);  // may add units: `unit` is not used below
    else if (status == S::failed && !step.planned->spec.is_finally)
      begin_policy_stop();  // a loop need not finish first
    for (const int u : step.units)
      if (!is_terminal(units_[static_cast<size_t>(u)].status)) return;
    if (step.tune) return complete_tuning(index);
    complete_step(index);
  }

  // All units of a step are done: aggregate their outcome and outputs.
  void complete_step(size_t index) {
    StepRun& step = steps_[index];
    StepStatus status = S::cached;
    std::string message;
    for (const int u : step.units) {
      const Unit& unit = units_[static_cast<size_t>(u)];
      if (unit.status == S::succeeded && status == S::cached) status = S::succeeded;  // cached only if every unit was
      if (!is_success(unit.status) && is_success(status)) {
        status = unit.status;
        message = unit.name.display + ": " + (unit.message.empty() ? std::string(to_string(unit.status)) : unit.message);
      }
    }
    if (is_success(status)) collect_outputs(step);
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

  void finish_step(size_t index, StepStatus status, const std::string& message) {
    StepRun& step = steps_[index];
    step.status = status;
    step.message = message;
    settled_ = settled_ || is_terminal(status);
    events::StepChanged changed;
    changed.step = step.planned->spec.name;
    changed.status = status;
    changed.message = message;
    if (is_success(status)) changed.outputs = step.outputs;
    if (step.planned->spec.for_each) changed.items = step.units.size();
    changed.has_units = !step.units.empty();
    changed.planned = step.planned;
    publish(std::move(changed));
    if (status == S::failed && !step.planned->spec.is_finally) begin_policy_stop();
  }

  // ---- helpers ---------------------------------------------------------------

  const StepRun& step_named(const std::string& name) const {
    const auto it = step_index_.find(name);
    if (it == step_index_.end()) throw std::runtime_error("unknown step '" + name + "'");
    return steps_[it->second];
  }

  // `path` (always under the run directory) relative to it, without the
  // file-system calls fs::relative makes.
  std::string relative_to_run(const fs::path& path) const {
    const std::string full = path.string(), base = options_.run_dir.string() + "/";
    return full.rfind(base, 0) == 0 ? full.substr(base.size()) : full;
  }

  const Plan& plan_;
  RunOptions options_;
  std::map<std::string, std::unique_ptr<Executor>> executors_;
  std::shared_ptr<Inbox> inbox_;
  RealTime real_time_;
  EngineTime* time_;
  std::vector<StepRun> steps_;
  std::unordered_map<std::string, size_t> step_index_;
  std::vector<Unit> units_;
  RunRecord record_{options_.run_dir};
  std::unique_ptr<EventLogWriter> event_log_;
  std::unique_ptr<JournalObserver> journal_observer_;
  std::vector<RunObserver*> observers_;
  uint64_t next_seq_ = 1;
  Clock::time_point next_log_check_{};
  Clock::time_point started_;
  std::optional<Clock::time_point> run_deadline_;
  int running_ = 0;
  int cancel_requests_ = 0;
  bool policy_stop_ = false;
  bool run_timed_out_ = false;
  bool main_done_ = false;
  RunStatus run_status_ = RunStatus::running;
  std::string run_message_;
  Json failed_steps_ = Json::array();
  std::unique_ptr<RunJournal> journal_;    // with a store only
  bool settled_ = false;  // a step ended during this scheduling pass
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

}  // namespace kiln::host

// The engine's effects: one thread owns the run; attempts report through a
// queue; the thread sleeps until a message arrives or the nearest deadline
// (timeout, kill after grace, retry backoff, run timeout) passes. What to do
// is the scheduler's decision (scheduler.hpp), every status change is
// RunState's (run_state.hpp); here the decisions are carried out: executors
// start and stop attempts, the store commits outputs and answers the cache,
// the tuning controller asks the tuner, and every transition's event is
// published to the observers.
#include <unistd.h>
#include <kiln/host/engine.hpp>
#include <kiln/host/engine_time.hpp>
#include <kiln/host/event_log.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/json_bounded.hpp>
#include <kiln/host/placeholders.hpp>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/run_journal.hpp>
#include <kiln/host/run_record.hpp>
#include <kiln/host/step_context.hpp>

#include "checkpoint_handoff.hpp"
#include "inbox.hpp"
#include "launch_builder.hpp"
#include "run_state.hpp"
#include "scheduler.hpp"
#include "trials.hpp"
#include "tuning_controller.hpp"

#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <optional>
#include <set>

namespace kiln::host {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using S = StepStatus;

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


// What the engine holds for a unit's attempt besides its state: the
// executor's handle, the attempt's event file, the log sizes last seen.
struct AttemptHandle {
  std::unique_ptr<RunningAttempt> running;
  std::ofstream events;
  std::map<std::string, uint64_t> log_sizes{{"stdout.log", 0}, {"stderr.log", 0}};  // for LogGrew hints
};

class Engine::Impl {
 public:
  Impl(const Plan& plan, RunOptions options, std::map<std::string, std::unique_ptr<Executor>> executors)
      : plan_(plan),
        options_(std::move(options)),
        executors_(std::move(executors)),
        inbox_(std::make_shared<Inbox>()),
        time_(options_.time != nullptr ? options_.time : &real_time_),
        state_(plan_, options_.run_dir, options_.run_id, options_.gpus.ids),
        scheduler_(SchedulerOptions{options_.jobs, options_.grace_seconds, options_.executor}),
        launches_(state_, options_.executor, options_.grace_seconds),
        tuners_(plan_.steps.size()) {
    const auto problems = gpu_problems(plan_, options_.gpus.ids, options_.gpus.source, options_.executor);
    if (!problems.empty()) throw SpecError(problems);
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
                               plan_.parameters, options_.resume, {}, {}};
    for (const auto& s : state_.steps()) {
      started.steps.push_back(s.planned->spec.name);
      started.needs.emplace_back(s.planned->upstream.begin(), s.planned->upstream.end());
    }
    publish(std::move(started));
    flush(true);
    if (plan_.spec.timeout_seconds) run_deadline_ = started_ + seconds_duration(*plan_.spec.timeout_seconds);
    try {
      loop();
    } catch (const std::exception& e) {  // e.g. a full disk: stop what runs, record why
      state_.fail_run(std::string("the engine stopped: ") + e.what());
      for (size_t i = 0; i < attempts_.size(); ++i)
        if (state_.units()[i].status() == S::running && attempts_[i].running) attempts_[i].running->kill();
    }
    publish(state_.finish_run(seconds_since(started_)));
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

  // The engine is about to wait (or the run ended): observers write what they batched.
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
      if (state_.all_terminal(false) && !state_.main_done()) {
        state_.finish_main_phase();
        continue;  // the finally steps can begin now
      }
      if (state_.main_done() && state_.all_terminal(true)) return;
      flush(false);
      for (auto& message : wait()) handle(std::move(message));
      check_deadlines();
      check_log_growth();
    }
  }

  // The messages that arrive before the next deadline (real time: blocks;
  // virtual time: the clock moves on instead).
  std::deque<Message> wait() {
    const auto until = scheduler_.next_deadline(state_, run_deadline_, next_log_check_, !time_->is_virtual());
    if (!time_->is_virtual()) return inbox_->wait(until);
    if (inbox_->empty() && !time_->advance(until))
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
    for (const int id : state_.running_units()) {  // publishing changes no status
      const UnitState& unit = state_.unit(id);
      for (auto& [file, known] : attempts_[static_cast<size_t>(id)].log_sizes) {
        std::error_code error;
        const auto path = unit.attempt_dir() / file;
        const uint64_t size = fs::file_size(path, error);
        if (error || size == known) continue;
        known = size;
        publish(events::LogGrew{unit.name, unit.attempt, state_.relative_to_run(path), size});
      }
    }
  }

  // ---- steps ----------------------------------------------------------------

  // Repeats while steps finish without running (cache hits, resumed steps):
  // their dependents may start now, and no message will come to say so.
  void schedule() {
    do {
      settled_ = false;
      // In index order; a step that becomes ready behind the cursor waits for the next pass.
      for (std::optional<size_t> next = scheduler_.next_step(state_, 0); next;
           next = scheduler_.next_step(state_, *next + 1))
        begin_step(*next);
      launch_ready_units();
    } while (settled_);
  }

  // Carries out the scheduler's decision about a pending step.
  void begin_step(size_t index) {
    const StepDecision decision = scheduler_.decide_step(state_, index);
    try {
      switch (decision.kind) {
        case StepDecision::Kind::wait:
          return;
        case StepDecision::Kind::finish:
          return finish_step(index, decision.status, decision.message);
        case StepDecision::Kind::begin_tune:
          begin_tune(index);
          break;
        case StepDecision::Kind::begin_loop:
          begin_loop(index, decision.items);
          break;
        case StepDecision::Kind::begin_unit:
          add_unit(index, -1, nullptr);
          break;
      }
    } catch (const std::exception& e) {
      return finish_step(index, S::failed, e.what());
    }
    if (state_.step(index).status() == S::pending) finish_step(index, S::running, "");
  }

  void begin_loop(size_t index, const Json& items) {
    StepState& step = state_.step(index);
    for (const auto& output : step.planned->component.manifest.output_parameters)
      step.outputs[output.name] = Json::array();
    if (items.empty()) return finish_step(index, S::succeeded, "for_each is empty");
    for (size_t i = 0; i < items.size(); ++i) add_unit(index, static_cast<int>(i), items[i]);
  }

  void finish_step(size_t index, StepStatus status, const std::string& message) {
    publish(state_.finish_step(index, status, message));
    settled_ = settled_ || is_terminal(status);
    if (status == S::failed && !state_.step(index).planned->spec.is_finally) begin_policy_stop();
  }

  // All units of a step are done: aggregate their outcome and outputs.
  void complete_step(size_t index) {
    const Outcome outcome = scheduler_.step_outcome(state_, index);
    if (is_success(outcome.status)) collect_outputs(state_.step(index));
    finish_step(index, outcome.status, outcome.message);
  }

  void collect_outputs(StepState& step) {
    const auto& manifest = step.planned->component.manifest;
    if (!step.planned->spec.for_each) {
      const UnitState& unit = state_.unit(step.units.front());
      step.outputs = unit.result.output_parameters;
      step.artifacts = unit.artifacts;
      return;
    }
    // A loop collects one value per item, in item order; an artifact becomes a
    // directory with one entry per item (0, 1, ...) linking to that item's output.
    for (const int u : step.units) {
      const UnitState& unit = state_.unit(u);
      for (const auto& output : manifest.output_parameters)
        step.outputs[output.name].push_back(unit.result.output_parameters.value(output.name, Json(nullptr)));
    }
    for (const auto& output : manifest.outputs) {
      const fs::path collected = options_.run_dir / "steps" / step.planned->spec.name / "collected" / output.name;
      fs::remove_all(collected);  // a resumed run collects again
      fs::create_directories(collected);
      std::vector<std::string> digests;
      for (const int u : step.units) {
        const UnitState& unit = state_.unit(u);
        const InputArtifact& item = unit.artifacts.at(output.name);
        fs::create_directory_symlink(item.path, collected / std::to_string(unit.item_index));
        digests.push_back(item.digest);
      }
      step.artifacts[output.name] = InputArtifact{collected, Json{{"collection", true}, {"items", step.units.size()}},
                                                  "", journal_ ? digests : std::vector<std::string>{}};
    }
  }

  // ---- tuning steps: trials are units whose parameters the tuner suggests ----

  void begin_tune(size_t index) {
    const PlannedStep& planned = *state_.step(index).planned;
    const TuneSpec& spec = *planned.spec.tune;
    if (!planned.tuner) throw std::runtime_error("tuner '" + spec.tuner + "' is not in the plan");
    const auto library = PluginLibrary::load(planned.tuner->library);
    const LoadedComponent* component = library->find(spec.tuner);
    if (component == nullptr || component->tuner == nullptr)
      throw std::runtime_error("component '" + spec.tuner + "' offers no tuner table");
    Json config = render_placeholders(spec.tuner_config(), state_.resolver(nullptr));
    // A model-based sampler learns, for trial k, from trials 0 ... k - P
    // (settings.history_lag overrides): a history that does not depend on timing.
    config["parallel_trials"] = scheduler_.trial_parallelism(planned);
    tuners_[index] = std::make_unique<TuningController>(spec, component->tuner, config,
                                                        options_.run_dir / "steps" / planned.spec.name / "tuner.jsonl");
    suggest_trials(index);
    if (state_.step(index).units.empty()) finish_step(index, S::failed, "the tuner suggested no trial");
  }

  // Adds trials until parallel_trials are pending or running, max_trials were
  // suggested, or the tuner has no more. (The tuner handle rejects a repeated id.)
  void suggest_trials(size_t index) {
    TuningController& tuner = *tuners_[index];
    if (tuner.exhausted() || state_.stopping()) return;
    const int parallel = scheduler_.trial_parallelism(*state_.step(index).planned);
    for (const SuggestedTrial& trial : tuner.next(scheduler_.active_trials(state_, index), parallel))
      add_trial(index, trial.id, trial.parameters);
  }

  // A trial: one unit, or one per step of its trial template.
  void add_trial(size_t index, int trial, const Json& parameters) {
    const auto& parts = state_.step(index).planned->trial_steps;
    if (parts.empty()) return add_unit(index, trial, parameters);
    for (size_t part = 0; part < parts.size(); ++part) add_unit(index, trial, parameters, static_cast<int>(part));
  }

  // The objective metric of a running trial: to the tuner, which may stop it.
  void on_trial_metric(int id, const std::string& name, double value, int64_t at) {
    const UnitState& unit = state_.unit(id);
    bool stop = false;
    try {
      const bool may_stop = !unit.stop_requested() && unit.status() == S::running && attempts_[static_cast<size_t>(id)].running;
      stop = tuners_[unit.step]->on_metric(id, unit.item_index, name, value, at, may_stop);
    } catch (const std::exception& e) {
      return stop_trials(unit.step, e.what());
    }
    if (!stop) return;
    apply_stop(scheduler_.on_early_stop(id, clock_now()), /*early=*/true);
    // The rest of its trial waits for this step, and is settled when it ends
    // (a step that finishes anyway keeps its success).
    publish(events::StopRequested{unit.name, "stopped by the tuner"});
  }

  // Units that have not started end with `status` (not through finish_unit,
  // which would recurse into their step); running ones are asked to stop.
  void halt_units(const std::vector<int>& units, StepStatus status, const std::string& why) {
    for (const StopOrder& order : scheduler_.on_halt(state_, units, clock_now())) apply_stop(order);
    for (const int u : units)
      if (state_.unit(u).status() == S::pending) publish(state_.finish_unit(u, status, why));
  }

  // A trial's step served from the cache or kept by a resume did not report
  // here: its stored curve becomes its curve, so rung rules see it too.
  // Returns the values to replay to the tuner, by step.
  Curve restore_stored_curves(size_t index, int trial) {
    Curve replay;
    for (const int u : state_.trial_units(index, trial)) {
      const UnitState& unit = state_.unit(u);
      const Json& stored = unit.result.output_parameters;
      if (is_success(unit.status()) && stored.contains(kCurveOutput))
        for (const auto& [at, value] : tuners_[index]->restore(u, stored[kCurveOutput])) replay[at] = value;
    }
    return replay;
  }

  // A unit of a trial ended: when it was the trial's last, tell the tuner,
  // count failures, suggest more. May add units (references into the
  // state's units are invalid afterwards).
  void on_trial_finished(size_t index, int id) {
    const int trial = state_.unit(id).item_index;
    const StepStatus ended = state_.unit(id).status();
    // One step of a trial did not succeed: the rest of the trial does not
    // start, and what runs of it is told to stop.
    if (!is_success(ended))
      halt_units(state_.trial_units(index, trial), ended == S::failed ? S::upstream_failed : S::cancelled,
                 "step '" + state_.unit(id).name.display + "' of this trial did not succeed");
    const std::optional<StepStatus> outcome = scheduler_.trial_status(state_, index, trial);
    if (!outcome || *outcome == S::cancelled) return;  // still running, or the run or step is stopping
    const double value = trial_value(state_, *tuners_[index], index, trial);
    publish(events::TrialFinished{state_.step(index).planned->spec.name, trial, *outcome,
                                  std::isfinite(value) ? std::optional<double>(value) : std::nullopt,
                                  state_.unit(state_.trial_units(index, trial).front()).item});
    TuningController& tuner = *tuners_[index];
    try {
      tuner.finished(trial, *outcome, value, restore_stored_curves(index, trial),
                     objective_values(state_, tuner, index, trial));
      prune_pbt_checkpoints(state_, index, [this] {
        if (journal_) journal_->write_group();
      });
      if (!tuner.failure().empty()) return stop_trials(index, tuner.failure());
      suggest_trials(index);
    } catch (const std::exception& e) {
      stop_trials(index, e.what());
    }
  }

  // The tuning step fails: no more trials; running ones are told to stop.
  void stop_trials(size_t index, const std::string& why) {
    tuners_[index]->fail(why);
    halt_units(state_.step(index).units, S::cancelled, "");
  }

  // Every trial is done: the trials artifact, the best trial's parameters and
  // artifacts as the step's outputs.
  void complete_tuning(size_t index) {
    Json rows = Json::array();
    std::map<int, double> values;
    std::vector<int> succeeded;
    for (const int trial : state_.trial_ids(index)) {
      double duration = 0;
      for (const int u : state_.trial_units(index, trial)) duration += record_.attempt_seconds(state_.unit(u).name);
      const StepStatus status = scheduler_.trial_status(state_, index, trial).value_or(S::pending);
      rows.push_back(trial_row(state_, *tuners_[index], index, trial, status, duration));
      values[trial] = trial_value(state_, *tuners_[index], index, trial);
      if (is_success(status)) succeeded.push_back(trial);
    }
    // Several objectives: the Pareto front is the result, and best_* is its
    // trial best on the first objective.
    const bool multi = !state_.step(index).planned->spec.tune->objectives.empty();
    const Json front = trials_pareto_front(state_, *tuners_[index], index, succeeded);
    if (multi) keep_to_pareto_front(front, rows, values);
    const InputArtifact trials = store_trials_table(index, rows);
    const TuningOutcome outcome = scheduler_.tuning_outcome(state_, index, values, tuners_[index]->failure());
    if (outcome.status == S::succeeded)
      set_tuning_outputs(state_, state_.step(index), index, outcome.best_trial, outcome.best_value,
                         multi ? &front : nullptr, trials);
    finish_step(index, outcome.status, outcome.message);
  }

  // The trials artifact (trials.json): with a store, committed there like
  // any step output (a digest, lineage from the step's inputs), else left
  // in the step's directory. run.json's step record points at it.
  InputArtifact store_trials_table(size_t index, const Json& rows) {
    const StepState& step = state_.step(index);
    const TuneSpec& spec = *step.planned->spec.tune;
    const fs::path dir = options_.run_dir / "steps" / step.planned->spec.name / kTrialsOutput;
    fs::remove_all(dir);  // a resumed run writes it again
    fs::create_directories(dir);
    write_file_atomic(dir / "trials.json", trials_table(spec, rows).dump(2) + "\n");
    InputArtifact trials{dir, Json{{"type", kTrialsArtifactType}, {"trials", rows.size()}}, "", {}};
    if (journal_) {
      std::map<std::string, InputArtifact> inputs;
      for (const auto& [name, wire] : step.planned->spec.inputs) {
        const auto& artifacts = state_.step_named(wire.step).artifacts;
        if (const auto it = artifacts.find(wire.output); it != artifacts.end()) inputs[name] = it->second;
      }
      trials.digest = journal_->commit_step_artifact(UnitRef{step.planned, step.planned->spec.name, -1}, kTrialsOutput,
                                                     kTrialsArtifactType, "every trial of the tuning step", dir,
                                                     trials.metadata, inputs);
      trials.path = journal_->artifact_path(trials.digest);
    }
    publish(events::TrialsRecorded{step.planned->spec.name,
                                   state_.relative_to_run(trials.path / "trials.json"), trials.digest});
    return trials;
  }

  // ---- units ------------------------------------------------------------------

  void add_unit(size_t index, int item_index, Json item, int part = -1) {
    const int id = state_.add_unit(index, item_index, std::move(item), part);
    attempts_.emplace_back();
    UnitState& unit = state_.unit(id);
    if (journal_) unit.attempt = unit.attempt_base = journal_->last_attempt(unit.name.display);
  }

  // Carries out the scheduler's decisions about pending units, one at a time
  // (a launch may settle a unit from the cache and change what comes next).
  void launch_ready_units() {
    const auto now = clock_now();
    for (size_t from = 0;;) {
      const std::optional<UnitDecision> decision = scheduler_.next_unit(state_, now, from);
      if (!decision) return;
      from = static_cast<size_t>(decision->unit) + 1;
      if (decision->kind == UnitDecision::Kind::cancel)
        finish_unit(decision->unit, S::cancelled, decision->message);
      else
        launch(decision->unit, decision->gpus);
    }
  }

  void launch(int id, const std::vector<int>& gpus) {
    UnitState& unit = state_.unit(id);
    const auto& spec = state_.planned_of(unit).spec;
    ++unit.attempt;
    StepLaunch launch;
    try {
      launch = launches_.build(unit);
    } catch (const std::exception& e) {
      return finish_unit(id, S::failed, std::string("cannot prepare the step: ") + e.what());
    }
    if (journal_ && settle_without_running(id, launch)) return;  // no directory made for it
    try {
      hand_over_checkpoint(state_, unit);  // a PBT trial starts from its donor's checkpoint
      fs::remove_all(launch.output_dir);  // left by an attempt a crashed host never recorded
      // The attempt directory is made by what first writes there: the
      // executor (a process's working directory), outputs/<port> and tmp/
      // when the step asks for them (or at commit), events.jsonl at the first
      // event; an inprocess step that writes nothing makes no directory.
    } catch (const std::exception& e) {
      return finish_unit(id, S::failed, std::string("cannot prepare the step: ") + e.what());
    }
    const std::string executor_name = launches_.executor_of(unit);
    const auto executor = executors_.find(executor_name);
    if (executor == executors_.end()) return finish_unit(id, S::failed, "no executor named '" + executor_name + "'");
    AttemptHandle& attempt = attempts_[static_cast<size_t>(id)];
    for (auto& [file, size] : attempt.log_sizes) size = 0;
    const auto now = clock_now();
    const auto deadline =
        spec.timeout_seconds ? std::optional(now + seconds_duration(*spec.timeout_seconds)) : std::nullopt;
    launch.gpus = gpus;
    events::AttemptStarted started = state_.start_attempt(id, now, deadline, executor_name, launch.attempt_dir,
                                                          executor_name == "container" ? spec.container.image : "", gpus);
    started.parameters = launch.parameters;  // what it runs with, for run.json and the event log
    started.inputs = launches_.describe_inputs(unit, launch.inputs);
    publish(std::move(started));
    try {
      attempt.running = executor->second->start(launch, std::make_shared<Observer>(inbox_, id, unit.attempt));
      kill_point("attempt-started");
    } catch (const std::exception& e) {
      attempt.running.reset();
      AttemptResult failed;
      failed.failure_class = std::string(to_string(FailureClass::crash));
      failed.message = std::string("cannot start the step: ") + e.what();
      attempt_finished(id, std::move(failed));
    }
  }

  // Resume keeps what finished before the host stopped; the cache serves an
  // exact repeat. Either way the unit does not run. Returns whether it was settled.
  bool settle_without_running(int id, const StepLaunch& launch) {
    UnitState& unit = state_.unit(id);
    if (options_.resume) {
      if (const auto kept = journal_->kept(unit.name.display)) {
        --unit.attempt;  // nothing ran
        adopt_outputs(unit, *kept);
        finish_unit(id, kept->status, "", /*resumed=*/true);
        return true;
      }
    }
    unit.cache = journal_->decide(unit_ref(unit), launch.parameters, launch.inputs);
    if (pbt_directive(unit) != nullptr) {  // it starts from, and leaves, a checkpoint the key does not cover
      unit.cache.enabled = false;
      unit.cache.hit.reset();
      unit.cache.reason = "a population-based training trial (it continues another trial's checkpoint)";
    }
    unit.inputs = launch.inputs;
    if (unit.cache.hit) {
      kill_point("cache-hit");
      journal_->record_cache_hit(unit_ref(unit), unit.attempt, unit.cache, launch.inputs);
      publish(events::CacheDecided{unit.name, unit.item, unit.cache.key, events::CacheUse::hit, "", launch.parameters,
                                   launches_.describe_inputs(unit, launch.inputs)});
      adopt_outputs(unit, *unit.cache.hit);
      finish_unit(id, S::cached, "");
      return true;
    }
    const bool looked = unit.cache.enabled && options_.use_cache;
    publish(events::CacheDecided{unit.name, unit.item, unit.cache.key,
                                 looked ? events::CacheUse::miss : events::CacheUse::off, unit.cache.reason,
                                 nullptr, nullptr});  // its attempt_started carries them
    return false;
  }

  void adopt_outputs(UnitState& unit, const StoredOutputs& stored) {
    unit.result.output_parameters = stored.outputs;
    unit.result.output_metadata = stored.metadata;
    unit.artifacts.clear();
    for (const auto& [name, digest] : stored.artifacts.items())
      unit.artifacts[name] = InputArtifact{
          journal_->artifact_path(digest), stored.metadata.value(name, Json::object()), digest.get<std::string>(), {}};
  }

  UnitRef unit_ref(const UnitState& unit) const {
    return UnitRef{&state_.planned_of(unit), unit.name.display, unit.item_index, unit.name.owner};
  }

  // A unit reached its end: publish it, then what follows for its step (a
  // trial's tuner, the failure policy, the step's own end).
  void finish_unit(int id, StepStatus status, const std::string& message, bool resumed = false) {
    publish(state_.finish_unit(id, status, message, resumed));
    const size_t index = state_.unit(id).step;
    if (tuners_[index])
      on_trial_finished(index, id);  // may add units
    else if (status == S::failed && !state_.step(index).planned->spec.is_finally)
      begin_policy_stop();  // a loop need not finish first
    if (state_.step(index).unfinished_units() > 0) return;
    if (tuners_[index]) return complete_tuning(index);
    complete_step(index);
  }

  // ---- messages and deadlines --------------------------------------------

  void handle(Message message) {
    if (message.cancel) return on_cancel_request();
    const UnitState& unit = state_.units().at(static_cast<size_t>(message.unit));
    if (message.attempt != unit.attempt || unit.status() != S::running) return;  // an abandoned attempt
    if (message.event) return on_attempt_event(message.unit, std::move(*message.event));
    if (message.result) attempt_finished(message.unit, std::move(*message.result));
  }

  void on_attempt_event(int id, const RunnerEvent& event) {
    const UnitState& unit = state_.unit(id);
    std::ofstream& file = attempts_[static_cast<size_t>(id)].events;
    const double time = seconds_since(started_);
    Json record = event_json(event);
    record["time"] = time;
    if (!file.is_open()) {  // made at the first event: most steps of a big DAG send none
      const fs::path dir = unit.attempt_dir();
      std::error_code ignored;  // an attempt directory that cannot be made: the file does not open
      fs::create_directories(dir, ignored);
      file.open(dir / "events.jsonl", std::ios::app);
    }
    if (file) file << record.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    if (const auto* metric = std::get_if<MetricEvent>(&event)) {
      publish(events::Metric{unit.name, metric->name, metric->value, metric->step, time});
      if (tuners_[unit.step]) on_trial_metric(id, metric->name, metric->value, metric->step);
    } else if (const auto* progress = std::get_if<ProgressEvent>(&event)) {
      publish(events::Progress{unit.name, progress->fraction, progress->message});
    } else if (const auto* log = std::get_if<LogEvent>(&event)) {
      publish(events::Log{unit.name, log_level_text(log->level), log->message});
    }
  }

  void attempt_finished(int id, AttemptResult result) {
    UnitState& unit = state_.unit(id);
    AttemptHandle& attempt = attempts_[static_cast<size_t>(id)];
    attempt.running.reset();
    attempt.events.close();
    scheduler_.classify(state_, unit, result);
    unit.outputs_dir = unit.attempt_dir() / "outputs";
    if (result.ok() && tuners_[unit.step]) {  // a trial keeps its curve, for the tuner of a later cached or resumed run
      if (Json curve = tuners_[unit.step]->curve_json(id); !curve.is_null()) result.output_parameters[kCurveOutput] = curve;
    }
    if (result.ok()) store_outputs(unit, result);
    const AttemptOutcome outcome = scheduler_.after_attempt(state_, unit, result);
    publish(state_.end_attempt(id, outcome.attempt_status, outcome.failure, result.message, seconds_since(unit.started())));
    if (outcome.retry) {
      publish(state_.schedule_retry(id, clock_now() + seconds_duration(outcome.retry_delay), outcome.retry_delay,
                                    outcome.message));
      return;
    }
    if (outcome.unit_status == S::succeeded && pbt_directive(unit) == nullptr) {  // PBT's next round starts from it
      std::error_code ignored;  // checkpoints only matter to a retry, and there will be none
      fs::remove_all(unit.dir / "checkpoint", ignored);
    }
    finish_unit(id, outcome.unit_status, outcome.message);
  }

  // A successful attempt's outputs: into the artifact store (with a store),
  // else left in the attempt directory. A failure to store fails the attempt.
  void store_outputs(UnitState& unit, AttemptResult& result) {
    if (!journal_) {
      unit.result = result;
      unit.artifacts.clear();
      for (const auto& output : state_.planned_of(unit).component.manifest.outputs)
        unit.artifacts[output.name] = InputArtifact{
            unit.outputs_dir / output.name, result.output_metadata.value(output.name, Json::object()), "", {}};
      return;
    }
    kill_point("attempt-finished");
    try {
      const StoredOutputs stored = journal_->commit(unit_ref(unit), unit.attempt, unit.outputs_dir, result, unit.cache,
                                                    unit.inputs, seconds_since(unit.started()));
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
      state_.time_out_run("the run timed out after " + Json(*plan_.spec.timeout_seconds).dump() + " s");
      on_cancel_request();
    }
    const std::vector<int> running(state_.running_units().begin(), state_.running_units().end());
    for (const int id : running) {  // at most `jobs`; none starts here
      AttemptHandle& attempt = attempts_[static_cast<size_t>(id)];
      if (state_.unit(id).status() != S::running || !attempt.running) continue;
      const DeadlineCheck check = scheduler_.check_deadline(state_.unit(id), now);
      if (check.time_out) {
        state_.mark_timed_out(id);
        attempt.running->cancel();
        state_.set_kill_at(id, check.kill_at);
      }
      if (!check.kill) continue;
      state_.set_kill_at(id, std::nullopt);
      attempt.running->kill();
      if (launches_.executor_of(state_.unit(id)) == "inprocess") {  // a thread cannot be killed: stop waiting for it
        AttemptResult abandoned;
        abandoned.failure_class = std::string(to_string(FailureClass::crash));
        abandoned.message = "did not stop within the grace period; abandoned (the inprocess executor cannot kill)";
        attempt_finished(id, std::move(abandoned));
      }
    }
  }

  // A running unit is asked to stop, as the scheduler ordered.
  void apply_stop(const StopOrder& order, bool early = false) {
    AttemptHandle& attempt = attempts_[static_cast<size_t>(order.unit)];
    if (!attempt.running) return;
    state_.request_stop(order.unit, early);
    if (order.cancel) attempt.running->cancel();
    if (order.kill_at) state_.set_kill_at(order.unit, order.kill_at);
  }

  void on_cancel_request() {
    events::CancelRequested requested = state_.request_cancel();
    for (const StopOrder& order : scheduler_.on_cancel(state_, clock_now())) apply_stop(order);
    publish(std::move(requested));
  }

  // failure_policy stop: ask every running DAG step to stop; none starts.
  void begin_policy_stop() {
    if (!state_.begin_policy_stop()) return;
    for (const StopOrder& order : scheduler_.on_policy_stop(state_, clock_now())) apply_stop(order);
  }

  const Plan& plan_;
  RunOptions options_;
  std::map<std::string, std::unique_ptr<Executor>> executors_;
  std::shared_ptr<Inbox> inbox_;
  RealTime real_time_;
  EngineTime* time_;
  RunState state_;
  Scheduler scheduler_;
  LaunchBuilder launches_;
  std::deque<AttemptHandle> attempts_;                   // by unit id
  std::vector<std::unique_ptr<TuningController>> tuners_;  // by step: tuning steps that began
  RunRecord record_{options_.run_dir};
  std::unique_ptr<EventLogWriter> event_log_;
  std::unique_ptr<JournalObserver> journal_observer_;
  std::vector<RunObserver*> observers_;
  uint64_t next_seq_ = 1;
  Clock::time_point next_log_check_{};
  Clock::time_point started_;
  std::optional<Clock::time_point> run_deadline_;
  std::unique_ptr<RunJournal> journal_;  // with a store only
  bool settled_ = false;                 // a step ended during this scheduling pass
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

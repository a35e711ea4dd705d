#include "run_state.hpp"

#include <algorithm>

namespace kiln::host {
namespace fs = std::filesystem;
using S = StepStatus;

namespace {

[[noreturn]] void illegal(const std::string& what, const std::string& who, StepStatus from, StepStatus to) {
  throw IllegalTransition(what + " '" + who + "': " + std::string(to_string(from)) + " -> " +
                          std::string(to_string(to)));
}

}  // namespace

RunState::RunState(const Plan& plan, fs::path run_dir, std::string run_id, std::vector<int> gpus)
    : plan_(plan),
      run_dir_(std::move(run_dir)),
      run_id_(std::move(run_id)),
      gpus_(std::move(gpus)),
      free_gpus_(gpus_.begin(), gpus_.end()) {
  for (const auto& planned : plan_.steps) {
    StepState step;
    step.planned = &planned;
    step_index_[planned.spec.name] = steps_.size();
    ++unfinished_steps_[planned.spec.is_finally ? 1 : 0];
    steps_.push_back(std::move(step));
  }
  for (size_t i = 0; i < steps_.size(); ++i) {
    StepState& step = steps_[i];
    for (const auto& up : step.planned->upstream) {
      const auto it = step_index_.find(up);
      if (it == step_index_.end()) throw std::runtime_error("step '" + step.planned->spec.name + "': unknown step '" + up + "'");
      step.upstream_.push_back(it->second);
      steps_[it->second].downstream_.push_back(i);
    }
    step.waiting_for_ = step.upstream_.size();
    if (step.waiting_for_ == 0 && !step.planned->spec.is_finally) ready_steps_.insert(i);
  }
  for (const auto& [name, bound] : plan_.bound_steps) {
    StepState& step = bound_steps_[name];
    step.status_ = S::succeeded;
    step.outputs = bound.outputs;
    for (const auto& [output, artifact] : bound.artifacts)
      step.artifacts[output] = InputArtifact{artifact.path, artifact.metadata};
  }
}

// ---- reading ----------------------------------------------------------------

const StepState& RunState::step_named(const std::string& name) const {
  const auto it = step_index_.find(name);
  if (it != step_index_.end()) return steps_[it->second];
  const auto bound = bound_steps_.find(name);
  if (bound == bound_steps_.end()) throw std::runtime_error("unknown step '" + name + "'");
  return bound->second;
}

const PlannedStep& RunState::planned_of(const UnitState& unit) const {
  const PlannedStep& planned = *steps_[unit.step].planned;
  return unit.part < 0 ? planned : planned.trial_steps[static_cast<size_t>(unit.part)];
}

const UnitState* RunState::sibling_named(const UnitState& unit, const std::string& name) const {
  if (unit.part < 0) return nullptr;
  for (const int u : trial_units(unit.step, unit.item_index)) {  // a trial's few units, not the step's
    const UnitState& other = units_[static_cast<size_t>(u)];
    if (other.part >= 0 && planned_of(other).spec.name == name) return &other;
  }
  return nullptr;
}

const std::vector<int>& RunState::trial_units(size_t step, int trial) const {
  static const std::vector<int> none;
  const auto& trials = steps_.at(step).trials_;
  const auto it = trials.find(trial);
  return it == trials.end() ? none : it->second.units;
}

std::string RunState::relative_to_run(const fs::path& path) const {
  const std::string full = path.string(), base = run_dir_.string() + "/";
  return full.rfind(base, 0) == 0 ? full.substr(base.size()) : full;
}

Expression::ReferenceResolver RunState::resolver(const UnitState* unit) const {
  return [this, unit](const Reference& ref) -> Json {
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
        return run_id_;
      case Reference::Kind::RunName:
        return plan_.spec.name;
      case Reference::Kind::RunFailedSteps:
        return failed_steps_;
      case Reference::Kind::StepOutput: {
        const StepState& source = step_named(ref.step);
        if (!source.outputs.contains(ref.output))
          throw std::runtime_error("step '" + ref.step + "' set no output parameter '" + ref.output +
                                   "'");
        return source.outputs[ref.output];
      }
    }
    throw std::logic_error("unhandled reference kind");
  };
}

bool RunState::halted(const UnitState& unit) const {
  return unit.stop_requested_ || (stopping() && !steps_[unit.step].planned->spec.is_finally);
}

bool RunState::all_terminal(bool finally_phase) const {
  return unfinished_steps_[finally_phase ? 1 : 0] == 0;
}

// ---- steps --------------------------------------------------------------------

int RunState::add_unit(size_t index, int item_index, Json item, int part) {
  StepState& step = steps_.at(index);
  if (is_terminal(step.status_)) illegal("add a unit to step", step.planned->spec.name, step.status_, S::pending);
  UnitState unit;
  unit.step = index;
  unit.item_index = item_index;
  unit.part = part;
  unit.item = std::move(item);
  const std::string& name = step.planned->spec.name;
  const PlannedStep& planned = planned_of(unit);
  // How run.json and displays name an item: "3", or "3.train" for a trial's step.
  const std::string key =
      item_index < 0 ? "" : part < 0 ? std::to_string(item_index) : std::to_string(item_index) + "." + planned.spec.name;
  unit.name.step = name;
  unit.name.key = key;
  unit.name.display = item_index < 0 ? name : name + "[" + key + "]";  // a trial's step: tune[3.train]
  unit.name.item_index = item_index;
  unit.name.planned = &planned;
  if (&planned != step.planned) unit.name.owner = step.planned;
  unit.dir = run_dir_ / "steps" / name;
  if (item_index >= 0) unit.dir /= std::to_string(item_index);
  if (part >= 0) unit.dir /= planned.spec.name;
  const int id = static_cast<int>(units_.size());
  step.units.push_back(id);
  ++step.unfinished_units_;
  if (step.planned->spec.tune) {
    auto [trial, added] = step.trials_.try_emplace(item_index);
    if (added) step.trial_ids_.push_back(item_index);
    trial->second.units.push_back(id);
    if (trial->second.unfinished++ == 0) ++step.active_trials_;
  }
  units_.push_back(std::move(unit));
  pending_units_.insert(id);
  return id;
}

events::StepChanged RunState::finish_step(size_t index, StepStatus status, std::string message) {
  StepState& step = steps_.at(index);
  const bool legal = status == S::running ? step.status_ == S::pending
                                          : is_terminal(status) && !is_terminal(step.status_);
  if (!legal) illegal("step", step.planned->spec.name, step.status_, status);
  if (step.status_ == S::pending) ready_steps_.erase(index);
  step.status_ = status;
  step.message_ = message;
  if (is_terminal(status)) release_downstream(index);
  events::StepChanged changed;
  changed.step = step.planned->spec.name;
  changed.status = status;
  changed.message = std::move(message);
  if (is_success(status)) changed.outputs = step.outputs;
  if (step.planned->spec.for_each) changed.items = step.units.size();
  changed.has_units = !step.units.empty();
  changed.planned = step.planned;
  return changed;
}

void RunState::release_downstream(size_t index) {
  StepState& step = steps_[index];
  --unfinished_steps_[step.planned->spec.is_finally ? 1 : 0];
  for (const size_t d : step.downstream_) {
    StepState& down = steps_[d];
    if (--down.waiting_for_ == 0 && down.status_ == S::pending && (!down.planned->spec.is_finally || main_done_))
      ready_steps_.insert(d);
  }
}

// ---- units --------------------------------------------------------------------

void RunState::leave_pending(const UnitState& unit, int id) {
  if (unit.retry_at_)
    retrying_units_.erase({*unit.retry_at_, id});
  else
    pending_units_.erase(id);
}

UnitState& RunState::running_unit(int id, const char* what) {
  UnitState& unit = units_.at(static_cast<size_t>(id));
  if (unit.status_ != S::running) illegal(what, unit.name.display, unit.status_, unit.status_);
  return unit;
}

events::AttemptStarted RunState::start_attempt(int id, EngineClock::time_point now,
                                               std::optional<EngineClock::time_point> deadline, std::string executor,
                                               const fs::path& attempt_dir, std::string image,
                                               std::vector<int> gpus) {
  UnitState& unit = units_.at(static_cast<size_t>(id));
  if (unit.status_ != S::pending) illegal("start an attempt of", unit.name.display, unit.status_, S::running);
  if (steps_[unit.step].status_ != S::running)
    illegal("start a unit of step", steps_[unit.step].planned->spec.name, steps_[unit.step].status_, S::running);
  for (size_t i = 0; i < gpus.size(); ++i)
    if (!free_gpus_.count(gpus[i]) || std::count(gpus.begin(), gpus.begin() + static_cast<std::ptrdiff_t>(i), gpus[i]))
      throw IllegalTransition("start an attempt of '" + unit.name.display + "' on GPU " + std::to_string(gpus[i]) +
                              ", which is not free");
  for (const int gpu : gpus) free_gpus_.erase(gpu);
  unit.gpus_ = gpus;
  leave_pending(unit, id);
  running_units_.insert(id);
  ++steps_[unit.step].running_units_;
  unit.status_ = S::running;
  unit.started_ = now;
  unit.timed_out_ = false;
  unit.stop_requested_ = false;
  unit.kill_at_.reset();
  unit.retry_at_.reset();
  unit.deadline_ = deadline;
  ++running_;
  return events::AttemptStarted{unit.name,
                                unit.item,
                                unit.attempt,
                                std::move(executor),
                                relative_to_run(attempt_dir),
                                std::move(image),
                                std::move(gpus),
                                Json::object(),   // parameters and inputs: the engine adds its launch's
                                Json::object()};
}

events::AttemptEnded RunState::end_attempt(int id, StepStatus attempt_status, FailureClass failure,
                                           std::string message, double duration) {
  UnitState& unit = running_unit(id, "end an attempt of");
  if (!is_terminal(attempt_status)) illegal("an attempt of", unit.name.display, unit.status_, attempt_status);
  unit.status_ = S::pending;
  free_gpus_.insert(unit.gpus_.begin(), unit.gpus_.end());
  unit.gpus_.clear();
  unit.attempt_seconds += duration;
  --running_;
  running_units_.erase(id);
  --steps_[unit.step].running_units_;
  pending_units_.insert(id);  // start_attempt cleared its retry time
  return events::AttemptEnded{unit.name, unit.attempt, attempt_status, failure, std::move(message), duration};
}

events::RetryScheduled RunState::schedule_retry(int id, EngineClock::time_point at, double delay,
                                                std::string message) {
  UnitState& unit = units_.at(static_cast<size_t>(id));
  if (unit.status_ != S::pending || unit.attempt == unit.attempt_base)
    illegal("retry", unit.name.display, unit.status_, S::pending);
  leave_pending(unit, id);
  unit.retry_at_ = at;
  retrying_units_.insert({at, id});
  return events::RetryScheduled{unit.name, unit.attempt, delay, std::move(message)};
}

events::UnitFinished RunState::finish_unit(int id, StepStatus status, std::string message, bool resumed) {
  UnitState& unit = units_.at(static_cast<size_t>(id));
  if (unit.status_ != S::pending || !is_terminal(status)) illegal("finish", unit.name.display, unit.status_, status);
  leave_pending(unit, id);
  StepState& step = steps_[unit.step];
  --step.unfinished_units_;
  if (step.planned->spec.tune && --step.trials_.at(unit.item_index).unfinished == 0) --step.active_trials_;
  unit.status_ = status;
  unit.message_ = message;
  events::UnitFinished finished;
  finished.unit = unit.name;
  finished.item = unit.item;
  finished.status = status;
  finished.message = std::move(message);
  finished.resumed = resumed;
  if (is_success(status)) {
    finished.outputs = unit.result.output_parameters;
    for (const auto& [name, artifact] : unit.artifacts)
      finished.artifacts.push_back({name, relative_to_run(artifact.path), artifact.digest});
    finished.metadata = unit.result.output_metadata;
  }
  return finished;
}

void RunState::request_stop(int id, bool early) {
  UnitState& unit = running_unit(id, "stop");
  unit.stop_requested_ = true;
  unit.early_stop_ = unit.early_stop_ || early;
}

void RunState::mark_timed_out(int id) {
  running_unit(id, "time out").timed_out_ = true;
}

void RunState::set_kill_at(int id, std::optional<EngineClock::time_point> at) {
  running_unit(id, "kill").kill_at_ = at;
}

// ---- the run --------------------------------------------------------------------

events::CancelRequested RunState::request_cancel() {
  return events::CancelRequested{++cancel_requests_};
}

bool RunState::begin_policy_stop() {
  if (plan_.spec.failure_policy != "stop" || policy_stop_) return false;
  policy_stop_ = true;
  return true;
}

void RunState::time_out_run(std::string message) {
  run_timed_out_ = true;
  run_message_ = std::move(message);
}

void RunState::finish_main_phase() {
  if (main_done_ || !all_terminal(false))
    throw IllegalTransition("the run's DAG steps cannot end twice, nor before every one is terminal");
  main_done_ = true;
  for (size_t i = 0; i < steps_.size(); ++i) {  // once per run
    const StepState& step = steps_[i];
    if (step.planned->spec.is_finally && step.status_ == S::pending && step.waiting_for_ == 0) ready_steps_.insert(i);
  }
  Json failed = Json::array();
  bool cancelled = false;
  for (const auto& s : steps_) {
    if (s.planned->spec.is_finally) continue;
    if (s.status_ == S::failed) failed.push_back(s.planned->spec.name);
    cancelled = cancelled || s.status_ == S::cancelled;
  }
  if (run_timed_out_)
    run_status_ = RunStatus::failed;
  else if (cancel_requests_ > 0)
    run_status_ = RunStatus::cancelled;
  else  // nobody asked to cancel
    run_status_ = failed.empty() && !cancelled ? RunStatus::succeeded : RunStatus::failed;
  failed_steps_ = failed;
}

void RunState::fail_run(std::string message) {
  if (run_finished_) throw IllegalTransition("the run already finished");
  run_status_ = RunStatus::failed;
  run_message_ = std::move(message);
}

events::RunFinished RunState::finish_run(double duration_seconds) {
  if (run_finished_) throw IllegalTransition("the run cannot finish twice");
  run_finished_ = true;
  return events::RunFinished{run_status_, run_message_, duration_seconds};
}

}  // namespace kiln::host

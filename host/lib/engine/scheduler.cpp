#include "scheduler.hpp"

#include <kiln/host/json_bounded.hpp>
#include <kiln/host/placeholders.hpp>

#include <algorithm>
#include <cmath>
#include <set>

namespace kiln::host {
using S = StepStatus;

EngineClock::duration seconds_duration(double s) {
  return std::chrono::duration_cast<EngineClock::duration>(std::chrono::duration<double>(s));
}

EngineClock::time_point Scheduler::after_grace(EngineClock::time_point now) const {
  return now + seconds_duration(options_.grace_seconds);
}

// ---- steps ----------------------------------------------------------------------

bool Scheduler::considered(const RunState& state, size_t index) const {
  return state.ready_steps().count(index) > 0;
}

std::optional<size_t> Scheduler::next_step(const RunState& state, size_t from) const {
  const auto it = state.ready_steps().lower_bound(from);
  if (it == state.ready_steps().end()) return std::nullopt;
  ++examined_;
  return *it;
}

StepDecision Scheduler::decide_step(const RunState& state, size_t index) const {
  const StepState& step = state.step(index);
  const auto finish = [](StepStatus status, std::string message) {
    StepDecision d;
    d.kind = StepDecision::Kind::finish;
    d.status = status;
    d.message = std::move(message);
    return d;
  };
  std::string blocked_by_failure, blocked_by_cancel, blocked_by_skip;
  const auto& upstream = step.upstream();
  auto name = step.planned->upstream.begin();  // the same order as upstream()
  for (size_t k = 0; k < upstream.size(); ++k, ++name) {
    const std::string& up = *name;
    const StepState& u = state.step(upstream[k]);
    if (!is_terminal(u.status())) return StepDecision{};
    if (u.status() == S::failed || u.status() == S::upstream_failed) blocked_by_failure = up;
    if (u.status() == S::cancelled) blocked_by_cancel = up;
    // Like Argo: a skipped step satisfies an ordering dependency, but a
    // step that needs its outputs cannot run without them.
    if (u.status() == S::skipped && step.planned->data_upstream.count(up)) blocked_by_skip = up;
  }
  if (!blocked_by_failure.empty())
    return finish(S::upstream_failed, "upstream step '" + blocked_by_failure + "' did not succeed");
  if (!blocked_by_cancel.empty())
    return finish(S::cancelled, "not started: upstream step '" + blocked_by_cancel + "' was cancelled");
  if (!blocked_by_skip.empty()) return finish(S::skipped, "upstream step '" + blocked_by_skip + "' was skipped");
  if (state.stopping() && !step.planned->spec.is_finally) return finish(S::cancelled, "not started: the run is stopping");
  try {
    if (step.planned->when && !step.planned->when->evaluate_condition(state.resolver(nullptr)))
      return finish(S::skipped, "condition is false: " + step.planned->when->text());
    StepDecision d;
    if (step.planned->spec.tune) {
      d.kind = StepDecision::Kind::begin_tune;
    } else if (step.planned->spec.for_each) {
      d.kind = StepDecision::Kind::begin_loop;
      const ValueSpec& for_each = *step.planned->spec.for_each;
      d.items = render_placeholders(for_each.value, state.resolver(nullptr));
      const auto source = [&] {
        return for_each.pos.str() + ": 'for_each'" +
               (for_each.value.is_string() ? " (" + json_excerpt(for_each.value, 120) + ")" : std::string());
      };
      if (!d.items.is_array())
        throw std::runtime_error(source() + " resolved to " + json_excerpt(d.items) + ", not a list");
      if (d.items.size() > kMaxForEachItems)
        throw std::runtime_error(source() + " resolved to " + std::to_string(d.items.size()) +
                                 " items, more than the limit of " + std::to_string(kMaxForEachItems));
    } else {
      d.kind = StepDecision::Kind::begin_unit;
    }
    return d;
  } catch (const std::exception& e) {
    return finish(S::failed, e.what());
  }
}

Outcome Scheduler::step_outcome(const RunState& state, size_t index) const {
  Outcome out{S::cached, ""};
  for (const int u : state.step(index).units) {
    const UnitState& unit = state.unit(u);
    if (!is_terminal(unit.status())) throw IllegalTransition("step '" + unit.name.step + "' has a unit still to end");
    if (unit.status() == S::succeeded && out.status == S::cached) out.status = S::succeeded;  // cached only if every unit was
    if (!is_success(unit.status()) && is_success(out.status)) {
      out.status = unit.status();
      out.message = unit.name.display + ": " +
                    (unit.message().empty() ? std::string(to_string(unit.status())) : unit.message());
    }
  }
  return out;
}

// ---- units ----------------------------------------------------------------------

std::optional<UnitDecision> Scheduler::next_unit(const RunState& state, EngineClock::time_point now,
                                                 size_t from) const {
  if (state.running() >= options_.jobs) return std::nullopt;
  // The candidates, in unit order: pending units without a backoff, and
  // those whose backoff is over (a stopping run: every one, it ends them).
  std::vector<int> retries;
  for (const auto& [at, id] : state.retrying_units()) {
    if (at > now && !state.stopping()) break;
    if (static_cast<size_t>(id) >= from) retries.push_back(id);
  }
  std::sort(retries.begin(), retries.end());
  const std::set<int>& pending = state.pending_units();
  auto p = pending.lower_bound(static_cast<int>(from));
  auto r = retries.begin();
  while ((p != pending.end() || r != retries.end()) && state.running() < options_.jobs) {
    const bool from_pending = r == retries.end() || (p != pending.end() && *p < *r);
    const int id = from_pending ? *p++ : *r++;
    ++examined_;
    const UnitState& unit = state.unit(id);
    if (state.stopping() && !state.step(unit.step).planned->spec.is_finally)  // also ends a retry's backoff
      return UnitDecision{UnitDecision::Kind::cancel, id, "not started: the run is stopping"};
    if (unit.retry_at() && *unit.retry_at() > now) continue;
    if (!loop_has_room(state, unit.step)) {
      // A full loop: its other items wait too. A for_each step's units are
      // added together, so their ids are consecutive: skip past them.
      const std::vector<int>& units = state.step(unit.step).units;
      if (from_pending && static_cast<size_t>(units.back() - units.front() + 1) == units.size())
        p = pending.upper_bound(units.back());
      continue;
    }
    if (!siblings_done(state, unit)) continue;
    const auto need = static_cast<size_t>(gpus_needed(state, unit));
    if (need > state.free_gpus().size()) {
      // Its step's other units need as many (not so a trial template's
      // steps): skip a loop's items as above.
      const std::vector<int>& units = state.step(unit.step).units;
      if (from_pending && unit.part < 0 && static_cast<size_t>(units.back() - units.front() + 1) == units.size())
        p = pending.upper_bound(units.back());
      continue;
    }
    UnitDecision launch{UnitDecision::Kind::launch, id, "", {}};
    for (auto gpu = state.free_gpus().begin(); launch.gpus.size() < need; ++gpu) launch.gpus.push_back(*gpu);
    return launch;
  }
  return std::nullopt;
}

int local_gpus(const StepSpec& spec, const std::string& default_executor) {
  const std::string& executor = spec.executor.empty() ? default_executor : spec.executor;
  return executor == "slurm" ? 0 : static_cast<int>(spec.container.gpus.value_or(0));
}

std::vector<Diagnostic> gpu_problems(const Plan& plan, const std::vector<int>& pool, const std::string& pool_source,
                                     const std::string& default_executor) {
  std::vector<Diagnostic> problems;
  const auto check = [&](const StepSpec& spec) {
    const int need = local_gpus(spec, default_executor);
    if (need == 0) return;
    const std::string asks = "step '" + spec.name + "' needs " + std::to_string(need) + " GPU" + (need == 1 ? "" : "s");
    if ((spec.executor.empty() ? default_executor : spec.executor) == "inprocess")
      problems.push_back({spec.gpus_pos, asks +
                                             ", but the inprocess executor runs every step in kiln's own process, "
                                             "where CUDA_VISIBLE_DEVICES cannot be a step's own: run it with the "
                                             "process or container executor"});
    else if (static_cast<size_t>(need) > pool.size())
      problems.push_back({spec.gpus_pos, asks + ", but this host has " + std::to_string(pool.size()) + " for kiln (" +
                                             pool_source + "; see --gpus and KILN_GPUS)"});
  };
  for (const PlannedStep& step : plan.steps) {
    check(step.spec);
    for (const PlannedStep& part : step.trial_steps) check(part.spec);
  }
  return problems;
}

int Scheduler::gpus_needed(const RunState& state, const UnitState& unit) const {
  return local_gpus(state.planned_of(unit).spec, options_.default_executor);
}

bool Scheduler::loop_has_room(const RunState& state, size_t index) const {
  const StepState& step = state.step(index);
  const int limit = step.planned->spec.parallelism;
  return limit <= 0 || step.running_units() < limit;
}

bool Scheduler::siblings_done(const RunState& state, const UnitState& unit) const {
  if (unit.part < 0) return true;
  for (const auto& name : state.planned_of(unit).upstream) {
    const UnitState* sibling = state.sibling_named(unit, name);
    if (sibling == nullptr || !is_success(sibling->status())) return false;
  }
  return true;
}

// ---- attempts -------------------------------------------------------------------

void Scheduler::classify(const RunState& state, const UnitState& unit, AttemptResult& result) const {
  if (unit.timed_out()) {
    result.failure_class = std::string(to_string(FailureClass::timeout));
    result.message = "timed out after " + Json(*state.planned_of(unit).spec.timeout_seconds).dump() + " s";
  } else if (!result.ok() && unit.stop_requested()) {
    result.failure_class = std::string(to_string(FailureClass::stopped));
  }
}

AttemptOutcome Scheduler::after_attempt(const RunState& state, const UnitState& unit,
                                        const AttemptResult& result) const {
  AttemptOutcome out;
  out.failure =
      result.ok() ? FailureClass::none : parse_failure_class(result.failure_class).value_or(FailureClass::crash);
  out.attempt_status = result.ok() ? S::succeeded : out.failure == FailureClass::stopped ? S::cancelled : S::failed;
  if (!result.ok() && unit.early_stop()) out.attempt_status = S::early_stopped;
  if (out.attempt_status == S::early_stopped) {
    out.unit_status = S::early_stopped;
    out.message = "stopped by the tuner";
    return out;
  }
  if (result.ok()) {
    out.unit_status = S::succeeded;
    return out;
  }
  const auto& retries = state.planned_of(unit).spec.retries;
  const int made = unit.attempt - unit.attempt_base;
  if (made <= retries.limit && retries.on.count(result.failure_class) && !state.halted(unit)) {
    out.retry = true;
    out.retry_delay = retries.delay_before(made);
    out.unit_status = S::pending;
    out.message = result.message + " (retry in " + Json(out.retry_delay).dump() + " s)";
    return out;
  }
  out.unit_status = out.failure == FailureClass::stopped ? S::cancelled : S::failed;
  out.message = result.message;
  return out;
}

// ---- stopping and deadlines ---------------------------------------------------------

std::vector<StopOrder> Scheduler::on_cancel(const RunState& state, EngineClock::time_point now) const {
  std::vector<StopOrder> orders;
  for (const int i : state.running_units()) {
    const UnitState& unit = state.unit(i);
    if (state.cancel_requests() > 1)  // a second request: no more grace
      orders.push_back(StopOrder{i, false, now});
    else
      orders.push_back(StopOrder{i, true,
                                 unit.kill_at() ? std::nullopt : std::optional(after_grace(now))});
  }
  return orders;
}

std::vector<StopOrder> Scheduler::on_policy_stop(const RunState& state, EngineClock::time_point now) const {
  std::vector<StopOrder> orders;
  const auto kill_at = after_grace(now);
  for (const int i : state.running_units()) {
    const UnitState& unit = state.unit(i);
    if (!state.step(unit.step).planned->spec.is_finally)
      orders.push_back(
          StopOrder{i, true, unit.kill_at() ? std::min(*unit.kill_at(), kill_at) : kill_at});
  }
  return orders;
}

std::vector<StopOrder> Scheduler::on_halt(const RunState& state, const std::vector<int>& units,
                                          EngineClock::time_point now) const {
  std::vector<StopOrder> orders;
  const auto kill_at = after_grace(now);
  for (const int u : units) {
    const UnitState& unit = state.unit(u);
    if (unit.status() == S::running && !unit.stop_requested()) orders.push_back(StopOrder{u, true, kill_at});
  }
  return orders;
}

StopOrder Scheduler::on_early_stop(int unit, EngineClock::time_point now) const {
  return StopOrder{unit, true, after_grace(now)};
}

DeadlineCheck Scheduler::check_deadline(const UnitState& unit, EngineClock::time_point now) const {
  DeadlineCheck check;
  check.kill_at = unit.kill_at();
  if (unit.deadline() && !unit.timed_out() && now >= *unit.deadline()) {
    check.time_out = true;
    check.kill_at = after_grace(now);
  }
  check.kill = check.kill_at && now >= *check.kill_at;
  return check;
}

std::optional<EngineClock::time_point> Scheduler::next_deadline(const RunState& state,
                                                                std::optional<EngineClock::time_point> run_deadline,
                                                                EngineClock::time_point log_check,
                                                                bool wake_on_ends) const {
  std::optional<EngineClock::time_point> next = run_deadline;
  const auto consider = [&](const std::optional<EngineClock::time_point>& t) {
    if (t && (!next || *t < *next)) next = t;
  };
  for (const int id : state.running_units()) {  // at most `jobs`
    const UnitState& u = state.unit(id);
    if (!u.timed_out()) consider(u.deadline());
    consider(u.kill_at());
    consider(log_check);
  }
  if (!(wake_on_ends && state.running() >= options_.jobs))
    for (const auto& [at, id] : state.retrying_units())
      if (static_cast<size_t>(gpus_needed(state, state.unit(id))) <= state.free_gpus().size()) {
        consider(at);
        break;
      }
  return next;
}

// ---- trials ---------------------------------------------------------------------------

std::optional<StepStatus> Scheduler::trial_status(const RunState& state, size_t step, int trial) const {
  std::set<StepStatus> statuses;
  for (const int u : state.trial_units(step, trial)) statuses.insert(state.unit(u).status());
  for (const StepStatus status : statuses)
    if (!is_terminal(status)) return std::nullopt;
  for (const StepStatus status : {S::failed, S::early_stopped, S::cancelled, S::upstream_failed})
    if (statuses.count(status)) return status == S::upstream_failed ? S::failed : status;
  return statuses.count(S::succeeded) ? S::succeeded : S::cached;
}

TuningOutcome Scheduler::tuning_outcome(const RunState& state, size_t step, const std::map<int, double>& values,
                                        const std::string& failure) const {
  const TuneSpec& spec = *state.step(step).planned->spec.tune;
  TuningOutcome out;
  std::map<std::string, int> counts;
  for (const int trial : state.trial_ids(step)) {
    const StepStatus status = trial_status(state, step, trial).value_or(S::pending);
    const auto found = values.find(trial);
    const double value = found == values.end() ? std::nan("") : found->second;
    ++counts[std::string(to_string(status))];
    if (is_success(status) && std::isfinite(value) &&
        (out.best_trial < 0 || (spec.maximize ? value > out.best_value : value < out.best_value))) {
      out.best_trial = trial;
      out.best_value = value;
    }
  }
  std::string summary;
  for (const auto& [status, n] : counts) summary += (summary.empty() ? "" : ", ") + std::to_string(n) + " " + status;
  if (!failure.empty()) {
    out.message = failure + " (" + summary + ")";
  } else if (counts.count(std::string(to_string(S::cancelled)))) {  // the run is stopping: a partial search is no result
    out.status = S::cancelled;
    out.message = "the search was cancelled (" + summary + ")";
  } else if (out.best_trial < 0) {
    out.message = "no trial succeeded (" + summary + ")";
  } else {
    out.status = S::succeeded;
    out.message = "best: trial " + std::to_string(out.best_trial) + ", " + spec.metric + " = " +
                  Json(out.best_value).dump() + " (" + summary + ")";
    return out;
  }
  out.best_trial = -1;
  out.best_value = 0;
  return out;
}

int Scheduler::trial_parallelism(const PlannedStep& step) const {
  const TuneSpec& spec = *step.spec.tune;
  return spec.parallel_trials > 0 ? spec.parallel_trials : step.spec.parallelism > 0 ? step.spec.parallelism
                                                                                    : options_.jobs;
}

int Scheduler::active_trials(const RunState& state, size_t step) const {
  return state.active_trials(step);
}

}  // namespace kiln::host

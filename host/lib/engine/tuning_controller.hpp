// A tuning step's search: the tuner (a TunerHandle on a plugin's KilnTunerApi
// table, destroyed with this), how many trials were suggested and failed, each trial's
// objective curve, and whether the search is over or has failed. The engine
// owns the trials' units and asks this what to start and whether to stop;
// no other code calls the tuner. Scheduler thread only, so tuner calls are serialised.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/run_status.hpp>
#include <kiln/host/spec.hpp>
#include <kiln/host/tuner_handle.hpp>
#include <kiln/host/tuner_log.hpp>
#include <kiln/plugin_api.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace kiln::host {

// An objective curve: the value reported at each step (epoch).
using Curve = std::map<int64_t, double>;

class TuningController {
 public:
  // Creates the tuner with `config` (KilnTunerApi.create). Throws
  // std::runtime_error at the spec's file:line:col of the field the tuner names.
  // Every suggest and observe is appended to the tuner log at `log` (steps/<step>/tuner.jsonl);
  // when that log exists (`kiln resume`), it is first replayed into the new
  // tuner, which must suggest the same trials again (else std::runtime_error
  // naming the log's line), so the search continues exactly where it stood.
  TuningController(const TuneSpec& spec, const KilnTunerApi* api, const Json& config,
                   const std::filesystem::path& log);

  // Trials to start now, given `active` trials not yet finished and at most
  // `parallel` at once. After a replay, the first call returns every trial
  // the log suggested (finished ones too: the engine keeps or reruns them). Empty once max_trials were suggested, the tuner has
  // no more, or the search stopped; also while the tuner waits for running
  // trials to finish (a model-based sampler's history_lag), which is not the end
  // of the search unless no trial is active. Throws on a tuner error or a bad answer
  // (more trials than asked for, a repeated id: TunerHandle's checks), with
  // the message prefixed "tuner: ".
  std::vector<SuggestedTrial> next(int active, int parallel);

  // A running unit of trial `trial` reported `name` = `value` at `at`.
  // Returns whether the tuner wants the trial stopped (only asked when
  // `may_stop`). Throws on a tuner error.
  bool on_metric(int unit, int trial, const std::string& name, double value, int64_t at, bool may_stop);

  // A unit served from the cache or kept by a resume did not report here:
  // its stored curve (`{"step": value}`) becomes its curve. Returns the
  // values to replay to the tuner (none if the unit already has a curve).
  Curve restore(int unit, const Json& stored);

  // A trial reached its outcome (succeeded, failed, early-stopped), with
  // its final objective (NaN: none), for a multi-objective step every
  // objective's value (`values`, spec order, NaN: none; empty otherwise:
  // handed to the tuner's observe_objectives first), and the stored values
  // to replay first.
  // Counts failures: more than max_failed_trials fails the search. Throws on a tuner error.
  // A trial whose outcome the log replayed is not told again.
  void finished(int trial, StepStatus outcome, double value, const Curve& replay,
                const std::vector<double>& values = {});

  // The search fails (a tuner error, too many failures): no more trials.
  void fail(const std::string& why);

  bool exhausted() const { return exhausted_; }
  const std::string& failure() const { return failure_; }
  // A unit's own curve as JSON ({"step": value}), null if it reported none.
  Json curve_json(int unit) const;
  // The curve of a trial made of `units`, merged in their order.
  Curve curve_of(const std::vector<int>& units) const;

 private:
  const TuneSpec& spec_;
  TunerHandle tuner_;
  int suggested_ = 0, failed_ = 0;
  bool exhausted_ = false;
  std::string failure_;
  std::map<int, Curve> curves_;  // per unit
  std::unique_ptr<TunerLog> log_;
  std::vector<SuggestedTrial> replayed_;      // suggested by the log, not yet handed to the engine
  std::map<int, TrialStatus> replayed_final_;  // trials whose outcome the log replayed
  std::set<int> stopped_units_;                // units the tuner stopped: later reports are dropped

  void replay(const std::vector<TunerRecord>& records, const std::string& name);
  void observe(int trial, int64_t step, double value, bool final, TrialStatus status,
               const std::vector<double>& values = {});
};

}  // namespace kiln::host

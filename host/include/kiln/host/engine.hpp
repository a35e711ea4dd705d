// The engine: runs a validated plan. Ready steps start concurrently (up to
// `jobs`), completion is an event (no polling), and conditions, loops,
// retries, timeouts, cancellation, the failure policy and finally steps are
// decided by its scheduler (host/lib/engine/scheduler.hpp) on its run state
// (run_state.hpp), the same for every executor.
#pragma once

#include <kiln/host/executor.hpp>
#include <kiln/host/gpus.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/run_events.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace kiln::host {

struct Store;
class EngineTime;

struct RunOptions {
  std::string executor = "process";  // default for steps that name none
  int jobs = 2;
  // The host's GPUs the engine hands out to steps with resources.gpus
  // (kiln/host/gpus.hpp; none by default). A step that needs more than this
  // holds, or any GPU under the inprocess executor, makes the Engine's
  // constructor throw SpecError: nothing runs.
  GpuPool gpus;
  std::filesystem::path run_dir;  // created by the engine
  std::string run_id;
  double grace_seconds = 5.0;  // between asking a step to stop and killing it
  // More observers of the run's events (the live view, tests), called after
  // the engine's own (run.json, the event log, the store's journal), on the
  // engine's thread. Not owned.
  std::vector<RunObserver*> observers;
  // The scheduler's clock; null: real time. Tests pass virtual time
  // (engine_time.hpp) with fake executors. Not owned.
  EngineTime* time = nullptr;
  // The workspace's store. When set, outputs are committed to the artifact
  // store, the run is recorded in the metadata database, and steps are
  // cached. Without it (unit tests) outputs stay in the attempt directories.
  Store* store = nullptr;
  bool use_cache = true;  // false (--no-cache): no step is served from the cache; new entries are still written
  bool resume = false;    // continue the run `run_id` recorded in the store
  std::string spec_text;  // the pipeline's text, recorded so that resume can re-plan it
  Json options_record = Json::object();  // how the run was started (executor, jobs, ...), for resume
};

class Engine {
 public:
  Engine(const Plan& plan, RunOptions options, std::map<std::string, std::unique_ptr<Executor>> executors);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs the plan to its end and returns the final run record (run.json).
  // Every state change is published to the observers as a typed event
  // (run_events.hpp) and appended to run_dir/events.jsonl (event_log.hpp).
  Json run();
  // Asks the run to stop: running steps are told, then killed after the
  // grace period; finally steps still run. A second call kills at once.
  // Thread-safe and cheap (call it from a signal-handling thread).
  void request_cancel();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::host

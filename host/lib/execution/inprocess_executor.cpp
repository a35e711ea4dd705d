// The in-process executor: each attempt on its own thread of the host.
#include <kiln/host/command_runner.hpp>
#include <kiln/host/executor.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/invoke.hpp>
#include <kiln/host/plugin_library.hpp>

#include "replica_group.hpp"

#include <thread>

namespace kiln::host {
namespace {

// Forwards a component's events to the attempt observer.
class ForwardingSink : public StepEventSink {
 public:
  explicit ForwardingSink(std::shared_ptr<AttemptObserver> observer) : observer_(std::move(observer)) {}
  void on_log(KilnLogLevel level, const std::string& message) override {
    observer_->on_event(LogEvent{log_level_from_abi(level), message});
  }
  void on_metric(const std::string& name, double value, int64_t step) override {
    observer_->on_event(MetricEvent{name, value, step});
  }
  void on_progress(double fraction, const std::string& message) override {
    observer_->on_event(ProgressEvent{fraction, message});
  }
  // The same depth limit as on the runner channel (the engine copies and
  // dumps these recursively).
  void on_output_parameter(const std::string& name, const Json& value) override {
    require_shallow(value, "output parameter '" + name + "'");
    result.output_parameters[name] = value;
  }
  void on_output_metadata(const std::string& name, const Json& metadata) override {
    require_shallow(metadata, "metadata of output '" + name + "'");
    result.output_metadata[name] = metadata;
  }
  AttemptResult result;

 private:
  std::shared_ptr<AttemptObserver> observer_;
};

class InProcessAttempt : public RunningAttempt {
 public:
  explicit InProcessAttempt(std::shared_ptr<std::atomic<bool>> cancelled) : cancelled_(std::move(cancelled)) {}
  void cancel() override { *cancelled_ = true; }
  void kill() override { *cancelled_ = true; }  // a thread cannot be killed; the engine stops waiting

 private:
  std::shared_ptr<std::atomic<bool>> cancelled_;
};

// A plugin's run function on this thread, or a component file's command
// (a child in a process group of its own, stopped by the runner on cancel).
StepOutcome invoke(const StepLaunch& launch, StepInvocation invocation, StepEventSink& sink,
                   const std::atomic<bool>& cancelled) {
  if (is_component_file(launch.component.library)) {
    CommandRun run{launch.component.library, std::move(invocation)};
    run.group = CommandGroup::Own;
    run.grace = std::chrono::milliseconds(static_cast<int64_t>(launch.grace_seconds * 1000));
    run.log_dir = launch.attempt_dir;
    return run_command_component(run, sink, cancelled);
  }
  const auto library = PluginLibrary::load(launch.component.library);
  const auto* component = library->find(launch.component.manifest.name);
  if (component == nullptr) throw PluginLoadError("the library no longer provides " + launch.component.manifest.name);
  return invoke_component(*component, std::move(invocation), sink, cancelled);
}

class InProcessExecutor : public Executor {
 public:
  std::unique_ptr<RunningAttempt> start(const StepLaunch& launch, std::shared_ptr<AttemptObserver> observer) override {
    require_one_replica(launch, "inprocess");
    if (!launch.gpus.empty())  // the engine refuses such a plan before it runs (scheduler.hpp: gpu_problems)
      throw std::runtime_error("step '" + launch.step + "' was given GPUs: the inprocess executor cannot make them its own");
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    std::thread([launch, observer, cancelled] {
      AttemptResult result;
      try {
        ForwardingSink sink(observer);
        StepInvocation invocation{launch.parameters, launch.inputs, launch.output_dir, launch.temp_dir,
                                  launch.checkpoint_dir};
        const auto outcome = invoke(launch, std::move(invocation), sink, *cancelled);
        result = std::move(sink.result);
        if (!outcome.ok) {
          result.failure_class = outcome.code == KILN_ERROR_CANCELLED ? "cancelled" : "error";
          result.message = outcome.message;
        }
      } catch (const std::exception& e) {
        result.failure_class = "error";
        result.message = e.what();
      }
      observer->on_finished(std::move(result));
    }).detach();
    return std::make_unique<InProcessAttempt>(cancelled);
  }
};

}  // namespace

std::unique_ptr<Executor> make_inprocess_executor() {
  return std::make_unique<InProcessExecutor>();
}

}  // namespace kiln::host

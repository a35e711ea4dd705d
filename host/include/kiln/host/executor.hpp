// Executors run one attempt of one step somewhere (this process, a child
// process, later a container) and report its events and its end.
#pragma once

#include <kiln/host/catalog.hpp>
#include <kiln/host/container_options.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/runner_event.hpp>
#include <kiln/host/slurm_options.hpp>
#include <kiln/host/step_context.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace kiln::host {

// One process of a data-parallel attempt (docs/distributed.md). `kiln step`
// exports it to the component as KILN_RANK, KILN_WORLD_SIZE and
// KILN_RENDEZVOUS (kiln/sdk/replica.hpp reads them).
struct ReplicaPlace {
  int rank = 0;
  int world_size = 1;
  std::string rendezvous;  // HOST:PORT of the store rank 0 serves
};

// Everything one attempt needs, resolved by the engine.
struct StepLaunch {
  std::string step;  // display name, e.g. "train" or "per-name[2]"
  CatalogComponent component;
  Json parameters = Json::object();
  std::map<std::string, InputArtifact> inputs;
  std::filesystem::path attempt_dir;  // logs: stdout.log, stderr.log
  std::filesystem::path output_dir;   // output `x` goes to output_dir / x
  std::filesystem::path temp_dir;
  std::filesystem::path checkpoint_dir;  // shared by all attempts of the step
  ContainerOptions container;            // the container executor's; resources also Slurm's
  SlurmOptions slurm;                    // used by the Slurm executor only (the step's, over the run's)
  std::optional<double> timeout_seconds;  // the step's timeout (the engine enforces it)
  double grace_seconds = 5.0;             // between a stop request and the kill
  // `distributed.replicas`: how many processes run this attempt. An executor
  // that cannot run more than one refuses replicas > 1 in start().
  int replicas = 1;
  // Set by the executor on each process's request when replicas > 1.
  std::optional<ReplicaPlace> replica;
  // The host's GPUs the engine gave this attempt (docs/gpu.md): executors
  // that run it on this host make exactly these visible to it
  // (CUDA_VISIBLE_DEVICES; empty: none). The Slurm executor leaves GPUs to Slurm.
  std::vector<int> gpus{};
  // A tuning step's trial: the process executor may run it in a warm worker
  // process that ran an earlier trial of the same component (StepChildOptions::reuse).
  bool reuse_process = false;
};

// How an attempt ended. failure_class is "" on success, else one of
// error (the plugin reported an error), crash (signal, exit, lost runner),
// timeout or cancelled (set by the engine when it stopped the attempt).
struct AttemptResult {
  std::string failure_class;
  std::string message;
  Json output_parameters = Json::object();
  Json output_metadata = Json::object();
  bool ok() const { return failure_class.empty(); }
};

// Receives an attempt's events, from any thread. on_finished is called
// exactly once, last.
class AttemptObserver {
 public:
  virtual ~AttemptObserver() = default;
  // A log, metric or progress event (outputs and the result arrive in
  // on_finished's AttemptResult).
  virtual void on_event(RunnerEvent event) = 0;
  virtual void on_finished(AttemptResult result) = 0;
};

// A started attempt. Destroying it does not stop it.
class RunningAttempt {
 public:
  virtual ~RunningAttempt() = default;
  // Asks the step to stop (the plugin sees is_cancelled).
  virtual void cancel() = 0;
  // Stops it now, whatever it is doing (where the executor can).
  virtual void kill() = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual std::unique_ptr<RunningAttempt> start(const StepLaunch& launch,
                                                std::shared_ptr<AttemptObserver> observer) = 0;
};

// Runs components on a thread of this process: for debugging. It cannot
// force-stop a hung plugin (kill() only abandons it) and a crash takes the host down.
std::unique_ptr<Executor> make_inprocess_executor();

// Runs each attempt in a `kiln step` child process (crash isolation).
// `kiln_exe` is the kiln binary to start.
std::unique_ptr<Executor> make_process_executor(std::filesystem::path kiln_exe);

// Runs each attempt's `kiln step` in its own OCI container under runc (see
// docs/containers.md). Bundles, runc state and unpacked images live under
// `state_dir`; containers left there by a kiln that died are removed here.
// Throws std::runtime_error when runc is not installed.
std::unique_ptr<Executor> make_container_executor(std::filesystem::path kiln_exe, std::filesystem::path state_dir);

// Runs each attempt as a Slurm batch job (sbatch) whose `kiln step` writes
// the runner channel to a file in the attempt directory; one watcher thread
// follows every job of the executor (see docs/executors.md). The workspace must
// be on a filesystem the compute nodes share at the same path. `run_options`
// apply to every job, under each step's own `slurm:`; the run's allocation
// (allocation mode) asks for `run_timeout_seconds` (the pipeline's
// options.timeout) as its --time, see salloc_arguments. Jobs recorded under
// `state_dir` by a kiln that died are cancelled here. Throws
// std::runtime_error when sbatch, squeue or scancel are missing or the
// cluster does not answer.
std::unique_ptr<Executor> make_slurm_executor(std::filesystem::path kiln_exe, std::filesystem::path state_dir,
                                              SlurmOptions run_options, std::optional<double> run_timeout_seconds);

// The runner channel (JSON lines on fd 3 of `kiln step`, version
// kRunnerChannelVersion) is defined in runner_event.hpp.

// The child side: loads the plugin named in the request file, runs the
// component, writes the channel to `channel_fd`. Returns the exit code.
int run_step_request(const std::filesystem::path& request_file, int channel_fd);
// The same for a request already read (the step server passes it inline).
int run_inline_step_request(const Json& request, int channel_fd);
// A reused step process (the step server's warm worker, docs/executors.md)
// runs one step after another: `step_id` names the one it runs next. A stop
// signal queued with sigqueue carries the id of the step it is meant for
// (sival_ptr) and cancels only that one, even when it arrives before the
// step began or after it ended; a plain kill() cancels whatever runs.
int run_inline_step_request(const Json& request, int channel_fd, uint64_t step_id);

// `kiln step`: run_step_request, behind a minimal init when this process is
// pid 1 of a container (see step_runner.cpp).
int run_step_command(const std::filesystem::path& request_file, int channel_fd);

// The request `kiln step` reads: what to run, with which parameters and
// inputs (and `replica` when set), and the grace period between a stop
// request and the kill (`grace_seconds`: a component file's command gets it
// from its runner when the runner passes the stop on, below).
// An executor whose stop signal reaches the runner alone, not its process
// group (Slurm's `scancel --signal=TERM` signals a step's task, not what it
// started), adds "command_group": "own": the runner then makes a component
// file's command lead a group of its own and passes the stop on to it
// (CommandGroup::Own, command_runner.hpp).
Json step_request(const StepLaunch& launch);
// Writes it as the request file.
void write_step_request(const StepLaunch& launch, const std::filesystem::path& request_file);
// Writes a request (step_request's, with an executor's additions) as the request file.
void write_request_file(const Json& request, const std::filesystem::path& request_file);
// The same from the request's JSON text, encoded once by the caller.
void write_request_text(const std::string& request_json, const std::filesystem::path& request_file);

}  // namespace kiln::host

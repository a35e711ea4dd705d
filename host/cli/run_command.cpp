// `kiln validate`, `kiln run` and the hidden runner `kiln step`.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <kiln/host/engine.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/gpus.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/pod_step.hpp>
#include <kiln/host/pod_tuning.hpp>
#include <kiln/host/profile.hpp>
#include <kiln/host/run_store.hpp>
#include <kiln/host/spec.hpp>
#include <kiln/host/store.hpp>
#include <kiln/host/yaml_json.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "cli.hpp"
#include "live_view.hpp"
#include "pipeline_options.hpp"

namespace kiln::cli {
namespace {

using host::Json;


int validate(const PipelineOptions& options) {
  const auto plan = load_plan(options);
  size_t main_steps = 0;
  for (const auto& s : plan.steps) main_steps += !s.spec.is_finally;
  std::cout << options.file << ": valid pipeline '" << plan.spec.name << "' with " << main_steps << " steps and "
            << plan.steps.size() - main_steps << " finally steps\n";
  return kExitOk;
}

// Turns SIGINT/SIGTERM into engine cancellation requests on a dedicated
// thread (sigwait), so no work happens in a signal handler.
class SignalForwarder {
 public:
  explicit SignalForwarder(host::Engine& engine) {
    sigset_t set = signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    thread_ = std::thread([this, &engine, set] {
      for (;;) {
        int signal = 0;
        if (sigwait(&set, &signal) != 0) return;
        if (signal == SIGUSR1) {
          if (done_) return;  // our own wake-up call; a stray SIGUSR1 is ignored
          continue;
        }
        engine.request_cancel();
      }
    });
  }
  ~SignalForwarder() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  SignalForwarder(const SignalForwarder&) = delete;
  SignalForwarder& operator=(const SignalForwarder&) = delete;

  // Blocks the signals in the calling thread, before any worker thread starts.
  static void block() {
    sigset_t set = signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }

 private:
  static sigset_t signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    return set;
  }
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// `kiln step --request-json`: a bad request or argument is exit 64 with the
// reason. A tuning step's search runs here, its engine told of SIGTERM as
// `kiln run`'s is.
int run_pod_step(const host::PodStepArguments& arguments) {
  if (arguments.request_json.empty()) throw CommandError("kiln step: give --request FILE or --request-json JSON", kExitUsage);
  try {
    const host::PodStep step = host::parse_pod_step(arguments);
    if (!step.request.tuning) return host::run_pod_step(step);
    SignalForwarder::block();
    return host::run_pod_tuning(step, [](host::Engine& engine) {
      SignalForwarder forwarder(engine);
      return engine.run();
    });
  } catch (const host::PodRequestError& e) {
    std::cerr << "kiln step: " << e.what() << "\n";
    return host::kPodExitUsage;
  }
}

struct RunCommandOptions {
  PipelineOptions pipeline;
  std::string executor = "process";
  int jobs = 0;
  std::string workdir;
  bool json = false;
  double grace = 5.0;
  bool no_cache = false;
  std::string run_id;  // --run-id: chosen by the caller (kiln ui knows it before the run starts)
  std::string config;   // the workspace configuration; "" = ./kiln.yaml when it exists
  std::string profile;  // "" = the configuration's default_profile, if any
  std::string gpus = "auto";  // --gpus: N, LIST, none or auto (KILN_GPUS, else detected)
  // Which of the flags were given: those win over the profile.
  std::map<std::string, CLI::Option*> flags;
  bool given(const std::string& flag) const { return flags.count(flag) && flags.at(flag)->count() > 0; }
};

// The profile of this run (--profile, else the configuration's default), or
// nullopt when there is none; its settings go under the command line's.
std::optional<host::Profile> chosen_profile(const RunCommandOptions& options) {
  std::string file = options.config;
  if (file.empty()) {
    if (!std::filesystem::exists("kiln.yaml")) {
      if (!options.profile.empty())
        throw CommandError("--profile " + options.profile + ": there is no kiln.yaml here (give it with --config)",
                           kExitUsage);
      return std::nullopt;
    }
    file = "kiln.yaml";
  }
  try {
    const auto config = host::parse_workspace_config_file(file);
    const std::string name = !options.profile.empty() ? options.profile : config.default_profile.value_or("");
    if (name.empty()) return std::nullopt;
    return config.profile(name);
  } catch (const host::SpecError& e) {
    throw spec_problems(e, file);
  }
}

// A profile's container defaults, onto the steps that left them at kiln's.
void apply_container_defaults(host::Plan& plan, const host::Profile& profile) {
  for (auto& step : plan.steps) {
    auto& container = step.spec.container;
    if (profile.container_image && container.image == "host") container.image = *profile.container_image;
    if (profile.container_network && container.network == "none") container.network = *profile.container_network;
    container.mounts.insert(container.mounts.end(), profile.container_mounts.begin(), profile.container_mounts.end());
  }
}

struct ResumeCommandOptions {
  std::string run;
  std::string workdir;
  bool json = false;
  bool force = false;
};

Json summary(const Json& record, const std::filesystem::path& run_dir) {
  Json steps = Json::object();
  for (const auto& item : record["steps"].items()) {
    const Json& s = item.value();
    double duration = 0;
    int attempts = 0;
    for (const auto& a : s.value("attempts", Json::array())) {
      duration += a.value("duration_seconds", 0.0);
      ++attempts;
    }
    Json entry{{"status", s.value("status", "")}, {"attempts", attempts}, {"duration_seconds", duration}};
    if (s.contains("message")) entry["message"] = s["message"];
    if (s.contains("outputs")) entry["outputs"] = s["outputs"];
    if (s.contains("artifacts")) entry["artifacts"] = s["artifacts"];
    if (s.contains("items")) entry["items"] = s["items"];
    if (s.contains("digests")) entry["digests"] = s["digests"];
    if (s.contains("cache") && s["cache"].value("status", "") == "miss") entry["cache_miss"] = s["cache"]["reason"];
    steps[item.key()] = entry;
  }
  Json out{{"run_id", record["id"]},
           {"status", record["status"]},
           {"run_dir", run_dir.string()},
           {"duration_seconds", record.value("duration_seconds", 0.0)},
           {"steps", steps}};
  if (record.contains("message")) out["message"] = record["message"];
  return out;
}

void print_summary(const Json& s) {
  std::cout << "\nrun " << s["run_id"].get<std::string>() << ": " << s["status"].get<std::string>();
  if (s.contains("message")) std::cout << " (" << s["message"].get<std::string>() << ")";
  char duration[32];
  std::snprintf(duration, sizeof duration, " in %.3f s\n", s["duration_seconds"].get<double>());
  std::cout << duration;
  for (const auto& item : s["steps"].items()) {
    const Json& step = item.value();
    std::cout << "  " << item.key() << ": " << step["status"].get<std::string>();
    if (step.contains("cache_miss")) std::cout << " [cache miss: " << step["cache_miss"].get<std::string>() << "]";
    if (step["attempts"].get<int>() > 1) std::cout << " after " << step["attempts"].get<int>() << " attempts";
    if (step.contains("message")) std::cout << " (" << step["message"].get<std::string>() << ")";
    if (step.contains("outputs") && !step["outputs"].empty()) std::cout << " " << step["outputs"].dump();
    std::cout << "\n";
  }
  std::cout << "logs and outputs: " << s["run_dir"].get<std::string>() << "\n";
}

namespace fs = std::filesystem;

// A run id names a directory under runs/: letters, digits, '-', '_', '.', not
// starting with '.', at most 200 characters (what kiln ui accepts in a path).
CLI::Validator run_id_validator() {
  return CLI::Validator(
      [](const std::string& id) -> std::string {
        return host::is_run_id(id) ? "" : "'" + id + "' is not a run id: letters, digits, '-', '_', '.' (at most 200, no leading '.')";
      },
      "ID");
}

// The container and Slurm executors check for runc, sbatch and the cluster
// when made: only when a step needs them.
bool uses_executor(const host::Plan& plan, const std::string& default_executor, const std::string& name) {
  for (const auto& step : plan.steps) {
    const std::string& e = step.spec.executor.empty() ? default_executor : step.spec.executor;
    if (e == name) return true;
  }
  return false;
}

// Runs a plan (new or resumed) with the live view or --json, and prints the summary.
int execute(const host::Plan& plan, host::RunOptions run, const std::filesystem::path& workspace, bool json,
            const host::SlurmOptions& slurm) {
  LiveView view(json ? std::cerr : std::cout, !json && ::isatty(STDOUT_FILENO));
  run.observers.push_back(&view);
  std::map<std::string, std::unique_ptr<host::Executor>> executors;
  executors["inprocess"] = host::make_inprocess_executor();
  executors["process"] = host::make_process_executor(host::executable_path());
  if (uses_executor(plan, run.executor, "container"))
    executors["container"] = host::make_container_executor(host::executable_path(), workspace / "containers");
  if (uses_executor(plan, run.executor, "slurm")) {
    try {
      executors["slurm"] =
          host::make_slurm_executor(host::executable_path(), workspace / "slurm", slurm, plan.spec.timeout_seconds);
    } catch (const std::runtime_error& e) {
      throw CommandError(e.what());
    }
  }
  const std::string header = (run.resume ? "resuming run " : "run ") + run.run_id + ": pipeline '" + plan.spec.name +
                             "', " + std::to_string(plan.steps.size()) + " steps, executor " + run.executor + ", " +
                             std::to_string(run.jobs) + " jobs" +
                             (run.gpus.ids.empty() ? "" : ", GPUs " + host::gpu_list_text(run.gpus.ids));
  std::optional<host::Engine> made;
  try {
    made.emplace(plan, run, std::move(executors));  // refuses steps that need GPUs the run cannot give
  } catch (const host::SpecError& e) {
    throw spec_problems(e, plan.spec.file);
  }
  host::Engine& engine = *made;
  if (!json) std::cout << header << "\n";
  Json record;
  {
    SignalForwarder forwarder(engine);
    record = engine.run();
  }
  view.finish();
  const Json s = summary(record, run.run_dir);
  if (json)
    std::cout << s.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  else
    print_summary(s);
  const auto ended = host::parse_run_status(record.value("status", ""));
  return ended == host::RunStatus::succeeded ? kExitOk : (ended == host::RunStatus::cancelled ? 130 : kExitFailure);
}

int run(RunCommandOptions options) {
  SignalForwarder::block();  // before any thread exists, so all inherit the mask
  auto plan = load_plan(options.pipeline);
  host::SlurmOptions slurm;
  if (const auto profile = chosen_profile(options)) {
    if (profile->executor && !options.given("--executor")) options.executor = *profile->executor;
    if (profile->jobs && !options.given("--jobs")) options.jobs = *profile->jobs;
    if (profile->workdir && !options.given("--workdir")) options.workdir = *profile->workdir;
    if (profile->grace_seconds && !options.given("--grace")) options.grace = *profile->grace_seconds;
    if (profile->cache && !options.given("--no-cache")) options.no_cache = !*profile->cache;
    slurm = profile->slurm;
    apply_container_defaults(plan, *profile);
  }
  const auto workspace = host::workspace_dir(options.workdir);
  host::Store store(workspace);
  host::RunOptions run;
  run.executor = options.executor;
  run.jobs = options.jobs > 0 ? options.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  run.run_id = options.run_id.empty() ? host::new_run_id(plan.spec.name) : options.run_id;
  run.run_dir = host::runs_dir(workspace) / run.run_id;
  if (!options.run_id.empty()) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(run.run_dir, ec)))
      throw CommandError("--run-id " + options.run_id + ": a run with this id exists in " + workspace.string(),
                         kExitUsage);
  }
  try {
    run.gpus = host::host_gpu_pool(options.gpus);
  } catch (const std::invalid_argument& e) {
    throw CommandError(e.what(), kExitUsage);
  }
  run.grace_seconds = options.grace;
  run.store = &store;
  run.use_cache = !options.no_cache;
  run.spec_text = host::read_file(options.pipeline.file);
  run.options_record = {
      {"executor", run.executor}, {"jobs", run.jobs}, {"grace", run.grace_seconds}, {"no_cache", options.no_cache}};
  if (!options.profile.empty()) run.options_record["profile"] = options.profile;
  if (!run.gpus.ids.empty()) run.options_record["gpus"] = run.gpus.ids;  // informational: resume looks again
  if (const Json s = host::slurm_options_json(slurm); !s.empty()) run.options_record["slurm"] = s;
  return execute(plan, std::move(run), workspace, options.json, slurm);
}

// Refuses a run whose host may still be running it.
void check_host_gone(const Json& row, bool force) {
  if (row.value("status", "") != "running") return;
  const auto state = host::liveness_of(row);
  const auto recorded = host::recorded_identity(row).value_or(host::HostIdentity{});
  const std::string id = row["id"].get<std::string>();
  if (state == host::HostState::alive)
    throw CommandError("run " + id + " is still running (host pid " + std::to_string(recorded.pid) + ")");
  if (state == host::HostState::unknown && !force)
    throw CommandError("run " + id + " was started on " + recorded.host +
                       "; kiln cannot tell from here whether it still runs (use --force if it does not)");
}

int resume(const ResumeCommandOptions& options) {
  SignalForwarder::block();
  const auto workspace = host::workspace_dir(options.workdir);
  std::string id;
  try {
    id = host::find_run(workspace, options.run).filename().string();
  } catch (const std::runtime_error& e) {
    throw CommandError(e.what());
  }
  host::Store store(workspace);
  const auto row = store.db.query_one("SELECT * FROM runs WHERE id=?", {id});
  if (!row) throw CommandError("run " + id + " is not recorded in " + store.db.file().string());
  if (host::parse_run_status(row->value("status", "")) == host::RunStatus::succeeded) {
    std::cout << "run " << id << " already succeeded: nothing to resume\n";
    return kExitOk;
  }
  check_host_gone(*row, options.force);
  host::Plan plan;
  try {
    auto spec =
        host::parse_pipeline_text((*row)["spec_text"].get<std::string>(), (*row)["spec_file"].get<std::string>());
    plan = host::plan_pipeline(std::move(spec), host::discover_default_catalog(),
                               Json::parse((*row)["parameters"].get<std::string>()), "the recorded parameters");
  } catch (const host::SpecError& e) {
    for (const auto& d : e.diagnostics()) std::cerr << d.str() << "\n";
    throw CommandError("the recorded pipeline of run " + id + " no longer validates");
  }
  const Json recorded = Json::parse((*row)["options"].get<std::string>());
  host::RunOptions run;
  run.executor = recorded.value("executor", "process");
  run.jobs = recorded.value("jobs", 2);
  run.grace_seconds = recorded.value("grace", 5.0);
  try {  // the GPUs of the host that resumes it: KILN_GPUS, else detected
    run.gpus = host::host_gpu_pool("auto");
  } catch (const std::invalid_argument& e) {
    throw CommandError(e.what(), kExitUsage);
  }
  run.use_cache = !recorded.value("no_cache", false);
  run.run_id = id;
  run.run_dir = (*row)["run_dir"].get<std::string>();
  run.store = &store;
  run.resume = true;
  run.spec_text = (*row)["spec_text"].get<std::string>();
  run.options_record = recorded;
  return execute(plan, std::move(run), workspace, options.json,
                 host::slurm_options_from_json(recorded.value("slurm", Json::object())));
}

}  // namespace

void add_run_commands(CLI::App& app, Commands& commands) {
  static PipelineOptions validate_options;
  auto* validate_cmd =
      commands.add(app, "validate", "Check a pipeline without running it", [] { return validate(validate_options); });
  add_pipeline_options(validate_cmd, validate_options);

  static RunCommandOptions run_options;
  auto* run_cmd = commands.add(app, "run", "Run a pipeline", [] { return run(run_options); });
  add_pipeline_options(run_cmd, run_options.pipeline);
  run_options.flags["--executor"] = run_cmd->add_option("--executor", run_options.executor, "Where steps run: process (default), container, slurm or inprocess")
      ->check(CLI::IsMember({"process", "container", "inprocess", "slurm"}));
  run_options.flags["--jobs"] = run_cmd->add_option("--jobs,-j", run_options.jobs, "Steps running at once (default: the number of cores)")
      ->check(CLI::PositiveNumber);
  run_options.flags["--workdir"] =
      run_cmd->add_option("--workdir", run_options.workdir, "Workspace for runs (default: $KILN_HOME or ./.kiln)");
  run_cmd->add_flag("--json", run_options.json, "Print a JSON summary instead of the live view");
  run_options.flags["--grace"] = run_cmd->add_option("--grace", run_options.grace, "Seconds between asking a step to stop and killing it")
      ->check(CLI::NonNegativeNumber);
  run_options.flags["--no-cache"] =
      run_cmd->add_flag("--no-cache", run_options.no_cache, "Run every step, even those with a cached result");
  run_cmd->add_option("--config", run_options.config,
                      "The workspace configuration with the profiles (default: ./kiln.yaml when it exists)");
  run_cmd->add_option("--profile", run_options.profile,
                      "Run with this profile of the configuration (default: its default_profile)");
  run_cmd->add_option("--run-id", run_options.run_id, "The new run's id (default: time, pipeline, random suffix)")
      ->check(run_id_validator());
  run_cmd->add_option("--gpus", run_options.gpus,
                      "The GPUs steps are given: a number, a list of indices (0,2), none, or auto (default: "
                      "$KILN_GPUS, else the NVIDIA GPUs found, within $CUDA_VISIBLE_DEVICES)");

  static ResumeCommandOptions resume_options;
  auto* resume_cmd = commands.add(app, "resume", "Continue a run whose host stopped (killed, crashed, power loss)",
                                  [] { return resume(resume_options); });
  resume_cmd->add_option("RUN", resume_options.run, "Run id, a unique prefix of one, or 'latest'")->required();
  resume_cmd->add_option("--workdir", resume_options.workdir, "Workspace (default: $KILN_HOME or ./.kiln)");
  resume_cmd->add_flag("--json", resume_options.json, "Print a JSON summary instead of the live view");
  resume_cmd->add_flag("--force", resume_options.force, "Resume a run started on another machine");

  // Runs one step in this process and reports on fd 3 (see executor.hpp),
  // or, with --request-json, one compiled step in a pod (pod_step.hpp).
  static std::string request;
  static host::PodStepArguments pod;
  auto* step = commands.add(app, "step", "Run one compiled step in a pod (see docs/kubernetes.md)",
                            [] { return request.empty() ? run_pod_step(pod) : host::run_step_command(request, 3); });
  step->group("");
  auto* file = step->add_option("--request", request, "The step request file (kiln's own executors)");
  auto* json = step->add_option("--request-json", pod.request_json, "The request kiln compile wrote");
  file->excludes(json);
  json->excludes(file);
  step->add_option("--value", pod.values, "REF=TEXT: a value the step reads (params.x, item, ...)");
  step->add_option("--input", pod.inputs, "NAME=DIR: an input artifact's directory");
  step->add_option("--input-metadata", pod.input_metadata, "NAME=JSON: an input artifact's metadata");
  step->add_option("--output", pod.outputs, "NAME=DIR: where output NAME goes");
  step->add_option("--output-metadata", pod.output_metadata, "NAME=FILE: where output NAME's metadata goes");
  step->add_option("--output-parameter", pod.output_parameters, "NAME=FILE: where an output parameter goes");
}

}  // namespace kiln::cli

// A compiled tuning step in its pod (pod_tuning.hpp): a one-step plan over
// bound steps, run by the engine; then its outcome copied to the target's places.
#include <kiln/host/catalog.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/pod_tuning.hpp>
#include <kiln/host/reference.hpp>
#include <kiln/host/tuning_request.hpp>

#include <cmath>
#include <cstdlib>
#include <iostream>

namespace kiln::host {
namespace fs = std::filesystem;
namespace {

// What the run ended with, from its events: the tuning step's status and
// outputs, each unit's artifacts, the trials table.
class OutcomeObserver : public RunObserver {
 public:
  void on_event(uint64_t, const RunEvent& event) override {
    if (const auto* step = std::get_if<events::StepChanged>(&event)) {
      status = step->status;
      message = step->message;
      if (!step->outputs.is_null()) outputs = step->outputs;
    } else if (const auto* unit = std::get_if<events::UnitFinished>(&event)) {
      std::cerr << "[trial] " << unit->unit.display << " " << to_string(unit->status)
                << (unit->message.empty() ? "" : ": " + unit->message) << "\n";
      const std::string part = unit->unit.key.find('.') == std::string::npos ? "" : unit->unit.planned->spec.name;
      auto& artifacts = trial_artifacts[unit->unit.item_index][part];
      for (const auto& a : unit->artifacts)
        artifacts.push_back({a.name, a.path, unit->metadata.value(a.name, Json::object())});
    } else if (const auto* trials = std::get_if<events::TrialsRecorded>(&event)) {
      trials_path = trials->path;
    }
  }

  struct Artifact {
    std::string name, path;  // path relative to the run directory
    Json metadata;
  };
  StepStatus status = StepStatus::pending;
  std::string message;
  Json outputs = Json::object();
  // By trial, then by trial template step ("" for a component trial).
  std::map<int, std::map<std::string, std::vector<Artifact>>> trial_artifacts;
  std::string trials_path;  // its trials.json, relative to the run directory
};

fs::path pod_work_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = (fs::path(base && *base ? base : "/tmp") / "kiln-tuning.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot make a scratch directory");
  return pattern;
}

void write_place(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  write_file_atomic(path, text);
}

void copy_artifact(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::remove_all(to, ec);
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
}

// The one-step plan: the tuning step, its upstream steps bound to what the pod got.
Plan pod_plan(const PodStep& pod, const PluginCatalog& catalog) {
  const PodRequest& r = pod.request;
  Plan plan;
  plan.spec.name = r.pipeline;
  const auto dir = r.constants.find("pipeline.dir");
  plan.spec.file = ((dir == r.constants.end() ? fs::current_path() : fs::path(dir->second)) / "pipeline.yaml").string();
  PlannedStep step;
  try {
    step = tuning_step_from_json(*r.tuning, catalog);
  } catch (const TuningRequestError& e) {
    throw PodRequestError(std::string("request: ") + e.what());
  }
  for (const auto& [text, value] : pod.values) {
    Reference ref;
    try {
      ref = parse_reference(text);
    } catch (const std::exception& e) {
      throw PodRequestError("--value " + text + ": " + e.what());
    }
    if (ref.kind == Reference::Kind::Param)
      plan.parameters[ref.name] = value;
    else if (ref.kind == Reference::Kind::StepOutput)
      plan.bound_steps[ref.step].outputs[ref.output] = value;
    // run.id and the like: the pod's engine has its own (run_pod_tuning)
  }
  for (const auto& [name, wire] : tuning_step_inputs(step)) {
    const auto path = pod.input_paths.find(name);
    if (path == pod.input_paths.end()) throw PodRequestError("--input " + name + "=…: missing (the request needs it)");
    plan.bound_steps[wire.step].artifacts[wire.output] = {path->second, pod.input_metadata.at(name)};
  }
  plan.steps.push_back(std::move(step));
  return plan;
}

// The step's outcome where the target collects it.
void place_outcome(const PodStep& pod, const PlannedStep& tuning, const OutcomeObserver& seen,
                   const fs::path& run_dir) {
  const PodRequest& r = pod.request;
  std::map<std::string, OutcomeObserver::Artifact> best;
  const Json trial = seen.outputs.value("best_trial", Json());
  if (trial.is_number_integer() && seen.trial_artifacts.count(trial.get<int>())) {
    const auto& units = seen.trial_artifacts.at(trial.get<int>());
    std::vector<std::string> parts{""};
    for (const auto& part : tuning.trial_steps) parts.push_back(part.spec.name);
    for (const auto& part : parts)  // the template's order: a later step wins a name, as under kiln run
      if (const auto it = units.find(part); it != units.end())
        for (const auto& a : it->second) best[a.name] = a;
  }
  for (const auto& o : r.outputs) {
    if (o == kTrialsOutput) {
      if (seen.trials_path.empty()) throw std::runtime_error("the run wrote no trials table");
      const fs::path table_file = run_dir / seen.trials_path;  // DIR/trials.json
      copy_artifact(table_file.parent_path(), pod.output_paths.at(o));
      const Json table = Json::parse(read_file(table_file));
      write_place(pod.metadata_paths.at(o),
                  Json{{"type", kTrialsArtifactType}, {"trials", table.value("trials", Json::array()).size()}}.dump());
      continue;
    }
    const auto it = best.find(o);
    if (it == best.end()) throw std::runtime_error("the best trial produced no output '" + o + "'");
    copy_artifact(run_dir / it->second.path, pod.output_paths.at(o));
    write_place(pod.metadata_paths.at(o), it->second.metadata.dump());
  }
  for (const auto& [name, path] : pod.parameter_paths)
    write_place(path, seen.outputs.contains(name) ? seen.outputs[name].dump() : "null");
}

}  // namespace

int pod_tuning_jobs(const PlannedStep& tuning) {
  const StepSpec& s = tuning.spec;
  if (s.tune && s.tune->parallel_trials > 0) return s.tune->parallel_trials;
  if (s.parallelism > 0) return s.parallelism;
  if (s.container.cpus && *s.container.cpus >= 1) return static_cast<int>(std::floor(*s.container.cpus));
  return 1;
}

int run_pod_tuning(const PodStep& pod, const std::function<Json(Engine&)>& run) {
  const PodRequest& r = pod.request;
  fs::path work;
  try {
    const auto catalog = discover_default_catalog();
    const Plan plan = pod_plan(pod, catalog);
    work = pod_work_dir();
    RunOptions options;
    options.run_dir = work / "run";
    const auto run_id = pod.values.find("run.id");  // the workflow's, for {{ run.id }}
    options.run_id = run_id != pod.values.end() && run_id->second.is_string() ? run_id->second.get<std::string>()
                                                                                : "pod-" + r.step;
    options.jobs = pod_tuning_jobs(plan.steps.front());
    OutcomeObserver seen;
    options.observers.push_back(&seen);
    std::map<std::string, std::unique_ptr<Executor>> executors;
    executors["inprocess"] = make_inprocess_executor();
    executors["process"] = make_process_executor(executable_path());
    std::cerr << "tuning step " << r.step << ": " << plan.steps.front().spec.tune->max_trials << " trials at most, "
              << options.jobs << " at once, in " << options.run_dir.string() << "\n";
    Engine engine(plan, options, std::move(executors));
    run(engine);
    int status = 0;
    if (seen.status != StepStatus::succeeded) {
      std::cerr << "kiln step: tuning step " << r.step << " " << to_string(seen.status)
                << (seen.message.empty() ? "" : ": " + seen.message) << "\n";
      status = kPodExitError;
    } else {
      place_outcome(pod, plan.steps.front(), seen, options.run_dir);
    }
    std::error_code ec;
    fs::remove_all(work, ec);
    return status;
  } catch (const PodRequestError& e) {
    std::cerr << "kiln step: " << e.what() << "\n";
    return kPodExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "kiln step: " << r.step << ": " << e.what() << "\n";
    std::error_code ec;
    if (!work.empty()) fs::remove_all(work, ec);
    return kPodExitError;
  }
}

}  // namespace kiln::host

// The pipeline spec (apiVersion kiln/v1, kind Pipeline): what a user writes,
// parsed from YAML with the position of every value, templates and imports
// already applied. docs/spec.md is the user's reference.
#pragma once

#include <kiln/host/container_options.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/manifest.hpp>
#include <kiln/host/slurm_options.hpp>

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::host {

// Where something was written: file, 1-based line and column.
struct SourcePos {
  std::string file;
  int line = 0, column = 0;
  std::string str() const;
};

// One validation problem: "file:line:col: message".
struct Diagnostic {
  SourcePos pos;
  std::string message;
  std::string str() const { return pos.str() + ": " + message; }
};

// Thrown when a spec cannot be used; carries every problem found.
class SpecError : public std::runtime_error {
 public:
  explicit SpecError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

// A value as written, possibly holding "{{ reference }}" templates.
struct ValueSpec {
  Json value;
  SourcePos pos;
};

// An input wired to an upstream step's output artifact: "STEP.outputs.NAME".
struct InputWire {
  std::string step, output;
  SourcePos pos;
};

// Failure classes a retry may be limited to.
inline const std::vector<std::string>& failure_classes() {
  static const std::vector<std::string> classes{"error", "crash", "timeout", "out_of_memory", "lost"};
  return classes;
}

struct RetryPolicy {
  int limit = 0;                 // extra attempts after the first
  double backoff_seconds = 1.0;  // delay before the first retry
  double factor = 2.0;           // each later delay is multiplied by this
  double max_backoff_seconds = 60.0;
  // out_of_memory is not retried unless named: the same limit fails the same way.
  std::set<std::string> on{"error", "crash", "timeout", "lost"};
  // The delay before retry number `retry` (1-based).
  double delay_before(int retry) const;
};

struct StepSpec;

// A tuning step's `tune:` block (issue 7; docs/tuning-status.md). The trial is the
// step's component, or the steps of a template (`trial: TEMPLATE`); each
// trial gets the step's parameters with the tuner's suggestion merged over them.
struct TuneSpec {
  SourcePos pos;
  std::string tuner;  // a component with a KilnTunerApi table, e.g. tune.asha
  SourcePos tuner_pos;
  std::string metric;  // the objective: a metric the trial reports (the first of `objectives`)
  bool maximize = true;
  // `objectives:` (issue 23): several metrics with goals, searched for their
  // Pareto front. Empty with a single `objective:`.
  struct Objective {
    std::string metric;
    bool maximize = true;
  };
  std::vector<Objective> objectives;
  Json space = Json::object();     // the search space, handed to the tuner as written
  Json settings = Json::object();  // the algorithm's settings, verbatim
  Json early_stopping;             // null, or {rule: median, ...}
  int max_trials = 10;
  int parallel_trials = 0;  // 0: the step's parallelism, else --jobs
  int max_failed_trials = 0;
  int64_t seed = 0;
  // `trial: TEMPLATE`: a template with `steps:`, run once per trial as a
  // small DAG (e.g. train.torch, then evaluate). Empty: the component is the trial.
  std::string trial;
  SourcePos trial_pos;
  std::vector<StepSpec> trial_steps;
  // Where every field was written, by dotted path ("space.lr.low"), so that a
  // tuner's error naming a field can be reported at its file:line:col.
  std::map<std::string, SourcePos> positions;

  // What KilnTunerApi.create receives.
  Json tuner_config() const;
  // The position of the longest dotted prefix of `field` that was written.
  SourcePos position_of(const std::string& field) const;
};

// Where a step's fields that only `kiln run`'s executors read were written
// (in a template's file when the step took them from it); line 0 when left
// out. `kiln compile` notes each as ignored in a pod (docs/kubernetes.md).
struct ExecutorFieldPositions {
  SourcePos executor, image, network, mounts, user, slurm;
  SourcePos cache;  // `cache:` (argo has no step cache)
};

struct StepSpec {
  std::string name;
  SourcePos pos;
  std::string component;      // name without the version range
  std::string version_range;  // "" = any
  SourcePos component_pos;
  std::string template_name;  // informational: the template it extends
  std::map<std::string, ValueSpec> parameters;
  std::map<std::string, InputWire> inputs;
  std::vector<std::pair<std::string, SourcePos>> after;
  std::optional<ValueSpec> when;      // a condition expression (string)
  std::optional<ValueSpec> for_each;  // a list, or "{{ reference }}" to one
  std::optional<TuneSpec> tune;       // a tuning step: its units are trials
  int parallelism = 0;                // 0: as many as --jobs allows
  RetryPolicy retries;
  std::optional<double> timeout_seconds;
  bool cache = true;
  std::string executor;        // "" = the run's executor
  ContainerOptions container;  // image, network, resources
  SourcePos gpus_pos;          // where resources.gpus was written (file:0:0 when it was not)
  // `distributed: {replicas: N}`: the attempt runs as N processes of one
  // data-parallel job (docs/distributed.md); 1 = an ordinary step.
  int replicas = 1;
  SlurmOptions slurm;          // the Slurm executor's per-step options (over the run's)
  ExecutorFieldPositions written;
  bool is_finally = false;
};

struct PipelineParam {
  ParamSpec spec;
  SourcePos pos;
};

struct PipelineSpec {
  std::string file;
  std::string name, description;
  std::vector<PipelineParam> parameters;
  std::vector<StepSpec> steps;          // the DAG
  std::vector<StepSpec> finally_steps;  // exit handlers, run whatever happened
  std::string failure_policy = "stop";  // or "continue"
  SourcePos failure_policy_pos;         // where it was written (file:0:0 when left out)
  std::optional<double> timeout_seconds;

  const StepSpec* find_step(const std::string& name) const;
  const PipelineParam* find_parameter(const std::string& name) const;
};

// Parses `file` (and the template files it imports). Throws SpecError with
// every problem found: YAML syntax, unknown keys, wrong shapes, duplicates.
// A spec or imported template file may be at most this large; what its YAML
// may expand to is bounded by yaml_json.hpp's kMaxYaml* limits.
inline constexpr std::size_t kMaxSpecFileBytes = 4u << 20;
// A `for_each` may have at most this many items: a literal list longer than
// this fails validation, a reference that resolves to more fails the step
// (each item is a unit with its own record and directories).
inline constexpr std::size_t kMaxForEachItems = 10'000;
// `distributed.replicas` may be at most this (kiln::kMaxReplicas in the SDK).
inline constexpr int kMaxReplicas = 256;

PipelineSpec parse_pipeline_file(const std::string& file);
PipelineSpec parse_pipeline_text(const std::string& text, const std::string& file_name);

// "30s", "5m", "1h", "250ms", or a plain number of seconds.
std::optional<double> parse_duration(const std::string& text);

}  // namespace kiln::host

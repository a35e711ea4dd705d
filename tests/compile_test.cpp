// `kiln compile` (docs/kubernetes.md): every sample compiled for Argo
// Workflows and Kubeflow Pipelines by the real kiln binary and checked with
// the engines' own definitions (tests/conformance: Argo's JSON schema, KFP's
// pipeline_spec.proto); samples/hello's features checked field by field;
// what a target cannot express refused at file:line:col; and the compiled
// pod command run here (`kiln step --request-json`) to show the container
// contract works without a cluster.
#include <gtest/gtest.h>
#include <signal.h>
#include <kiln/host/compile.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/pod_step.hpp>
#include <kiln/host/tuning_request.hpp>
#include <kiln/host/yaml_json.hpp>
#include <yaml-cpp/yaml.h>

#include <regex>

#include "test_support.hpp"

namespace fs = std::filesystem;
using kiln::host::Json;
using kiln::test::TempDir;

namespace {

const fs::path kSource = KILN_TEST_SOURCE_DIR;
const fs::path kConformance = kSource / "tests" / "conformance";

struct Compiled {
  kiln::host::ExitStatus status;
  std::string output;            // kiln's stdout and stderr
  std::vector<Json> documents;   // the YAML documents written
  fs::path file;
};

class CompileTest : public ::testing::Test {
 protected:
  std::vector<std::pair<std::string, std::string>> env() const {
    return {{"KILN_CACHE_DIR", kiln::test::scan_cache().string()}, {"XDG_DATA_HOME", (dir / "data").string()}};
  }

  Compiled compile(const fs::path& pipeline, const std::string& target, std::vector<std::string> extra = {}) {
    Compiled c;
    c.file = dir / (pipeline.parent_path().filename().string() + "-" + pipeline.stem().string() + "." + target +
                    std::to_string(count_++) + ".yaml");
    std::vector<std::string> args{"compile", pipeline.string(), "--target", target, "-o", c.file.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto run = kiln::test::run_kiln(args, env());
    c.status = run.status;
    c.output = run.output;
    if (run.status.success())
      for (const auto& node : YAML::LoadAll(kiln::test::read_text(c.file)))
        c.documents.push_back(kiln::host::yaml_to_json(node));
    return c;
  }

  fs::path pipeline(const std::string& body) {
    const fs::path file = dir / ("p" + std::to_string(count_++)) / "pipeline.yaml";
    kiln::test::write_text(file, "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n" + body);
    return file;
  }

  // Runs a validator of tests/conformance on `files`; its output on failure.
  static kiln::host::CapturedRun validate(const std::string& validator, const std::vector<fs::path>& files) {
    std::vector<std::string> argv{"/usr/bin/python3", (kConformance / validator).string()};
    for (const auto& f : files) argv.push_back(f.string());
    return kiln::host::run_captured({argv, {}, {}, {}}, std::chrono::seconds(120));
  }

  TempDir dir;

 private:
  int count_ = 0;
};

const Json& find_named(const Json& list, const std::string& name) {
  for (const auto& item : list)
    if (item.value("name", "") == name) return item;
  ADD_FAILURE() << "no item named " << name << " in " << list.dump().substr(0, 400);
  static const Json none = Json::object();
  return none;
}

const Json& argo_template(const Json& workflow, const std::string& name) {
  return find_named(workflow["spec"]["templates"], name);
}

const Json& argo_task(const Json& workflow, const std::string& dag, const std::string& task) {
  return find_named(argo_template(workflow, dag)["dag"]["tasks"], task);
}

// The "--value REF=TEXT" of a container's args, by REF.
std::string value_argument(const Json& args, const std::string& ref) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--value" && args[i + 1].get<std::string>().rfind(ref + "=", 0) == 0)
      return args[i + 1].get<std::string>().substr(ref.size() + 1);
  return "(none)";
}

Json request_of(const Json& args) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--request-json") return Json::parse(args[i + 1].get<std::string>());
  return Json();
}

// Every pipeline of the samples: each sample directory's *.yaml of kind
// Pipeline (pipeline.yaml, and others such as commands/mixed.yaml and
// digits-tuning/pbt.yaml; not templates, not component files below them).
std::vector<fs::path> samples() {
  std::vector<fs::path> files;
  for (const auto& dir : fs::directory_iterator(kSource / "samples")) {
    if (!dir.is_directory()) continue;
    for (const auto& entry : fs::directory_iterator(dir.path()))
      if (entry.path().extension() == ".yaml" &&
          kiln::test::read_text(entry.path()).find("\nkind: Pipeline\n") != std::string::npos)
        files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

// Every sample, digits-tuning's tuning step included, compiles for both
// targets and validates against the engines' own definitions.
TEST_F(CompileTest, EverySampleCompilesForBothTargetsAndValidates) {
  std::vector<fs::path> argo, kfp;
  for (const auto& sample : samples()) {
    for (const std::string target : {"argo", "kfp"}) {
      const auto c = compile(sample, target);
      ASSERT_TRUE(c.status.success()) << sample << " for " << target << ":\n" << c.output;
      ASSERT_FALSE(c.documents.empty());
      (target == "argo" ? argo : kfp).push_back(c.file);
    }
  }
  ASSERT_GE(argo.size(), 5u);
  const auto all = samples();
  for (const char* p : {"commands/mixed.yaml", "digits-tuning/pbt.yaml", "digits-pytorch/pipeline.yaml"})
    EXPECT_NE(std::find(all.begin(), all.end(), kSource / "samples" / p), all.end()) << p;
  const auto a = validate("validate_argo.py", argo);
  EXPECT_TRUE(a.status.success()) << a.output;
  const auto k = validate("validate_kfp.py", kfp);
  EXPECT_TRUE(k.status.success()) << k.output;
}

// The validators can fail: a field Argo does not have, a KFP field of the wrong type.
TEST_F(CompileTest, TheValidatorsRefuseWhatTheEnginesWouldRefuse) {
  auto c = compile(kSource / "samples/hello/pipeline.yaml", "argo");
  ASSERT_TRUE(c.status.success()) << c.output;
  Json broken = c.documents[0];
  broken["spec"]["templates"][0]["dag"]["failFast"] = "sometimes";
  kiln::test::write_text(dir / "broken-argo.yaml", kiln::host::to_yaml_documents({broken}));
  const auto a = validate("validate_argo.py", {dir / "broken-argo.yaml"});
  EXPECT_FALSE(a.status.success());
  EXPECT_NE(a.output.find("FAIL"), std::string::npos) << a.output;

  c = compile(kSource / "samples/hello/pipeline.yaml", "kfp");
  ASSERT_TRUE(c.status.success()) << c.output;
  broken = c.documents[0];
  broken["root"]["dag"]["tasks"]["report"]["retryPolicy"] = {{"maxRetries", 2}};
  kiln::test::write_text(dir / "broken-kfp.yaml", kiln::host::to_yaml_documents({broken}));
  const auto k = validate("validate_kfp.py", {dir / "broken-kfp.yaml"});
  EXPECT_FALSE(k.status.success());
  EXPECT_NE(k.output.find("maxRetries"), std::string::npos) << k.output;
}

// samples/hello on Argo: each control-flow feature in its field.
TEST_F(CompileTest, HelloOnArgoPutsEachFeatureInItsField) {
  const auto c = compile(kSource / "samples/hello/pipeline.yaml", "argo", {"--image", "registry.example/kiln:1"});
  ASSERT_TRUE(c.status.success()) << c.output;
  EXPECT_EQ(c.output.find("note:"), std::string::npos) << c.output;  // no field a pod ignores
  const Json& w = c.documents.at(0);
  EXPECT_EQ(w["kind"], "Workflow");
  const Json& spec = w["spec"];
  EXPECT_EQ(spec["entrypoint"], "kiln-main");
  // Parameters: workflow arguments, lists as JSON text.
  EXPECT_EQ(find_named(spec["arguments"]["parameters"], "greeting")["value"], "Hello");
  EXPECT_EQ(Json::parse(find_named(spec["arguments"]["parameters"], "names")["value"].get<std::string>()),
            Json::parse(R"(["ada","grace","linus"])"));
  // options.timeout 10m → the workflow's deadline; finally → onExit.
  EXPECT_EQ(spec["activeDeadlineSeconds"], 600);
  EXPECT_EQ(spec["onExit"], "kiln-finally");
  EXPECT_FALSE(argo_template(w, "kiln-main")["dag"].contains("failFast"));  // policy stop: Argo's default

  // Retries (echo-retrying: limit 2, backoff 100ms, max 1s, on [error, crash]) and timeout 30s.
  const Json& greet = argo_template(w, "greet");
  EXPECT_EQ(greet["retryStrategy"]["limit"], "2");
  EXPECT_EQ(greet["retryStrategy"]["backoff"]["duration"], "100ms");
  EXPECT_EQ(greet["retryStrategy"]["backoff"]["cap"], "1s");
  EXPECT_EQ(greet["retryStrategy"]["backoff"]["factor"], "2");
  EXPECT_EQ(greet["retryStrategy"]["expression"], "asInt(lastRetry.exitCode) == 1 || asInt(lastRetry.exitCode) == 2");
  EXPECT_EQ(greet["activeDeadlineSeconds"], "60");  // 30 s, enforced by kiln step, + 30 s backstop
  EXPECT_EQ(request_of(greet["container"]["args"])["timeout_seconds"], 30.0);
  EXPECT_EQ(greet["container"]["image"], "registry.example/kiln:1");
  EXPECT_EQ(greet["container"]["command"], Json::array({"kiln"}));
  EXPECT_EQ(find_named(greet["outputs"]["artifacts"], "text")["path"], "/tmp/kiln/outputs/text");

  // The loop: a wrapper DAG with parallelism 2 over the names parameter.
  const Json& loop = argo_template(w, "per-name-loop");
  EXPECT_EQ(loop["parallelism"], 2);
  EXPECT_EQ(loop["dag"]["tasks"][0]["withParam"], "{{inputs.parameters.kiln-items}}");
  const Json& per_name = argo_task(w, "kiln-main", "per-name");
  EXPECT_EQ(per_name["template"], "per-name-loop");
  EXPECT_EQ(find_named(per_name["arguments"]["parameters"], "kiln-items")["value"], "{{workflow.parameters.names}}");
  EXPECT_EQ(find_named(per_name["arguments"]["artifacts"], "text")["from"], "{{tasks.greet.outputs.artifacts.text}}");
  EXPECT_EQ(per_name["depends"], "greet.Succeeded");
  EXPECT_EQ(value_argument(argo_template(w, "per-name")["container"]["args"], "item"), "{{inputs.parameters.item}}");

  // when → a condition task and Argo's when; after → depends.
  const Json& check = argo_task(w, "kiln-main", "thorough-check");
  EXPECT_EQ(check["when"], "{{tasks.thorough-check-when.outputs.parameters.result}} == true");
  EXPECT_EQ(check["depends"], "greet && thorough-check-when.Succeeded");
  const Json gate_request = request_of(argo_template(w, "thorough-check-when")["container"]["args"]);
  EXPECT_EQ(gate_request["condition"], "params.mode == 'thorough'");
  const Json& summary = argo_task(w, "kiln-main", "summary");
  EXPECT_NE(summary["depends"].get<std::string>().find("per-name.Succeeded"), std::string::npos) << summary.dump();
  EXPECT_EQ(value_argument(argo_template(w, "summary")["container"]["args"], "steps.per-name.outputs.message"),
            "{{inputs.parameters.v0}}");
  EXPECT_EQ(find_named(summary["arguments"]["parameters"], "v0")["value"],
            "{{tasks.per-name.outputs.parameters.message}}");

  // The exit handler reads the workflow's status and name.
  const Json& report = argo_task(w, "kiln-finally", "report");
  const Json report_args = argo_template(w, "report")["container"]["args"];
  const std::string status_port = value_argument(report_args, "run.status");
  ASSERT_EQ(status_port.rfind("{{inputs.parameters.", 0), 0u) << report_args.dump();
  const std::string port = status_port.substr(20, status_port.size() - 22);
  EXPECT_EQ(find_named(report["arguments"]["parameters"], port)["value"], "{{workflow.status}}");
  // kiln's own placeholders never reach Argo's {{ }} substitution.
  for (const auto& arg : report_args) EXPECT_EQ(arg.get<std::string>().find("{{ "), std::string::npos) << arg;
  EXPECT_EQ(request_of(report_args)["parameters"]["message"], "run {{ run.id }} finished: {{ run.status }}");
}

// samples/hello on Kubeflow Pipelines: the same features in KFP's fields.
TEST_F(CompileTest, HelloOnKfpPutsEachFeatureInItsField) {
  const auto c = compile(kSource / "samples/hello/pipeline.yaml", "kfp");
  ASSERT_TRUE(c.status.success()) << c.output;
  EXPECT_EQ(c.output.find("note:"), std::string::npos) << c.output;  // no field a pod ignores
  ASSERT_EQ(c.documents.size(), 2u);  // the PipelineSpec and the PlatformSpec with the deadline
  const Json& spec = c.documents[0];
  EXPECT_EQ(spec["pipelineInfo"]["name"], "hello");
  EXPECT_EQ(spec["root"]["inputDefinitions"]["parameters"]["names"]["parameterType"], "LIST");
  EXPECT_EQ(spec["root"]["inputDefinitions"]["parameters"]["pause"]["parameterType"], "NUMBER_DOUBLE");
  EXPECT_EQ(c.documents[1]["platforms"]["kubernetes"]["pipelineConfig"]["activeDeadlineSeconds"], 600);

  // finally → an exit handler DAG; the report runs after it whatever happened, reading its final status.
  const Json& root_tasks = spec["root"]["dag"]["tasks"];
  ASSERT_TRUE(root_tasks.contains("exit-handler-1"));
  const Json& report = root_tasks["report"];
  EXPECT_EQ(report["triggerPolicy"]["strategy"], "ALL_UPSTREAM_TASKS_COMPLETED");
  EXPECT_EQ(report["dependentTasks"], Json::array({"exit-handler-1"}));
  EXPECT_EQ(report["inputs"]["parameters"]["v1"]["taskFinalStatus"]["producerTask"], "exit-handler-1");
  EXPECT_EQ(spec["components"]["comp-report"]["inputDefinitions"]["parameters"]["v1"]["parameterType"],
            "TASK_FINAL_STATUS");

  const Json& tasks = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"];
  // The loop: parameterIterator over the names parameter, at most 2 at once.
  const Json& loop = tasks["per-name"];
  EXPECT_EQ(loop["componentRef"]["name"], "comp-for-loop-per-name");
  EXPECT_EQ(loop["parameterIterator"]["items"]["inputParameter"], "pipelinechannel--kiln-items");
  EXPECT_EQ(loop["inputs"]["parameters"]["pipelinechannel--kiln-items"]["componentInputParameter"],
            "pipelinechannel--names");
  EXPECT_EQ(loop["iteratorPolicy"]["parallelismLimit"], 2);
  EXPECT_EQ(spec["components"]["comp-for-loop-per-name"]["dag"]["outputs"]["parameters"]["message"]
                ["valueFromParameter"]["producerSubtask"],
            "per-name");

  // when → triggerPolicy on the condition task's result.
  const Json& check = tasks["thorough-check"];
  EXPECT_EQ(check["triggerPolicy"]["condition"],
            "inputs.parameter_values['pipelinechannel--thorough-check-when-result'] == 'true'");
  EXPECT_EQ(check["inputs"]["parameters"]["pipelinechannel--thorough-check-when-result"]["taskOutputParameter"]
                ["producerTask"],
            "thorough-check-when");

  // Retries on [error, crash] only: KFP retries any failure, so kiln step retries in the pod.
  EXPECT_FALSE(tasks["greet"].contains("retryPolicy"));
  const Json greet_args = spec["deploymentSpec"]["executors"]["exec-greet"]["container"]["args"];
  const Json retries = request_of(greet_args)["retries"];
  EXPECT_EQ(retries["limit"], 2);
  EXPECT_EQ(retries["on"], Json::array({"crash", "error"}));
  EXPECT_EQ(tasks["greet"]["cachingOptions"]["enableCache"], true);
  EXPECT_EQ(value_argument(greet_args, "params.greeting"), "{{$.inputs.parameters['v0']}}");
}

TEST_F(CompileTest, KfpUsesItsRetryPolicyWhenEveryPodFailureIsRetried) {
  const auto file = pipeline(R"(
steps:
  - name: flaky
    component: util.flaky
    retries: {limit: 3, backoff: 2s, factor: 3, max_backoff: 1m}
    cache: false
)");
  const auto c = compile(file, "kfp");
  ASSERT_TRUE(c.status.success()) << c.output;
  const Json& task = c.documents[0]["root"]["dag"]["tasks"]["flaky"];
  EXPECT_EQ(task["retryPolicy"]["maxRetryCount"], 3);
  EXPECT_EQ(task["retryPolicy"]["backoffDuration"], "2.000s");
  EXPECT_EQ(task["retryPolicy"]["backoffFactor"], 3.0);
  EXPECT_EQ(task["retryPolicy"]["backoffMaxDuration"], "60.000s");
  EXPECT_EQ(task["cachingOptions"]["enableCache"], false);
  const auto a = compile(file, "argo");
  ASSERT_TRUE(a.status.success()) << a.output;
  EXPECT_EQ(argo_template(a.documents[0], "flaky")["retryStrategy"]["expression"],
            "asInt(lastRetry.exitCode) == 1 || asInt(lastRetry.exitCode) == 2 || asInt(lastRetry.exitCode) == 3 || "
            "lastRetry.status == \"Error\"");
}

TEST_F(CompileTest, ResourcesBecomeRequestsAndLimits) {
  const auto file = pipeline(R"(
steps:
  - name: big
    component: util.noop
    resources: {cpus: 1.5, memory: 2Gi, gpus: 1}
)");
  const auto a = compile(file, "argo");
  ASSERT_TRUE(a.status.success()) << a.output;
  const Json& r = argo_template(a.documents[0], "big")["container"]["resources"];
  EXPECT_EQ(r["requests"]["cpu"], "1500m");
  EXPECT_EQ(r["limits"]["memory"], std::to_string(2LL << 30));
  EXPECT_EQ(r["limits"]["nvidia.com/gpu"], "1");
  const auto k = compile(file, "kfp");
  ASSERT_TRUE(k.status.success()) << k.output;
  const Json& kr = k.documents[0]["deploymentSpec"]["executors"]["exec-big"]["container"]["resources"];
  EXPECT_EQ(kr["resourceCpuLimit"], "1500m");
  EXPECT_EQ(kr["accelerator"]["resourceCount"], "1");
  const auto v = validate("validate_kfp.py", {k.file});
  EXPECT_TRUE(v.status.success()) << v.output;
}

// The fields only kiln run's executors read (executor, image, network, user,
// mounts, slurm; cache on argo): one note each on stderr at the field's
// file:line:col (a template's field where the template wrote it), naming the
// step; the pipeline still compiles, exit 0 (samples/hello, which has none of
// them, compiles without a note: HelloOn*PutsEachFeatureInItsField).
TEST_F(CompileTest, FieldsAPodIgnoresAreNotedAtTheirPosition) {
  const auto file = pipeline(R"(
templates:
  base:
    component: util.noop
    network: host
steps:
  - name: train
    component: util.noop
    executor: slurm
    image: "oci:/images/kiln:1"
    user: "1000"
    mounts: [data]
    slurm: {partition: gpu, qos: high}
    cache: true
  - name: plain
    template: base
    cache: false
)");
  const std::string f = file.string();
  const auto notes = [](const std::string& output) {
    size_t n = 0;
    for (size_t at = 0; (at = output.find(": note: ", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  for (const std::string target : {"argo", "kfp"}) {
    const auto c = compile(file, target);
    ASSERT_EQ(c.status.code, 0) << c.output;
    ASSERT_EQ(c.documents.size(), 1u) << c.output;
    const std::string pods = " do not apply to " + target + " pods";
    const std::string pod = " does not apply to " + target + " pods";
    for (const std::string& expected : {
             f + ":12:15: note: step 'train': executor 'slurm'" + pod + " (every step runs as a pod); ignored",
             f + ":13:12: note: step 'train': image 'oci:/images/kiln:1'" + pod,
             f + ":14:11: note: step 'train': user" + pod,
             f + ":15:13: note: step 'train': mounts" + pods,
             f + ":16:12: note: step 'train': slurm options" + pods + "; ignored",
             f + ":8:14: note: step 'plain': network 'host'" + pod,
         })
      EXPECT_NE(c.output.find(expected), std::string::npos) << target << ": " << expected << "\n" << c.output;
    // Argo has no step cache: `cache: true` is ignored there, `cache: false` is what happens anyway.
    const std::string cache = f + ":17:12: note: step 'train': cache: true does not apply to argo pods";
    EXPECT_EQ(c.output.find(cache) != std::string::npos, target == "argo") << c.output;
    EXPECT_EQ(notes(c.output), target == "argo" ? 7u : 6u) << c.output;
  }
  // A sample that writes mounts and an executor for kiln run: noted, compiled.
  const fs::path digits = kSource / "samples/digits/pipeline.yaml";
  const auto d = compile(digits, "argo");
  ASSERT_EQ(d.status.code, 0) << d.output;
  EXPECT_TRUE(std::regex_search(d.output, std::regex(digits.string() + ":[0-9]+:[0-9]+: note: step '[a-z_]+': "
                                                                        "mounts do not apply to argo pods")))
      << d.output;
  EXPECT_TRUE(std::regex_search(d.output, std::regex(digits.string() + ":[0-9]+:[0-9]+: note: step '[a-z_]+': "
                                                                        "executor 'process' does not apply")))
      << d.output;
}

// What a target cannot express: an error at file:line:col naming the feature
// and the target, exit 1, no file written.
TEST_F(CompileTest, WhatATargetCannotExpressIsAPositionedError) {
  const auto file = pipeline(R"(
steps:
  - name: a
    component: util.echo
    retries: {limit: 1, factor: 1.5}
finally:
  - name: b
    component: util.echo
    parameters: {message: "failed: {{ run.failed_steps }}"}
options:
  failure_policy: continue
)");
  const std::string f = file.string();
  const auto at = [&](const std::string& output, int line, const std::string& message) {
    return std::regex_search(output, std::regex(f + ":" + std::to_string(line) + ":[0-9]+: " + message));
  };
  auto k = compile(file, "kfp");
  EXPECT_EQ(k.status.code, 1);
  EXPECT_FALSE(fs::exists(k.file));
  EXPECT_NE(k.output.find(f + ":14:19: options.failure_policy: 'continue' cannot be expressed in kfp"),
            std::string::npos)
      << k.output;
  EXPECT_TRUE(at(k.output, 12, "'run.failed_steps' cannot be expressed in kfp")) << k.output;
  EXPECT_NE(k.output.find("2 problems in " + f), std::string::npos) << k.output;

  auto a = compile(file, "argo");
  EXPECT_EQ(a.status.code, 1);
  EXPECT_TRUE(at(a.output, 6, "retries.factor: argo multiplies the backoff by a whole number")) << a.output;
  EXPECT_NE(a.output.find("1 problem in " + f), std::string::npos) << a.output;
}

// A tuning step compiles to one task running its search (below); what its
// pod's engine cannot do, and a data-parallel step, are refused where written.
TEST_F(CompileTest, WhatATuningPodCannotRunAndDataParallelStepsAreRefusedAtTheirPosition) {
  const auto gpus = pipeline(R"(
steps:
  - name: t
    component: util.objective
    resources: {gpus: 1}
    tune:
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 1.0, grid_points: 2}}
)");
  const auto g = compile(gpus, "kfp");
  EXPECT_EQ(g.status.code, 1);
  EXPECT_NE(g.output.find(gpus.string() + ":8:23: resources.gpus: a tuning step's trials cannot be compiled to kfp"),
            std::string::npos)
      << g.output;
  // A request holds at most kMaxTuningObjectives objectives: compile refuses more where written.
  std::string many;
  for (size_t i = 0; i <= kiln::host::kMaxTuningObjectives; ++i)
    many += std::string(i ? ", " : "") + "{metric: m" + std::to_string(i) + "}";
  const auto objectives = pipeline(R"(
steps:
  - name: t
    component: util.objective
    tune:
      tuner: tune.random
      objectives: [)" + many + R"(]
      space: {x: {type: uniform, low: 0.0, high: 1.0}}
)");
  const auto o = compile(objectives, "argo");
  EXPECT_EQ(o.status.code, 1);
  EXPECT_NE(o.output.find(objectives.string() + ":10:19: tune.objectives: a tuning step with more than 16 objectives "
                                                "cannot be compiled to argo"),
            std::string::npos)
      << o.output;
  const auto ranks = pipeline(R"(
templates:
  trial:
    steps:
      - name: score
        component: util.objective
        distributed: {replicas: 2}
steps:
  - name: t
    tune:
      trial: trial
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 1.0, grid_points: 2}}
)");
  const auto r = compile(ranks, "argo");
  EXPECT_EQ(r.status.code, 1);
  EXPECT_NE(r.output.find(ranks.string() + ":8:9: distributed.replicas: a data-parallel trial step cannot be compiled "
                                           "to argo"),
            std::string::npos)
      << r.output;
  const auto file = pipeline(R"(
steps:
  - name: wide
    component: util.noop
    distributed: {replicas: 2}
)");
  const auto d = compile(file, "argo");
  EXPECT_EQ(d.status.code, 1);
  EXPECT_NE(d.output.find(file.string() + ":6:5: distributed.replicas: a data-parallel step cannot be compiled"),
            std::string::npos)
      << d.output;
}

TEST_F(CompileTest, StepsWhoseTaskNamesCollideAreRefused) {
  const auto file = pipeline(R"(
steps:
  - name: prep_data
    component: util.noop
  - name: prep-data
    component: util.noop
)");
  const auto c = compile(file, "argo");
  EXPECT_EQ(c.status.code, 1);
  EXPECT_NE(c.output.find("both become the argo task 'prep-data'"), std::string::npos) << c.output;
}

// The plan's errors are kiln run's: the same planner, the same messages.
TEST_F(CompileTest, WiringErrorsAreThoseOfKilnRun) {
  const auto file = pipeline(R"(
steps:
  - name: a
    component: util.echo
    inputs: {text: nowhere.outputs.text}
)");
  const auto c = compile(file, "argo");
  const auto v = kiln::test::run_kiln({"validate", file.string()}, env());
  EXPECT_EQ(c.status.code, 1);
  ASSERT_FALSE(v.status.success());
  const std::string first_line = v.output.substr(0, v.output.find('\n'));
  EXPECT_NE(c.output.find(first_line), std::string::npos) << c.output << "\nvs\n" << v.output;
}

TEST_F(CompileTest, ParametersGivenOnTheCommandLineBecomeTheDefaults) {
  const auto c = compile(kSource / "samples/hello/pipeline.yaml", "kfp", {"-p", "mode=thorough", "-p", "pause=1.5"});
  ASSERT_TRUE(c.status.success()) << c.output;
  const Json& p = c.documents[0]["root"]["inputDefinitions"]["parameters"];
  EXPECT_EQ(p["mode"]["defaultValue"], "thorough");
  EXPECT_EQ(p["pause"]["defaultValue"], 1.5);
  const auto bad = compile(kSource / "samples/hello/pipeline.yaml", "kfp", {"-p", "pause=99"});
  EXPECT_EQ(bad.status.code, 1);
  EXPECT_NE(bad.output.find("pause"), std::string::npos) << bad.output;
}

// ---- The pod side: the compiled command, run here -------------------------

namespace {

// A compiled Argo container's args with the engine's part done here: each
// {{inputs.parameters.X}} replaced by `inputs[X]`, paths under `root`.
std::vector<std::string> local_pod_args(const Json& args, const std::map<std::string, std::string>& inputs,
                                        const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    std::string text = a.get<std::string>();
    for (const auto& [name, value] : inputs) {
      const std::string placeholder = "{{inputs.parameters." + name + "}}";
      for (size_t at; (at = text.find(placeholder)) != std::string::npos;) text.replace(at, placeholder.size(), value);
    }
    for (size_t at; (at = text.find("/tmp/kiln/")) != std::string::npos;)
      text.replace(at, 10, (root / "kiln").string() + "/");
    out.push_back(text);
  }
  return out;
}

}  // namespace

// greet, then one item of per-name reading greet's artifact, then the
// summary's condition: the container contract without a cluster.
TEST_F(CompileTest, TheCompiledPodCommandRunsHere) {
  const auto c = compile(kSource / "samples/hello/pipeline.yaml", "argo");
  ASSERT_TRUE(c.status.success()) << c.output;
  const Json& w = c.documents[0];
  const fs::path pod = dir / "pod";

  auto args = local_pod_args(argo_template(w, "greet")["container"]["args"], {{"v0", "Bonjour"}}, pod);
  auto run = kiln::test::run_kiln(args, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(Json::parse(kiln::test::read_text(pod / "kiln/parameters/message")), "Bonjour, everyone");
  EXPECT_EQ(kiln::test::read_text(pod / "kiln/outputs/text/message.txt"), "Bonjour, everyone");
  const std::string metadata = kiln::test::read_text(pod / "kiln/metadata/text.json");
  EXPECT_EQ(Json::parse(metadata)["length"], 17);

  // per-name's item "ada", with greet's artifact and metadata as Argo hands them over.
  const fs::path item = dir / "item";
  fs::create_directories(item / "kiln/inputs");
  fs::copy(pod / "kiln/outputs/text", item / "kiln/inputs/text", fs::copy_options::recursive);
  args = local_pod_args(argo_template(w, "per-name")["container"]["args"],
                        {{"v0", "Bonjour"}, {"item", "ada"}, {"kiln-metadata-text", metadata}}, item);
  run = kiln::test::run_kiln(args, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(kiln::test::read_text(item / "kiln/outputs/text/message.txt"), "Bonjour, everyone\nBonjour, ada!");

  // The summary's condition reads greet's message (JSON text, as the pod wrote it) and the mode.
  const fs::path gate = dir / "gate";
  const Json gate_args = argo_template(w, "summary-when")["container"]["args"];
  std::map<std::string, std::string> values;
  for (size_t i = 0; i + 1 < gate_args.size(); ++i)
    if (gate_args[i] == "--value") {
      const std::string v = gate_args[i + 1];
      const std::string port = v.substr(v.find("{{inputs.parameters.") + 20, 2);
      values[port] = v.rfind("params.mode=", 0) == 0 ? "quick" : kiln::test::read_text(pod / "kiln/parameters/message");
    }
  run = kiln::test::run_kiln(local_pod_args(gate_args, values, gate), env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(kiln::test::read_text(gate / "kiln/parameters/result"), "true");
}

namespace {

// samples/commands' three compiled Argo tasks (a shell command, a Python
// script, a plugin) run in turn by `kiln` under `root`, as Argo would run
// their pods: each leaves the outputs and output parameters the next reads.
void check_commands_pods(const Json& workflow, const fs::path& kiln,
                         const std::vector<std::pair<std::string, std::string>>& env, const fs::path& root) {
  const auto run_pod = [&](const std::string& task, const std::map<std::string, std::string>& inputs,
                           const fs::path& pod) {
    std::vector<std::string> argv{kiln.string()};
    for (auto& arg : local_pod_args(argo_template(workflow, task)["container"]["args"], inputs, pod))
      argv.push_back(std::move(arg));
    return kiln::host::run_captured({argv, {}, {}, env}, std::chrono::seconds(60));
  };
  const fs::path greet = root / "greet";
  auto run = run_pod("greet", {{"v0", "Bonjour"}}, greet);
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(kiln::test::read_text(greet / "kiln/parameters/words"), "4");
  EXPECT_EQ(kiln::test::read_text(greet / "kiln/outputs/greeting/greeting.txt"), "Hello, Bonjour!\nHello, Bonjour!\n");
  EXPECT_NE(run.output.find("[metric] greetings=2"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("[progress] 100%"), std::string::npos) << run.output;

  // count: greet's artifact as Argo hands it over, the pipeline's scale 3.
  const fs::path count = root / "count";
  fs::create_directories(count / "kiln/inputs");
  fs::copy(greet / "kiln/outputs/greeting", count / "kiln/inputs/text", fs::copy_options::recursive);
  run = run_pod("count", {{"v0", "3"}, {"kiln-metadata-text", kiln::test::read_text(greet / "kiln/metadata/greeting.json")}},
                count);
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(kiln::test::read_text(count / "kiln/parameters/words"), "12");
  EXPECT_EQ(Json::parse(kiln::test::read_text(count / "kiln/outputs/counts/counts.json")),
            (Json{{"lines", 2}, {"words", 4}}));
  EXPECT_NE(run.output.find("[metric] words_so_far=4 (step 1)"), std::string::npos) << run.output;
  // The script's stdout is the pod's log (here interleaved with kiln's stderr).
  EXPECT_NE(run.output.find("counted"), std::string::npos) << run.output;

  // tell, the built-in plugin, reads count's output parameter as the pod wrote it.
  const fs::path tell = root / "tell";
  run = run_pod("tell", {{"v0", kiln::test::read_text(count / "kiln/parameters/words")}}, tell);
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(Json::parse(kiln::test::read_text(tell / "kiln/parameters/message")), "12 words");
}

}  // namespace

// samples/commands in pods: its component files are found by name on the
// image's plugin path, where `kiln image build` puts them with the files
// they name; here a directory stands for the image's
// /opt/kiln/lib/kiln/plugins (KILN_PLUGIN_PATH) and the build's kiln runs
// each task's compiled command.
TEST_F(CompileTest, TheCompiledPodsOfComponentFilesRunHere) {
  if (!fs::exists("/usr/bin/python3")) KILN_TEST_SKIP("no /usr/bin/python3 (Debian's python3)");
  const fs::path sample = kSource / "samples/commands";
  const auto c = compile(sample / "mixed.yaml", "argo");
  ASSERT_TRUE(c.status.success()) << c.output;
  const Json& w = c.documents[0];
  const Json greet_args = argo_template(w, "greet")["container"]["args"];
  EXPECT_EQ(request_of(greet_args)["component"], "sample.greet-sh");
  EXPECT_EQ(request_of(greet_args)["version"], "=1.0.0");
  const auto k = compile(sample / "mixed.yaml", "kfp");
  ASSERT_TRUE(k.status.success()) << k.output;
  const Json kfp_count = request_of(k.documents[0]["deploymentSpec"]["executors"]["exec-count"]["container"]["args"]);
  EXPECT_EQ(kfp_count["component"], "sample.count-words") << kfp_count.dump();

  const fs::path plugins = dir / "image" / "plugins";
  fs::create_directories(plugins);
  for (const char* f : {"greet.yaml", "count.yaml", "count.py"})
    fs::copy_file(sample / "components" / f, plugins / f);
  auto environment = env();
  environment.emplace_back("KILN_PLUGIN_PATH", plugins.string());
  check_commands_pods(w, kiln::test::kiln_exe(), environment, dir / "pods");

  // An image without the component file: a clear error naming what is missing.
  environment.back().second = (dir / "empty").string();
  fs::create_directories(dir / "empty");
  const auto run = kiln::test::run_kiln(local_pod_args(greet_args, {{"v0", "Bonjour"}}, dir / "nowhere"), environment);
  EXPECT_EQ(run.status.code, kiln::host::kPodExitUsage) << run.output;
  EXPECT_NE(run.output.find("the image has no component sample.greet-sh@=1.0.0 on its plugin path"), std::string::npos)
      << run.output;
}

// The same with the image itself: `kiln image build` for samples/commands,
// its root filesystem unpacked (umoci), and the image's own kiln running each
// compiled command with nothing but what the image holds beside it (its
// plugin directory: the component files, count.py, the util plugin).
TEST_F(CompileTest, TheImageKilnBuildsRunsItsCompiledComponentFilePods) {
  const auto umoci = kiln::host::find_in_path("umoci");
  if (!umoci) KILN_TEST_SKIP("umoci is not installed (apt-get install umoci)");
  if (!fs::exists("/usr/bin/python3")) KILN_TEST_SKIP("no /usr/bin/python3 (Debian's python3)");
  const fs::path pipeline = kSource / "samples/commands/mixed.yaml";
  const auto c = compile(pipeline, "argo");
  ASSERT_TRUE(c.status.success()) << c.output;
  const std::string layout = (dir / "layout").string();
  const auto built = kiln::test::run_kiln({"image", "build", pipeline.string(), "-o", "oci:" + layout + ":v1"}, env(),
                                          std::chrono::minutes(5));
  ASSERT_TRUE(built.status.success()) << built.output;
  const fs::path rootfs = dir / "rootfs";
  const auto unpacked = kiln::host::run_captured(
      {{umoci->string(), "raw", "unpack", "--image", layout + ":v1", rootfs.string()}, {}, {}, {}}, std::chrono::minutes(2));
  ASSERT_TRUE(unpacked.status.success()) << unpacked.output;
  const fs::path plugins = "/opt/kiln/lib/kiln/plugins", components = kSource / "samples/commands/components";
  for (const char* f : {"greet.yaml", "count.yaml"}) {
    const fs::path place = kiln::host::component_place_in(plugins, components / f);
    EXPECT_TRUE(fs::exists(rootfs / place.relative_path())) << place;
    if (std::string(f) == "count.yaml") {
      EXPECT_TRUE(fs::exists(rootfs / place.parent_path().relative_path() / "count.py"));
    }
  }
  auto environment = env();
  environment.emplace_back("KILN_PLUGIN_PATH", "");  // the image's kiln finds its lib/kiln/plugins beside it
  check_commands_pods(c.documents[0], rootfs / "opt/kiln/bin/kiln", environment, dir / "pods");
}

// Two folders' component files of one file name (and the scripts beside
// them) each get a folder of their own in an image's plugin directory, one
// that the plugin scan reads; a library goes in by its file name.
TEST(ComponentPlace, ComponentFilesOfOneNameFromTwoFoldersDoNotMeet) {
  using kiln::host::component_place_in;
  TempDir dir;  // the host side: two folders, each with a component.yaml
  const fs::path plugins = dir / "image" / "plugins", library = dir / "lib" / "kiln_util.so";
  const fs::path first = dir / "a" / "component.yaml", second = dir / "b" / "component.yaml";
  EXPECT_EQ(component_place_in(plugins, library), plugins / "kiln_util.so");
  const fs::path a = component_place_in(plugins, first);
  const fs::path b = component_place_in(plugins, second);
  EXPECT_NE(a.parent_path(), b.parent_path());
  EXPECT_EQ(a.filename(), "component.yaml");
  EXPECT_EQ(a.parent_path().parent_path(), plugins);
  EXPECT_EQ(a, component_place_in(plugins, dir / "b" / ".." / "a" / "component.yaml"));
  for (const auto& place : {a, b}) kiln::test::write_text(place, "kind: Component\n");
  EXPECT_EQ(kiln::host::find_component_files({plugins}).size(), 2u);
}

namespace {

// Where a pod's input artifact comes from: the producer's pod directory and output name.
struct ArtifactFrom {
  fs::path pod;
  std::string output;
};

// Runs the compiled Argo task `task` under `root` as Argo would run its pod:
// each --value REF from `values`, each input artifact copied from its
// producer's pod with the metadata it wrote. Returns kiln step's run.
kiln::host::CapturedRun run_argo_pod(const Json& workflow, const std::string& task,
                                     const std::map<std::string, std::string>& values,
                                     const std::map<std::string, ArtifactFrom>& inputs, const fs::path& root,
                                     const std::vector<std::pair<std::string, std::string>>& env) {
  const Json& args = argo_template(workflow, task)["container"]["args"];
  std::map<std::string, std::string> parameters;  // Argo's inputs.parameters of the template
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != "--value") continue;
    const std::string v = args[i + 1];
    const std::string ref = v.substr(0, v.find('=')), marker = "{{inputs.parameters.";
    const auto at = v.find(marker);
    if (at != std::string::npos && values.count(ref))
      parameters[v.substr(at + marker.size(), v.find("}}", at) - at - marker.size())] = values.at(ref);
  }
  for (const auto& [name, from] : inputs) {
    fs::create_directories(root / "kiln/inputs");
    fs::copy(from.pod / "kiln/outputs" / from.output, root / "kiln/inputs" / name, fs::copy_options::recursive);
    parameters["kiln-metadata-" + name] = kiln::test::read_text(from.pod / "kiln/metadata" / (from.output + ".json"));
  }
  return kiln::test::run_kiln(local_pod_args(args, parameters, root), env, std::chrono::minutes(2));
}

}  // namespace

namespace {

// A run's tuning step as `kiln run` left it: its outputs and trials table.
struct TuningOutcome {
  Json outputs, trials;
};

// The trials table without what depends on the clock.
Json without_durations(Json table) {
  for (auto& row : table["trials"]) row.erase("duration_seconds");
  return table;
}

}  // namespace

// samples/digits-pytorch's five tasks in turn: kiln's data plugins, the plain
// PyTorch script (a component file, through kiln_report) and the built-in
// evaluate, each from its compiled Argo command, artifacts handed on as Argo
// would. The pods score the same test accuracy as `kiln run`.
TEST_F(CompileTest, TheCompiledDigitsPytorchPodsTrainAndScoreAsKilnRunDoes) {
  constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-torch
  if (!kiln::host::run_with_result_channel({kPython, "-c", "import torch"}, std::chrono::minutes(1)).status.success())
    KILN_TEST_SKIP("no PyTorch for " << kPython << " (apt-get install python3-torch)");
  const fs::path sample = kSource / "samples/digits-pytorch";
  const auto c = compile(sample / "pipeline.yaml", "argo", {"--pipeline-dir", sample.string()});
  ASSERT_TRUE(c.status.success()) << c.output;
  const Json& w = c.documents[0];
  const fs::path plugins = dir / "image" / "plugins";  // the image's /opt/kiln/lib/kiln/plugins
  fs::create_directories(plugins);
  for (const char* f : {"train.yaml", "train.py"}) fs::copy_file(sample / "components" / f, plugins / f);
  auto environment = env();
  environment.emplace_back("KILN_PLUGIN_PATH", plugins.string());
  const std::map<std::string, std::string> values{
      {"params.epochs", "5"}, {"params.hidden", "[128, 64]"}, {"params.lr", "0.001"}, {"params.seed", "0"}};
  const auto pod = [&](const std::string& task, const std::map<std::string, ArtifactFrom>& inputs) {
    const fs::path root = dir / "pods" / task;
    const auto run = run_argo_pod(w, task, values, inputs, root, environment);
    EXPECT_TRUE(run.status.success()) << task << ":\n" << run.output;
    return std::make_pair(root, run.output);
  };
  const auto [load, load_log] = pod("load", {});
  const auto [split, split_log] = pod("split", {{"data", {load, "data"}}});
  const auto [transform, transform_log] =
      pod("transform", {{"train", {split, "train"}}, {"validation", {split, "validation"}}, {"test", {split, "test"}}});
  const auto [train, train_log] = pod("train", {{"train", {transform, "train"}},
                                                {"validation", {transform, "validation"}},
                                                {"transform", {transform, "transform"}}});
  EXPECT_NE(train_log.find("[metric] train_loss="), std::string::npos) << train_log;
  for (const char* file : {"model.json", "weights.safetensors", "model.pt"})
    EXPECT_TRUE(fs::exists(train / "kiln/outputs/model" / file)) << file;
  EXPECT_GT(Json::parse(kiln::test::read_text(train / "kiln/parameters/val_accuracy")).get<double>(), 0.85);
  const auto [evaluate, evaluate_log] = pod("evaluate", {{"model", {train, "model"}}, {"test", {transform, "test"}}});
  ASSERT_TRUE(fs::exists(evaluate / "kiln/parameters/accuracy")) << evaluate_log;
  EXPECT_EQ(kiln::test::read_text(evaluate / "kiln/parameters/passed"), "true");
  const double accuracy = Json::parse(kiln::test::read_text(evaluate / "kiln/parameters/accuracy"));

  // The same pipeline under kiln run (process executor): the same model, the same score.
  const auto local = kiln::test::run_kiln({"run", (sample / "pipeline.yaml").string(), "--workdir",
                                           (dir / "ws").string(), "--param", "epochs=5", "--param",
                                           "model_repo=" + (dir / "models").string(), "--json"},
                                          env(), std::chrono::minutes(3));
  ASSERT_TRUE(local.status.success()) << local.output;
  // run.json, not the --json summary in the captured output (stderr may land inside it).
  fs::path run_dir;
  for (const auto& entry : fs::directory_iterator(dir / "ws" / "runs")) run_dir = entry.path();
  const Json summary = Json::parse(kiln::test::read_text(run_dir / "run.json"));
  EXPECT_NEAR(summary["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), accuracy, 1e-9)
      << summary["steps"]["evaluate"].dump(2);
}

// A tuning step is one pod that runs its whole search with kiln's engine:
// its compiled command, run here over greet's artifact and message as Argo
// hands them over, writes the best_* parameters, the trials table and the
// best trial's artifact, the same as `kiln run` of the pipeline gives.
TEST_F(CompileTest, TheCompiledTuningPodRunsItsSearchAsKilnRunDoes) {
  const auto file = pipeline(R"(
parameters:
  who: {type: string, default: ada}
  y: {type: int, default: 3}
templates:
  trial:
    steps:
      - name: score
        component: util.objective
        parameters: {epochs: 2}
      - name: note
        component: util.echo
        after: [score]
        parameters: {message: "tried by {{ steps.greet.outputs.message }}"}
steps:
  - name: greet
    component: util.echo
    parameters: {message: "{{ params.who }}"}
  - name: tune
    inputs: {text: greet.outputs.text}
    parameters: {y: "{{ params.y }}"}
    tune:
      trial: trial
      tuner: tune.random
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 1.0}}
      max_trials: 4
      parallel_trials: 2
      seed: 3
  - name: report
    component: util.echo
    parameters: {message: "best x: {{ steps.tune.outputs.best_x }}"}
)");
  // kiln run: the reference.
  auto env_run = env();
  const auto ran = kiln::test::run_kiln({"run", file.string(), "--json", "--workdir", (dir / "ws").string()}, env_run);
  ASSERT_TRUE(ran.status.success()) << ran.output;
  fs::path run_dir;  // the one run, not the --json summary in the captured output (stderr may land inside it)
  for (const auto& entry : fs::directory_iterator(dir / "ws" / "runs")) run_dir = entry.path();
  const Json tune = Json::parse(kiln::test::read_text(run_dir / "run.json"))["steps"]["tune"];
  fs::path trials = tune["trials"].get<std::string>();  // its trials.json
  if (trials.is_relative()) trials = run_dir / trials;
  const TuningOutcome expected{tune["outputs"], Json::parse(kiln::test::read_text(trials))};
  ASSERT_EQ(expected.trials["trials"].size(), 4u) << expected.trials.dump();

  const auto c = compile(file, "argo");
  ASSERT_TRUE(c.status.success()) << c.output;
  const Json& w = c.documents[0];
  // greet's pod, then tune's with greet's artifact, metadata and message.
  const fs::path greet = dir / "greet";
  auto run = kiln::test::run_kiln(local_pod_args(argo_template(w, "greet")["container"]["args"], {{"v0", "ada"}}, greet),
                                  env());
  ASSERT_TRUE(run.status.success()) << run.output;
  const fs::path pod = dir / "tune";
  fs::create_directories(pod / "kiln/inputs");
  fs::copy(greet / "kiln/outputs/text", pod / "kiln/inputs/text", fs::copy_options::recursive);
  const Json args = argo_template(w, "tune")["container"]["args"];
  std::map<std::string, std::string> inputs{{"kiln-metadata-text", kiln::test::read_text(greet / "kiln/metadata/text.json")}};
  const std::map<std::string, std::string> values{
      {"params.y", "3"}, {"steps.greet.outputs.message", kiln::test::read_text(greet / "kiln/parameters/message")}};
  for (const auto& [ref, text] : values) {
    const std::string place = value_argument(args, ref);
    ASSERT_EQ(place.rfind("{{inputs.parameters.", 0), 0u) << ref << " in " << args.dump();
    inputs[place.substr(20, place.size() - 22)] = text;
  }
  run = kiln::test::run_kiln(local_pod_args(args, inputs, pod), env());
  ASSERT_TRUE(run.status.success()) << run.output;

  for (const std::string name : {"best_x", "best_parameters", "best_value", "best_trial"})
    EXPECT_EQ(Json::parse(kiln::test::read_text(pod / "kiln/parameters" / name)), expected.outputs[name]) << name;
  EXPECT_EQ(without_durations(Json::parse(kiln::test::read_text(pod / "kiln/outputs/trials/trials.json"))),
            without_durations(expected.trials));
  EXPECT_EQ(Json::parse(kiln::test::read_text(pod / "kiln/metadata/trials.json"))["trials"], 4);
  EXPECT_EQ(kiln::test::read_text(pod / "kiln/outputs/text/message.txt"), "ada\ntried by ada");
  EXPECT_TRUE(fs::exists(pod / "kiln/metadata/text.json"));
  // The trials ran in the pod, two at once (tune.parallel_trials).
  EXPECT_NE(run.output.find("4 trials at most, 2 at once"), std::string::npos) << run.output;
}

// A multi-objective tuning step's pod (`tune.objectives`) runs the same
// search as `kiln run`: the same trials table with its Pareto marks, the same
// pareto_front and best_* (the front's trial best on the first objective).
// Both targets declare pareto_front and validate.
TEST_F(CompileTest, TheCompiledMultiObjectiveTuningPodGivesKilnRunsParetoFront) {
  const auto file = pipeline(R"(
steps:
  - name: tune
    component: util.objective
    parameters: {epochs: 1}
    tune:
      tuner: tune.random
      objectives: [{metric: loss, goal: minimize}, {metric: cost, goal: minimize}]
      space:
        x: {type: uniform, low: -1.0, high: 1.0}
        y: {type: int, low: -3, high: 5}
      max_trials: 10
      parallel_trials: 2
      seed: 3
)");
  const auto ran = kiln::test::run_kiln({"run", file.string(), "--json", "--workdir", (dir / "ws").string()}, env());
  ASSERT_TRUE(ran.status.success()) << ran.output;
  fs::path run_dir;
  for (const auto& entry : fs::directory_iterator(dir / "ws" / "runs")) run_dir = entry.path();
  const Json tune = Json::parse(kiln::test::read_text(run_dir / "run.json"))["steps"]["tune"];
  fs::path trials = tune["trials"].get<std::string>();
  if (trials.is_relative()) trials = run_dir / trials;
  const TuningOutcome expected{tune["outputs"], Json::parse(kiln::test::read_text(trials))};
  ASSERT_EQ(expected.trials["trials"].size(), 10u) << expected.trials.dump();
  ASSERT_EQ(expected.trials["objectives"].size(), 2u) << expected.trials.dump();
  size_t marked = 0;
  for (const Json& row : expected.trials["trials"]) marked += row.at("pareto").get<bool>() ? 1 : 0;
  ASSERT_GE(marked, 2u) << expected.trials.dump();  // the objectives conflict: a front, not one best
  ASSERT_EQ(expected.outputs["pareto_front"].size(), marked) << expected.outputs.dump();

  const auto k = compile(file, "kfp");
  ASSERT_TRUE(k.status.success()) << k.output;
  const auto c = compile(file, "argo");
  ASSERT_TRUE(c.status.success()) << c.output;
  const auto a = validate("validate_argo.py", {c.file});
  EXPECT_TRUE(a.status.success()) << a.output;
  const auto v = validate("validate_kfp.py", {k.file});
  EXPECT_TRUE(v.status.success()) << v.output;
  const Json outputs = argo_template(c.documents[0], "tune")["outputs"]["parameters"];
  EXPECT_EQ(find_named(outputs, "pareto_front").value("valueFrom", Json::object()).value("path", ""),
            "/tmp/kiln/parameters/pareto_front")
      << outputs.dump();

  const fs::path pod = dir / "tune";
  const auto run = kiln::test::run_kiln(local_pod_args(argo_template(c.documents[0], "tune")["container"]["args"], {}, pod),
                                        env(), std::chrono::minutes(2));
  ASSERT_TRUE(run.status.success()) << run.output;
  for (const std::string name : {"pareto_front", "best_x", "best_y", "best_parameters", "best_value", "best_trial"})
    EXPECT_EQ(Json::parse(kiln::test::read_text(pod / "kiln/parameters" / name)), expected.outputs[name]) << name;
  EXPECT_EQ(without_durations(Json::parse(kiln::test::read_text(pod / "kiln/outputs/trials/trials.json"))),
            without_durations(expected.trials));
}

namespace {

std::vector<std::string> pod_command(const Json& request, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"step", "--request-json", kiln::host::pod_request_argument(request)};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

Json step_request(const std::string& component, const Json& parameters) {
  return Json{{"kiln_pod", 1},    {"pipeline", "t"},          {"step", "s"},
              {"component", component}, {"parameters", parameters}, {"output_parameters", Json::array()}};
}

}  // namespace

// The step's timeout is kiln step's: the attempt is stopped, exit 3 (Argo's
// retry expressions and logs tell a timeout by it).
TEST_F(CompileTest, APodStepPastItsTimeoutIsStoppedWithStatus3) {
  Json request = step_request("util.sleep", {{"seconds", 30.0}});
  request["timeout_seconds"] = 0.3;
  const auto run = kiln::test::run_kiln(pod_command(request, {}), env());
  EXPECT_EQ(run.status.code, kiln::host::kPodExitTimeout) << run.output;
  EXPECT_NE(run.output.find("timed out"), std::string::npos) << run.output;
}

// A component file's command past the pod step's timeout: kiln step passes
// SIGTERM on to the command's process group (its handler runs), kills what
// is left of it (a child that ignores SIGTERM), and exits 3.
TEST_F(CompileTest, APodStepsTimeoutStopsTheCommandAndItsChildren) {
  const fs::path plugins = dir / "plugins";
  kiln::test::write_text(plugins / "stubborn.yaml", R"y(apiVersion: kiln/v1
kind: Component
metadata: {name: t.stubborn, version: 1.0.0}
implementation:
  shell: |
    trap 'echo term > "$MARKS/term"; exit 143' TERM
    (trap '' TERM; exec sleep 120) &
    echo $! > "$MARKS/sleep.pid"
    wait
  env: {MARKS: )y" + dir.path().string() + R"y(}
)y");
  Json request = step_request("t.stubborn", Json::object());
  request["timeout_seconds"] = 3.0;  // the command starts well within it, even under ASan
  auto environment = env();
  environment.emplace_back("KILN_PLUGIN_PATH", plugins.string());
  const auto run = kiln::test::run_kiln(pod_command(request, {}), environment);
  EXPECT_EQ(run.status.code, kiln::host::kPodExitTimeout) << run.output;
  EXPECT_EQ(kiln::test::read_text(dir / "term"), "term\n") << run.output;
  ASSERT_TRUE(fs::exists(dir / "sleep.pid")) << run.output;
  const pid_t sleeper = std::stoi(kiln::test::read_text(dir / "sleep.pid"));
  EXPECT_TRUE(kiln::test::poll_until([&] { return kiln::test::process_ended(sleeper); }))
      << "the command's child " << sleeper << " outlived the timeout";
}

// A command that ignores SIGTERM altogether: the runner SIGKILLs its group
// within the pod's grace period, before kiln step kills the runner, so
// nothing of it outlives the pod step.
TEST_F(CompileTest, APodStepsTimeoutKillsACommandThatIgnoresSigterm) {
  const fs::path plugins = dir / "plugins";
  kiln::test::write_text(plugins / "deaf.yaml", R"y(apiVersion: kiln/v1
kind: Component
metadata: {name: t.deaf, version: 1.0.0}
implementation:
  shell: |
    trap '' TERM
    sleep 120 &
    echo $! > "$MARKS/sleep.pid"
    wait
  env: {MARKS: )y" + dir.path().string() + R"y(}
)y");
  Json request = step_request("t.deaf", Json::object());
  request["timeout_seconds"] = 2.0;  // the command starts well within it, even under ASan
  auto environment = env();
  environment.emplace_back("KILN_PLUGIN_PATH", plugins.string());
  const auto run = kiln::test::run_kiln(pod_command(request, {}), environment);
  EXPECT_EQ(run.status.code, kiln::host::kPodExitTimeout) << run.output;
  ASSERT_TRUE(fs::exists(dir / "sleep.pid")) << run.output;
  const pid_t sleeper = std::stoi(kiln::test::read_text(dir / "sleep.pid"));
  const bool ended = kiln::test::poll_until([&] { return kiln::test::process_ended(sleeper); }, 300);
  if (!ended) ::kill(sleeper, SIGKILL);
  EXPECT_TRUE(ended) << "the command's child " << sleeper << " outlived the pod step";
}

// Retries the target cannot filter by class happen in the pod: util.flaky
// fails once (error), the second attempt succeeds.
TEST_F(CompileTest, APodStepRetriesInThePodWhenTheRequestSaysSo) {
  Json request = step_request("util.flaky", {{"failures", 1}, {"counter_file", (dir / "counter").string()}});
  request["output_parameters"] = {"runs"};
  request["retries"] = {{"limit", 2}, {"backoff_seconds", 0.01}, {"on", {"error"}}};
  const auto run = kiln::test::run_kiln(
      pod_command(request, {"--output-parameter", "runs=" + (dir / "runs").string()}), env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(kiln::test::read_text(dir / "runs"), "2");
  EXPECT_NE(run.output.find("attempt 1 failed (error)"), std::string::npos) << run.output;

  // Not retried when the class is not named: the error is the pod's status 1.
  request["retries"]["on"] = {"crash"};
  kiln::test::write_text(dir / "counter", "0");
  const auto once = kiln::test::run_kiln(pod_command(request, {"--output-parameter", "runs=" + (dir / "r2").string()}),
                                         env());
  EXPECT_EQ(once.status.code, kiln::host::kPodExitError) << once.output;
  EXPECT_FALSE(fs::exists(dir / "r2"));
}

TEST_F(CompileTest, APodStepWithABadRequestSaysWhyWithStatus64) {
  const auto expect_refused = [&](const std::vector<std::string>& args, const std::string& why) {
    const auto run = kiln::test::run_kiln(args, env());
    EXPECT_EQ(run.status.code, kiln::host::kPodExitUsage) << run.output;
    EXPECT_NE(run.output.find(why), std::string::npos) << run.output;
  };
  expect_refused({"step", "--request-json", "{\"kiln_pod\": 1,"}, "--request-json: not JSON");
  expect_refused({"step", "--request-json", "{\"kiln_pod\": 2}"}, "'kiln_pod' must be 1");
  Json request = step_request("util.echo", {{"message", "{{ params.who }}"}});
  request["values"] = {{"params.who", "string"}};
  expect_refused(pod_command(request, {}), "--value params.who=…: missing");
  expect_refused(pod_command(request, {"--value", "params.who=a", "--value", "params.who=b"}), "given twice");
  expect_refused(pod_command(request, {"--value", "params.who=a", "--output", "nothing=/tmp/x"}),
                 "--output nothing: the request has no such name");
  request["component"] = "util.nosuch";
  expect_refused(pod_command(request, {"--value", "params.who=a"}), "the image has no component util.nosuch");

  // A tuning step's request: each field checked and named, each component looked up.
  Json tuning{{"kiln_pod", 1}, {"pipeline", "t"}, {"step", "s"}, {"tuning", {{"name", "s"}, {"parameters", Json::object()}}}};
  expect_refused(pod_command(tuning, {}), "request: tuning.step.inputs: is missing");
  tuning["tuning"] = {{"name", "s"},
                      {"component", "util.objective"},
                      {"parameters", Json::object()},
                      {"inputs", Json::object()},
                      {"retries", {{"limit", 0}, {"backoff_seconds", 1}, {"factor", 2}, {"max_backoff_seconds", 60},
                                   {"on", {"error"}}}},
                      {"cache", true},
                      {"parallelism", 0},
                      {"upstream", Json::array()},
                      {"tune", {{"tuner", "tune.nosuch"}}}};
  expect_refused(pod_command(tuning, {}), "tuning.tune.tuner: the image has no component tune.nosuch");
  tuning["tuning"]["tune"] = {{"tuner", "tune.grid"}, {"metric", "loss"}, {"maximize", "yes"}};
  expect_refused(pod_command(tuning, {}), "tuning.tune.maximize: must be true or false");
  Json no_tune = tuning;
  no_tune["tuning"].erase("tune");
  expect_refused(pod_command(no_tune, {}), "tuning.tune: is missing");
  // Names become directories and pod input names: the spec's rules hold here too.
  Json bad_name = tuning;
  bad_name["tuning"]["name"] = "../up";
  expect_refused(pod_command(bad_name, {}), "tuning.step.name: '../up' must be letters, digits and '_'");
  Json bad_input = tuning;
  bad_input["tuning"]["inputs"] = {{"a-b", {{"step", "x"}, {"output", "y"}}}};
  expect_refused(pod_command(bad_input, {}), "tuning.step.inputs.a-b: an input name must be letters, digits and '_'");
  // A multi-objective step's objectives: each {metric, goal} checked, the first the step's objective.
  Json mo = tuning;
  mo["tuning"]["tune"] = {{"tuner", "tune.random"}, {"metric", "loss"},       {"maximize", false},
                          {"space", Json::object()}, {"settings", Json::object()}, {"max_trials", 2},
                          {"parallel_trials", 0},    {"max_failed_trials", 0},  {"seed", 1}};
  const std::vector<std::pair<Json, std::string>> bad_objectives{
      {Json::array({{{"metric", "loss"}, {"goal", "minimize"}}}), "tuning.tune.objectives: must be a list of 2 to 16"},
      {Json::array({{{"metric", "loss"}, {"goal", "minimize"}}, {{"metric", "cost"}, {"goal", "least"}}}),
       "tuning.tune.objectives[1].goal: must be maximize or minimize"},
      {Json::array({{{"metric", "loss"}, {"goal", "minimize"}}, {{"goal", "minimize"}}}),
       "tuning.tune.objectives[1].metric: is missing"},
      {Json::array({{{"metric", "loss"}, {"goal", "minimize"}}, {{"metric", "loss"}, {"goal", "maximize"}}}),
       "tuning.tune.objectives[1].metric: 'loss' is named twice"},
      {Json::array({{{"metric", "cost"}, {"goal", "minimize"}}, {{"metric", "loss"}, {"goal", "minimize"}}}),
       "tuning.tune.objectives[0]: must be the step's objective"},
      {Json::array({{{"metric", "loss"}, {"goal", "minimize"}}, 3}), "tuning.tune.objectives[1]: must be an object"}};
  for (const auto& [objectives, why] : bad_objectives) {
    mo["tuning"]["tune"]["objectives"] = objectives;
    expect_refused(pod_command(mo, {}), why);
  }
}

// The request parser's bounds: size, depth, kinds (fuzzed by fuzz/pod_request_fuzz.cpp).
TEST(PodRequest, IsBoundedAndTyped) {
  using namespace kiln::host;
  EXPECT_THROW(parse_pod_request(std::string(kMaxPodRequestBytes + 1, ' ')), PodRequestError);
  EXPECT_THROW(parse_pod_request(std::string(100, '[') + std::string(100, ']')), PodRequestError);
  EXPECT_THROW(parse_pod_request(R"({"kiln_pod": 1, "pipeline": "p", "step": "s", "component": 3})"), PodRequestError);
  // Found by fuzz_pod_request: a version of the wrong type escaped as nlohmann's type_error.
  EXPECT_THROW(parse_pod_request(R"({"kiln_pod": "FAILED"})"), PodRequestError);
  // Found by fuzz_pod_request: an empty component made a request that is neither a step nor a condition.
  for (const char* key : {"pipeline", "step", "component"}) {
    Json request{{"kiln_pod", 1}, {"pipeline", "p"}, {"step", "s"}, {"component", "c"}};
    request[key] = "";
    EXPECT_THROW(parse_pod_request(request.dump()), PodRequestError) << key;
  }
  EXPECT_THROW(parse_pod_request(R"({"kiln_pod": 1, "pipeline": "p", "step": "s", "condition": ""})"),
               PodRequestError);
  // Two kinds of work in one request: refused, not one of them run silently.
  for (const char* pair : {R"("condition": "true", "component": "c")", R"("condition": "true", "tuning": {})",
                           R"("tuning": {}, "component": "c")"}) {
    try {
      parse_pod_request(std::string(R"({"kiln_pod": 1, "pipeline": "p", "step": "s", )") + pair + "}");
      ADD_FAILURE() << "accepted " << pair;
    } catch (const PodRequestError& e) {
      EXPECT_NE(std::string(e.what()).find("more than one of"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(parse_pod_request(R"({"kiln_pod": 1, "pipeline": "p", "step": "s", "component": "c",
                                     "values": {"item": "yaml"}})"),
               PodRequestError);
  EXPECT_THROW(parse_pod_request(R"({"kiln_pod": 1, "pipeline": "p", "step": "s", "component": "c",
                                     "retries": {"limit": 1, "on": ["sometimes"]}})"),
               PodRequestError);
  const auto r = parse_pod_request(pod_request_argument(Json{
      {"kiln_pod", 1}, {"pipeline", "p"}, {"step", "s"}, {"component", "c"}, {"parameters", {{"m", "{{ item }}"}}}}));
  EXPECT_EQ(r.parameters["m"], "{{ item }}");  // "{\u007b" reads back as "{{"

  EXPECT_EQ(decode_pod_value(PodValueKind::String, "123"), "123");
  EXPECT_EQ(decode_pod_value(PodValueKind::Json, "123"), 123);
  EXPECT_EQ(decode_pod_value(PodValueKind::Json, "ada"), "ada");
  EXPECT_EQ(decode_pod_value(PodValueKind::JsonList, R"(["\"a\"", "2"])"), Json::parse(R"(["a", 2])"));
  EXPECT_EQ(decode_pod_value(PodValueKind::RunStatus, "Error"), "failed");
  EXPECT_EQ(decode_pod_value(PodValueKind::KfpStatus, R"({"state": "SUCCEEDED", "error": {}})"), "succeeded");
  EXPECT_EQ(decode_pod_value(PodValueKind::ArgoFailures, R"([{"displayName": "train", "phase": "Failed"}])"),
            Json::parse(R"(["train"])"));
  EXPECT_THROW(decode_pod_value(PodValueKind::JsonList, std::string(200, '[')), PodRequestError);
  EXPECT_THROW(decode_pod_value(PodValueKind::KfpStatus, "{}"), PodRequestError);
}

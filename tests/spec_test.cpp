// Pipeline spec parsing and validation: every error class, with its
// message and file:line:col position.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <kiln/host/catalog.hpp>
#include <kiln/host/gpus.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/spec.hpp>
#include <kiln/host/yaml_json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using kiln::host::Diagnostic;
using kiln::host::Json;
using kiln::host::ParamSpec;
using kiln::host::PipelineSpec;
using kiln::host::Plan;
using kiln::host::PluginCatalog;
using kiln::host::SpecError;
using kiln::host::ValueType;
using kiln::test::TempDir;
using ::testing::HasSubstr;

std::string dump(const std::vector<Diagnostic>& diagnostics) {
  std::string text;
  for (const auto& d : diagnostics) text += "\n  " + d.str();
  return text;
}

// Passes when some diagnostic's message contains `text` and it sits at file:line:column.
::testing::AssertionResult HasError(const std::vector<Diagnostic>& diagnostics, const std::string& file, int line,
                                    int column, const std::string& text) {
  for (const auto& d : diagnostics)
    if (d.message.find(text) != std::string::npos && d.pos.file == file && d.pos.line == line && d.pos.column == column)
      return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "no diagnostic at " << file << ":" << line << ":" << column
                                       << " containing \"" << text << "\"; got:" << dump(diagnostics);
}

::testing::AssertionResult HasError(const std::vector<Diagnostic>& diagnostics, int line, int column,
                                    const std::string& text) {
  return HasError(diagnostics, "p.yaml", line, column, text);
}

std::vector<Diagnostic> parse_errors(const std::string& text) {
  try {
    kiln::host::parse_pipeline_text(text, "p.yaml");
  } catch (const SpecError& e) {
    return e.diagnostics();
  }
  ADD_FAILURE() << "the spec parsed without errors";
  return {};
}

std::vector<std::string> names_of(const Plan& plan) {
  std::vector<std::string> names;
  for (const auto& s : plan.steps) names.push_back(s.spec.name);
  return names;
}

size_t index_of(const std::vector<std::string>& names, const std::string& name) {
  return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

// ---------------------------------------------------------------------------
// Parsing alone (no catalog)

TEST(Spec, ParsesAMinimalPipeline) {
  const auto spec = kiln::host::parse_pipeline_text(
      "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: tiny}\nsteps:\n  - name: a\n    component: util.noop\n",
      "tiny.yaml");
  EXPECT_EQ(spec.name, "tiny");
  ASSERT_EQ(spec.steps.size(), 1u);
  EXPECT_EQ(spec.steps[0].component, "util.noop");
  EXPECT_EQ(spec.steps[0].pos.line, 5);
}

TEST(Spec, ReadsEveryStepField) {
  const auto spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
metadata:
  name: full
  description: all fields
parameters:
  n: {type: int, default: 2, min: 1}
steps:
  - name: a
    component: util.echo@^1.0
    parameters:
      message: "{{ params.n }}"
    for_each: [1, 2, 3]
    parallelism: 2
    retries: {limit: 3, backoff: 250ms, factor: 3, max_backoff: 2m, on: [crash, timeout]}
    timeout: 1h
    cache: false
    executor: process
  - name: b
    component: util.echo
    inputs:
      text: a.outputs.text
    after: a
    when: params.n > 1
    retries: 4
options:
  failure_policy: continue
  timeout: 90
)",
                                                    "p.yaml");
  EXPECT_EQ(spec.description, "all fields");
  ASSERT_EQ(spec.parameters.size(), 1u);
  EXPECT_EQ(spec.parameters[0].spec.type, ValueType::Int);
  EXPECT_EQ(spec.parameters[0].spec.default_value, Json(2));
  EXPECT_EQ(spec.parameters[0].pos.line, 7);
  EXPECT_EQ(spec.parameters[0].pos.column, 3);
  ASSERT_EQ(spec.steps.size(), 2u);
  const auto& a = spec.steps[0];
  EXPECT_EQ(a.component, "util.echo");
  EXPECT_EQ(a.version_range, "^1.0");
  EXPECT_EQ(a.component_pos.line, 10);
  EXPECT_EQ(a.component_pos.column, 16);
  ASSERT_TRUE(a.for_each.has_value());
  EXPECT_EQ(a.for_each->value, Json::array({1, 2, 3}));
  EXPECT_EQ(a.parallelism, 2);
  EXPECT_EQ(a.retries.limit, 3);
  EXPECT_DOUBLE_EQ(a.retries.backoff_seconds, 0.25);
  EXPECT_DOUBLE_EQ(a.retries.factor, 3.0);
  EXPECT_DOUBLE_EQ(a.retries.max_backoff_seconds, 120.0);
  EXPECT_EQ(a.retries.on, (std::set<std::string>{"crash", "timeout"}));
  EXPECT_EQ(a.timeout_seconds, 3600.0);
  EXPECT_FALSE(a.cache);
  EXPECT_EQ(a.executor, "process");
  ASSERT_EQ(a.parameters.count("message"), 1u);
  EXPECT_EQ(a.parameters.at("message").value, Json("{{ params.n }}"));
  // A quoted value's position is its first character inside the quotes.
  EXPECT_EQ(a.parameters.at("message").pos.line, 12);
  EXPECT_EQ(a.parameters.at("message").pos.column, 17);
  const auto& b = spec.steps[1];
  ASSERT_EQ(b.inputs.count("text"), 1u);
  EXPECT_EQ(b.inputs.at("text").step, "a");
  EXPECT_EQ(b.inputs.at("text").output, "text");
  ASSERT_EQ(b.after.size(), 1u);
  EXPECT_EQ(b.after[0].first, "a");
  ASSERT_TRUE(b.when.has_value());
  EXPECT_EQ(b.when->value, Json("params.n > 1"));
  EXPECT_EQ(b.when->pos.line, 24);
  EXPECT_EQ(b.when->pos.column, 11);
  EXPECT_EQ(b.retries.limit, 4);
  EXPECT_EQ(b.retries.on, (std::set<std::string>{"error", "crash", "timeout", "lost"}));
  EXPECT_TRUE(b.cache);
  EXPECT_EQ(b.executor, "");
  EXPECT_EQ(spec.failure_policy, "continue");
  EXPECT_EQ(spec.timeout_seconds, 90.0);
  EXPECT_EQ(spec.find_step("b"), &spec.steps[1]);
  EXPECT_EQ(spec.find_step("zz"), nullptr);
  EXPECT_NE(spec.find_parameter("n"), nullptr);
}

TEST(Spec, YamlSyntaxErrorIsReportedWithItsPosition) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: [util.noop, util.echo
  - name: b
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_EQ(diagnostics[0].message, "YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(diagnostics[0].pos.file, "p.yaml");
  EXPECT_EQ(diagnostics[0].pos.line, 6);
  EXPECT_EQ(diagnostics[0].pos.column, 9);
}

TEST(Spec, UnknownKeysAreReportedEverywhereWithSuggestions) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
metadata:
  nme: typo
paramters:
  x: {type: int, default: 1}
steps:
  - name: a
    component: util.noop
    paramters: {}
    retries: {limt: 2}
options:
  failur_policy: stop
)");
  EXPECT_EQ(diagnostics.size(), 5u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 5, 1, "unknown key 'paramters' in pipeline (did you mean 'parameters'?)"));
  EXPECT_TRUE(HasError(diagnostics, 4, 3, "unknown key 'nme' in metadata (did you mean 'name'?)"));
  EXPECT_TRUE(HasError(diagnostics, 10, 5, "unknown key 'paramters' in step 'a' (did you mean 'parameters'?)"));
  EXPECT_TRUE(HasError(diagnostics, 11, 15, "unknown key 'limt' in retries (did you mean 'limit'?)"));
  EXPECT_TRUE(HasError(diagnostics, 13, 3, "unknown key 'failur_policy' in options (did you mean 'failure_policy'?)"));
}

TEST(Spec, UnknownKeysInParametersAndTemplates) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
parameters:
  x: {type: int, defualt: 1}
templates:
  t:
    name: nope
    component: util.noop
    timeot: 1s
steps:
  - name: a
    template: t
)");
  EXPECT_EQ(diagnostics.size(), 3u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 4, 18, "unknown key 'defualt' in parameter 'x' (did you mean 'default'?)"));
  // A template may not set the step's name.
  EXPECT_TRUE(HasError(diagnostics, 7, 5, "unknown key 'name' in template 't'"));
  EXPECT_TRUE(HasError(diagnostics, 9, 5, "unknown key 'timeot' in template 't' (did you mean 'timeout'?)"));
}

// Found by fuzz_spec (issue 17): a default that is not one of the choices
// is quoted in the message, and a plain dump() threw nlohmann's type_error
// on invalid UTF-8 (YAML takes any bytes), out of parse_pipeline_text.
TEST(Spec, InvalidUtf8InAValueIsQuotedNotThrownOn) {
  const auto diagnostics = parse_errors(
      "apiVersion: kiln/v1\nkind: Pipeline\nparameters:\n"
      "  mode: {type: string, default: \xecquick, choices: [quick, full]}\n"
      "steps:\n  - name: a\n    component: util.noop\n");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_THAT(diagnostics[0].message, HasSubstr("\"\xef\xbf\xbdquick\" is not one of: quick, full"))
      << dump(diagnostics);
}

TEST(Spec, HeaderAndShapeErrors) {
  auto diagnostics = parse_errors(R"(apiVersion: kiln/v2
kind: Pipelin
steps: []
)");
  EXPECT_EQ(diagnostics.size(), 3u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 1, 13, "unsupported apiVersion 'kiln/v2' (expected kiln/v1)"));
  EXPECT_TRUE(HasError(diagnostics, 2, 7, "kind must be 'Pipeline' here, not 'Pipelin'"));
  EXPECT_TRUE(HasError(diagnostics, 3, 8, "'steps' is empty"));

  diagnostics = parse_errors("metadata: {name: x}\n");
  EXPECT_EQ(diagnostics.size(), 3u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 1, 1, "missing 'apiVersion: kiln/v1'"));
  EXPECT_TRUE(HasError(diagnostics, 1, 1, "missing 'kind: Pipeline'"));
  EXPECT_TRUE(HasError(diagnostics, 1, 1, "missing 'steps'"));

  diagnostics = parse_errors("- just\n- a list\n");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 1, 1, "the pipeline file must be a mapping"));

  diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps: {a: 1}
finally: nope
)");
  EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 3, 8, "'steps' must be a list of steps"));
  EXPECT_TRUE(HasError(diagnostics, 4, 10, "'finally' must be a list of steps"));
}

TEST(Spec, StepWithoutNameOrComponent) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - component: util.noop
  - name: a
    parameters: {}
  - name: bad name
    component: util.noop
)");
  EXPECT_EQ(diagnostics.size(), 3u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 4, 5, "step has no 'name'"));
  EXPECT_TRUE(HasError(diagnostics, 5, 5, "step 'a' names no component (nor a template that does)"));
  EXPECT_TRUE(HasError(diagnostics, 7, 11, "step name 'bad name' must be letters, digits, '_' or '-'"));
}

TEST(Spec, MalformedInputWire) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: greet
    component: util.echo
  - name: d
    component: util.echo
    inputs:
      text: greet.text
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(
      HasError(diagnostics, 9, 13, "input 'text' must name an upstream output as STEP.outputs.NAME, not 'greet.text'"));
}

TEST(Spec, BadDurationsRetriesAndOptions) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.noop
    timeout: 5 parsecs
    retries: {on: [boom]}
options:
  failure_policy: contnue
  timeout: soon
)");
  EXPECT_EQ(diagnostics.size(), 4u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 6, 14, "'timeout' must be a duration such as 30s, 5m, 1h or 250ms"));
  EXPECT_TRUE(HasError(diagnostics, 7, 20, "unknown failure class 'boom' (use error, crash, timeout, out_of_memory or lost)"));
  EXPECT_TRUE(HasError(diagnostics, 9, 19, "failure_policy must be 'stop' or 'continue' (did you mean 'continue'?)"));
  EXPECT_TRUE(HasError(diagnostics, 10, 12, "'options.timeout' must be a duration"));
}

TEST(Spec, DistributedReplicasAreReadFromStepsAndTemplates) {
  const auto spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  wide: {component: util.noop, distributed: {replicas: 4}}
steps:
  - {name: plain, component: util.noop}
  - {name: two, component: util.noop, distributed: {replicas: 2}}
  - {name: inherited, template: wide}
)",
                                                    "p.yaml");
  EXPECT_EQ(spec.steps[0].replicas, 1);
  EXPECT_EQ(spec.steps[1].replicas, 2);
  EXPECT_EQ(spec.steps[2].replicas, 4);
}

TEST(Spec, BadDistributedFields) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - {name: a, component: util.noop, distributed: {replicas: 0}}
  - {name: b, component: util.noop, distributed: {replicas: 257}}
  - {name: c, component: util.noop, distributed: {replicas: two}}
  - {name: d, component: util.noop, distributed: {nodes: 2}}
  - {name: e, component: util.noop, distributed: 2}
  - {name: f, component: util.noop, distributed: {replicas: 1.5}}
)");
  EXPECT_EQ(diagnostics.size(), 7u) << dump(diagnostics);
  const std::string range = "'distributed.replicas' must be an integer from 1 to 256";
  EXPECT_TRUE(HasError(diagnostics, 4, 61, range));
  EXPECT_TRUE(HasError(diagnostics, 5, 61, range));
  EXPECT_TRUE(HasError(diagnostics, 6, 61, range));
  EXPECT_TRUE(HasError(diagnostics, 7, 51, "unknown key 'nodes' in distributed"));
  EXPECT_TRUE(HasError(diagnostics, 7, 50, "'distributed' needs 'replicas'"));
  EXPECT_TRUE(HasError(diagnostics, 8, 50, "'distributed' must be"));
  EXPECT_TRUE(HasError(diagnostics, 9, 61, range));
}

TEST(Spec, ContainerFieldsAreReadFromStepsAndTemplates) {
  const auto spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  boxed: {executor: container, image: "oci:/images/kiln:v1", resources: {memory: 64Mi, cpus: 0.5, pids: 64}, user: "1000:100"}
steps:
  - {name: a, template: boxed, component: util.noop, network: host, mounts: [../data/, /srv/models]}
  - {name: b, component: util.noop}
)",
                                                    "/pipelines/p.yaml");
  const auto& a = spec.steps[0].container;
  EXPECT_EQ(spec.steps[0].executor, "container");
  EXPECT_EQ(a.image, "oci:/images/kiln:v1");
  EXPECT_EQ(a.network, "host");
  EXPECT_EQ(a.memory_bytes, 64 << 20);
  EXPECT_EQ(a.cpus, 0.5);
  EXPECT_EQ(a.pids, 64);
  EXPECT_EQ(a.mounts, (std::vector<std::string>{"/data", "/srv/models"}));  // relative to the pipeline file
  ASSERT_TRUE(a.user);
  EXPECT_EQ(a.user->uid, 1000u);
  EXPECT_EQ(a.user->gid, 100u);
  const auto& b = spec.steps[1].container;
  EXPECT_EQ(b.image, "host");
  EXPECT_EQ(b.network, "none");
  EXPECT_FALSE(b.memory_bytes);
  EXPECT_TRUE(b.mounts.empty());
  EXPECT_FALSE(b.user);  // nobody, decided by the executor
}

TEST(Spec, ContainerUsers) {
  using kiln::host::parse_container_user;
  ASSERT_TRUE(parse_container_user("65534"));
  EXPECT_EQ(parse_container_user("65534")->gid, 65534u);
  EXPECT_EQ(parse_container_user("1000:100")->uid, 1000u);
  EXPECT_EQ(parse_container_user("1000:100")->gid, 100u);
  EXPECT_EQ(parse_container_user("0")->uid, 0u);
  for (const char* bad : {"", "nobody", "1000:", ":100", "-1", "4294967295", "2147483647", "1:2:3", "99999999999"})
    EXPECT_FALSE(parse_container_user(bad)) << bad;
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - {name: a, component: util.noop, user: nobody}
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 4, 43, "'user' must be a uid or uid:gid such as 65534 or 1000:1000, not 'nobody'"));
}

TEST(Spec, BadContainerFields) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.noop
    image: docker.io/ubuntu
    network: bridge
    resources: {memory: lots, cpus: -1, pids: 0, disk: 1Gi}
    mounts: ["{{ pipeline.dir }}/data", /]
  - {name: b, component: util.noop, mounts: /data}
)");
  EXPECT_EQ(diagnostics.size(), 9u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 9, 14, "a 'mounts' entry must be a plain host path"));
  EXPECT_TRUE(HasError(diagnostics, 9, 41, "'mounts' cannot bind the whole root filesystem"));
  EXPECT_TRUE(HasError(diagnostics, 10, 45, "'mounts' must be a list of host paths"));
  EXPECT_TRUE(HasError(diagnostics, 6, 12, "'image' must be host or oci:LAYOUT_DIR:TAG, not 'docker.io/ubuntu'"));
  EXPECT_TRUE(HasError(diagnostics, 7, 14, "'network' must be none or host, not 'bridge'"));
  EXPECT_TRUE(HasError(diagnostics, 8, 25, "'resources.memory' must be a size of at least 4Mi"));
  EXPECT_TRUE(HasError(diagnostics, 8, 37, "'resources.cpus' must be a number of cores"));
  EXPECT_TRUE(HasError(diagnostics, 8, 47, "'resources.pids' must be a whole number ≥ 1"));
  EXPECT_TRUE(HasError(diagnostics, 8, 50, "disk"));
}

TEST(Spec, GpusAreAWholeNumberOfGpusRecordedWithTheirPosition) {
  const auto spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  trainer: {resources: {gpus: 2}}
steps:
  - {name: a, template: trainer, component: util.noop}
  - {name: b, component: util.noop, resources: {gpus: 0, memory: 1Gi}}
  - {name: c, component: util.noop}
)",
                                                    "/pipelines/p.yaml");
  EXPECT_EQ(spec.steps[0].container.gpus, 2);
  EXPECT_EQ(spec.steps[0].gpus_pos.file, "/pipelines/p.yaml");
  EXPECT_EQ(spec.steps[0].gpus_pos.line, 4);  // where the template wrote it
  EXPECT_EQ(spec.steps[1].container.gpus, 0);
  EXPECT_EQ(spec.steps[1].gpus_pos.str(), "/pipelines/p.yaml:7:55");
  EXPECT_FALSE(spec.steps[2].container.gpus);
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - {name: a, component: util.noop, resources: {gpus: -1}}
  - {name: b, component: util.noop, resources: {gpus: 1.5}}
  - {name: c, component: util.noop, resources: {gpus: all}}
)");
  ASSERT_EQ(diagnostics.size(), 3u) << dump(diagnostics);
  for (const int line : {4, 5, 6})
    EXPECT_TRUE(HasError(diagnostics, line, 55, "'resources.gpus' must be a whole number ≥ 0")) << dump(diagnostics);
}

// The GPU pool kiln hands out (kiln/host/gpus.hpp): parsed, detected from
// fake driver directories, chosen by precedence. No GPU is touched.
TEST(GpuPool, CountsListsAndCudaVisibleDevicesParse) {
  using kiln::host::parse_cuda_visible_devices;
  using kiln::host::parse_gpu_list;
  EXPECT_EQ(parse_gpu_list("4"), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(parse_gpu_list("0"), std::vector<int>{});
  EXPECT_EQ(parse_gpu_list("none"), std::vector<int>{});
  EXPECT_EQ(parse_gpu_list("2,0"), (std::vector<int>{2, 0}));
  EXPECT_EQ(parse_gpu_list("3,"), std::vector<int>{3});
  EXPECT_EQ(parse_gpu_list(" 1, 2 "), (std::vector<int>{1, 2}));
  for (const char* bad : {"all", "-1", "1,1", "1,x", ",", "2.5", "99999", "GPU-5d3c"})
    EXPECT_FALSE(parse_gpu_list(bad)) << bad;
  EXPECT_EQ(parse_cuda_visible_devices("2,0", 4), (std::vector<int>{2, 0}));
  EXPECT_EQ(parse_cuda_visible_devices("", 4), std::vector<int>{});
  EXPECT_EQ(parse_cuda_visible_devices("1,7,0", 4), std::vector<int>{1});  // CUDA stops at an invalid entry
  EXPECT_EQ(parse_cuda_visible_devices("-1", 4), std::vector<int>{});
  EXPECT_FALSE(parse_cuda_visible_devices("GPU-5d3c2f1e,1", 4));
  EXPECT_EQ(kiln::host::gpu_list_text({3, 1}), "3,1");
  EXPECT_EQ(kiln::host::gpu_list_text({}), "");
}

TEST(GpuPool, DetectionCountsTheDriversGpusElseItsDeviceNodes) {
  TempDir proc, dev, none;
  for (const char* pci : {"0000:17:00.0", "0000:65:00.0", "0000:ca:00.0"})
    fs::create_directories(proc / "driver/nvidia/gpus" / pci);
  for (const char* node : {"nvidia0", "nvidia2", "nvidiactl", "nvidia-uvm", "nvidia-modeset", "null"})
    kiln::test::write_text(dev / node, "");
  EXPECT_EQ(kiln::host::detect_nvidia_gpus(proc.path(), dev.path()), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(kiln::host::detect_nvidia_gpus(none.path(), dev.path()), (std::vector<int>{0, 2}));
  EXPECT_EQ(kiln::host::detect_nvidia_gpus(none.path(), none.path()), std::vector<int>{});
}

TEST(GpuPool, TheFlagWinsOverKilnGpusWhichWinsOverWhatIsDetectedWithinCudaVisibleDevices) {
  using kiln::host::resolve_gpu_pool;
  const std::vector<int> detected{0, 1, 2, 3};
  EXPECT_EQ(resolve_gpu_pool("2", "0,1,2,3", detected, "3").ids, (std::vector<int>{0, 1}));
  EXPECT_EQ(resolve_gpu_pool("2", "0,1,2,3", detected, "3").source, "--gpus 2");
  EXPECT_EQ(resolve_gpu_pool("auto", "1,3", detected, "3").ids, (std::vector<int>{1, 3}));
  EXPECT_EQ(resolve_gpu_pool("", "none", detected, nullptr).ids, std::vector<int>{});
  EXPECT_EQ(resolve_gpu_pool("", nullptr, detected, nullptr).ids, detected);
  EXPECT_EQ(resolve_gpu_pool("", "auto", detected, nullptr).source, "detected 4 NVIDIA GPUs");
  EXPECT_EQ(resolve_gpu_pool("", nullptr, detected, "3,1").ids, (std::vector<int>{3, 1}));
  EXPECT_EQ(resolve_gpu_pool("", nullptr, detected, "").ids, std::vector<int>{});  // kiln itself sees none
  EXPECT_EQ(resolve_gpu_pool("", nullptr, {}, "0").ids, std::vector<int>{});      // no driver: no GPU
  const auto uuids = resolve_gpu_pool("", nullptr, detected, "GPU-5d3c2f1e");
  EXPECT_TRUE(uuids.ids.empty());
  EXPECT_THAT(uuids.source, HasSubstr("names GPUs by UUID"));
  try {
    resolve_gpu_pool("", "two", detected, nullptr);
    FAIL() << "KILN_GPUS=two was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("KILN_GPUS=: 'two' is not a number of GPUs"));
  }
  EXPECT_THROW(resolve_gpu_pool("1,1", nullptr, detected, nullptr), std::invalid_argument);
}

TEST(GpuPool, TheDriversLibrariesAreFoundInLdconfigsListForThisArchitecture) {
  const std::string listed = R"(1234 libs found in cache `/etc/ld.so.cache'
	libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
	libnvidia-ml.so.1 (libc6,AArch64) => /usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1
	libnvidia-ptxjitcompiler.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1
	libcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12
	libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
	libcuda.so (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so
	libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
	libc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6
)";
  const auto libraries = kiln::host::parse_ldconfig_driver_libraries(listed);
#if defined(__x86_64__)
  EXPECT_EQ(libraries, (std::vector<fs::path>{"/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
                                              "/usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1",
                                              "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                                              "/usr/lib/x86_64-linux-gnu/libcuda.so"}));
#endif
  EXPECT_TRUE(kiln::host::parse_ldconfig_driver_libraries("").empty());
}

TEST(Spec, MemorySizes) {
  using kiln::host::parse_memory_size;
  EXPECT_EQ(parse_memory_size("64Mi"), 64 << 20);
  EXPECT_EQ(parse_memory_size("2Gi"), 2LL << 30);
  EXPECT_EQ(parse_memory_size("500M"), 500000000);
  EXPECT_EQ(parse_memory_size("4096"), 4096);
  EXPECT_FALSE(parse_memory_size("64MB"));
  EXPECT_FALSE(parse_memory_size("Mi"));
  EXPECT_FALSE(parse_memory_size("-1Mi"));
}

TEST(Spec, BadStepFieldShapes) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.noop
    retries: -1
    parallelism: many
    cache: maybe
    executor: proces
    when: [x]
    after: {a: b}
  - name: b
    component: util.noop
    retries: {limit: 2, backoff: forever, factor: 0.5, on: tiemout}
)");
  EXPECT_EQ(diagnostics.size(), 9u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 6, 14, "'retries' must be a whole number ≥ 0"));
  EXPECT_TRUE(HasError(diagnostics, 7, 18, "'parallelism' must be a whole number ≥ 0"));
  EXPECT_TRUE(HasError(diagnostics, 8, 12, "'cache' must be true or false"));
  EXPECT_TRUE(HasError(diagnostics, 9, 15,
                       "unknown executor 'proces' (use inprocess, process, container or slurm) (did you mean 'process'?)"));
  EXPECT_TRUE(HasError(diagnostics, 10, 11, "'when' must be an expression"));
  EXPECT_TRUE(HasError(diagnostics, 11, 12, "'after' must be a step name or a list of them"));
  EXPECT_TRUE(HasError(diagnostics, 14, 34, "'retries.backoff' must be a duration"));
  EXPECT_TRUE(HasError(diagnostics, 14, 51, "'retries.factor' must be a number ≥ 1"));
  EXPECT_TRUE(HasError(diagnostics, 14, 60,
                       "unknown failure class 'tiemout' (use error, crash, timeout, out_of_memory or lost) (did you "
                       "mean 'timeout'?)"));
}

TEST(Spec, BadPipelineParameterDeclarations) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
parameters:
  n: {default: 1}
  k: {type: integer}
  m: {type: int, default: 50, max: 10}
  2x: {type: int, default: 1}
steps:
  - name: a
    component: util.noop
)");
  EXPECT_EQ(diagnostics.size(), 4u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 4, 6, "parameter 'n' needs a type: string, int, float, bool, list or object"));
  EXPECT_TRUE(HasError(diagnostics, 5, 6, "parameter 'k'.type: must be one of string, int, float, bool, list, object"));
  EXPECT_TRUE(HasError(diagnostics, 6, 6, "parameter 'm'.default: 50 is above the maximum 10"));
  EXPECT_TRUE(HasError(diagnostics, 7, 3, "parameter name '2x' is not an identifier"));
}

TEST(Spec, TemplateErrors) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  sleepy:
    component: util.sleep
  loop-a:
    template: loop-b
  loop-b:
    template: loop-a
steps:
  - name: a
    template: sleeyp
  - name: b
    template: loop-a
)");
  EXPECT_EQ(diagnostics.size(), 4u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 12, 15, "unknown template 'sleeyp' (did you mean 'sleepy'?)"));
  EXPECT_TRUE(HasError(diagnostics, 11, 5, "step 'a' names no component"));
  EXPECT_TRUE(HasError(diagnostics, 9, 15, "templates extend each other in a cycle: loop-a -> loop-b -> loop-a"));
  EXPECT_TRUE(HasError(diagnostics, 13, 5, "step 'b' names no component"));
}

TEST(Spec, TemplatesChainAndStepFieldsOverrideThemKeyWise) {
  const auto spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  base:
    component: util.fail
    parameters: {mode: exit, exit_code: 7}
    timeout: 30s
    after: [x]
  derived:
    template: base
    parameters: {message: derived}
    retries: 2
steps:
  - name: x
    component: util.noop
  - name: a
    template: derived
    parameters:
      exit_code: 9
    timeout: 1m
)",
                                                    "p.yaml");
  ASSERT_EQ(spec.steps.size(), 2u);
  const auto& a = spec.steps[1];
  EXPECT_EQ(a.template_name, "derived");
  EXPECT_EQ(a.component, "util.fail");
  ASSERT_EQ(a.parameters.size(), 3u);
  EXPECT_EQ(a.parameters.at("mode").value, Json("exit"));
  EXPECT_EQ(a.parameters.at("mode").pos.line, 6);
  EXPECT_EQ(a.parameters.at("message").value, Json("derived"));
  EXPECT_EQ(a.parameters.at("exit_code").value, Json(9));
  EXPECT_EQ(a.parameters.at("exit_code").pos.line, 19);
  EXPECT_EQ(a.timeout_seconds, 60.0);
  EXPECT_EQ(a.retries.limit, 2);
  ASSERT_EQ(a.after.size(), 1u);
  EXPECT_EQ(a.after[0].first, "x");
  EXPECT_EQ(a.pos.line, 16);  // the step's own position, not the template's
}

TEST(Spec, DuplicateTemplateNames) {
  TempDir dir;
  kiln::test::write_text(dir / "t.yaml",
                         "apiVersion: kiln/v1\nkind: Templates\ntemplates:\n  t: {component: util.noop}\n");
  kiln::test::write_text(dir / "p.yaml", R"(apiVersion: kiln/v1
kind: Pipeline
imports: [t.yaml]
templates:
  t: {component: util.echo}
steps:
  - {name: a, template: t}
)");
  try {
    kiln::host::parse_pipeline_file((dir / "p.yaml").string());
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u) << dump(e.diagnostics());
    EXPECT_TRUE(HasError(e.diagnostics(), (dir / "p.yaml").string(), 5, 3,
                         "template 't' is already defined at " + (dir / "t.yaml").string() + ":4:6"));
  }
}

TEST(Spec, MissingImportedFile) {
  TempDir dir;
  kiln::test::write_text(dir / "p.yaml", R"(apiVersion: kiln/v1
kind: Pipeline
imports:
  - missing.yaml
steps:
  - name: a
    component: util.noop
)");
  const std::string file = (dir / "p.yaml").string();
  try {
    kiln::host::parse_pipeline_file(file);
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u) << dump(e.diagnostics());
    EXPECT_TRUE(
        HasError(e.diagnostics(), file, 4, 5, "cannot read imported file '" + (dir / "missing.yaml").string() + "'"));
    EXPECT_THAT(e.what(), HasSubstr(file + ":4:5: cannot read imported file"));
  }
}

// An import that is no regular file (a FIFO, /dev/stdin, /dev/zero) has no
// size to check against kMaxSpecFileBytes and may never end: it is refused
// unread. Before, parsing this spec blocked on the FIFO forever.
TEST(Spec, ImportOfANonRegularFileIsRefusedUnread) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo.yaml").c_str(), 0600), 0);
  kiln::test::write_text(dir / "p.yaml", R"(apiVersion: kiln/v1
kind: Pipeline
imports: [fifo.yaml, /dev/zero]
steps:
  - name: a
    component: util.noop
)");
  const std::string file = (dir / "p.yaml").string();
  try {
    kiln::host::parse_pipeline_file(file);
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    ASSERT_EQ(e.diagnostics().size(), 2u) << dump(e.diagnostics());
    EXPECT_TRUE(HasError(e.diagnostics(), file, 3, 11,
                         "imported file '" + (dir / "fifo.yaml").string() + "' is not a regular file"))
        << dump(e.diagnostics());
    EXPECT_TRUE(HasError(e.diagnostics(), file, 3, 22, "imported file '/dev/zero' is not a regular file"))
        << dump(e.diagnostics());
  }
}

TEST(Spec, ErrorsInsideAnImportedFileNameThatFile) {
  TempDir dir;
  kiln::test::write_text(dir / "lib" / "t.yaml", R"(apiVersion: kiln/v1
kind: Templats
templates:
  t:
    component: util.noop
    paramters: {}
)");
  kiln::test::write_text(dir / "p.yaml", R"(apiVersion: kiln/v1
kind: Pipeline
imports: [lib/t.yaml]
steps:
  - {name: a, template: t}
)");
  try {
    kiln::host::parse_pipeline_file((dir / "p.yaml").string());
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    const std::string imported = (dir / "lib" / "t.yaml").string();
    EXPECT_EQ(e.diagnostics().size(), 2u) << dump(e.diagnostics());
    EXPECT_TRUE(HasError(e.diagnostics(), imported, 2, 7, "kind must be 'Templates' here, not 'Templats'"));
    EXPECT_TRUE(HasError(e.diagnostics(), imported, 6, 5,
                         "unknown key 'paramters' in template 't' (did you mean 'parameters'?)"));
  }
}

TEST(Spec, ImportsAreRelativeToTheImportingFileAndReadOnce) {
  TempDir dir;
  kiln::test::write_text(dir / "lib" / "a.yaml", R"(apiVersion: kiln/v1
kind: Templates
imports: [b.yaml]
templates:
  derived: {template: base, timeout: 5s}
)");
  kiln::test::write_text(dir / "lib" / "b.yaml", R"(apiVersion: kiln/v1
kind: Templates
templates:
  base: {component: util.noop, retries: 3}
)");
  kiln::test::write_text(dir / "p.yaml", R"(apiVersion: kiln/v1
kind: Pipeline
imports: [lib/a.yaml, ./lib/a.yaml, lib/b.yaml]
steps:
  - {name: a, template: derived}
)");
  const auto spec = kiln::host::parse_pipeline_file((dir / "p.yaml").string());
  ASSERT_EQ(spec.steps.size(), 1u);
  EXPECT_EQ(spec.steps[0].component, "util.noop");
  EXPECT_EQ(spec.steps[0].template_name, "derived");
  EXPECT_EQ(spec.steps[0].retries.limit, 3);
  EXPECT_EQ(spec.steps[0].timeout_seconds, 5.0);
  EXPECT_EQ(spec.steps[0].component_pos.file, (dir / "lib" / "b.yaml").string());
  EXPECT_EQ(spec.steps[0].component_pos.line, 4);
  EXPECT_EQ(spec.steps[0].component_pos.column, 21);
}

TEST(Spec, YamlSyntaxErrorInAnImportedFile) {
  TempDir dir;
  kiln::test::write_text(dir / "bad.yaml", R"(apiVersion: kiln/v1
kind: Templates
templates:
  t: {component: util.noop
  u: {component: util.echo}
)");
  kiln::test::write_text(dir / "p.yaml", R"(apiVersion: kiln/v1
kind: Pipeline
imports: [bad.yaml]
steps:
  - {name: a, component: util.noop}
)");
  try {
    kiln::host::parse_pipeline_file((dir / "p.yaml").string());
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u) << dump(e.diagnostics());
    EXPECT_TRUE(
        HasError(e.diagnostics(), (dir / "bad.yaml").string(), 5, 4, "YAML syntax error: end of map flow not found"));
  }
}

TEST(Spec, UnreadablePipelineFile) {
  try {
    kiln::host::parse_pipeline_file("/nonexistent/kiln/p.yaml");
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u);
    EXPECT_TRUE(HasError(e.diagnostics(), "/nonexistent/kiln/p.yaml", 1, 1, "cannot read the pipeline file"));
  }
}

// "Billion laughs": each level's list names the previous level ten times, so
// nine levels of a few hundred bytes expand to 10^9 scalars. Lines 7-15.
std::string laughs(int levels) {
  std::string text = "      a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (char c = 'b'; c < 'a' + levels; ++c) {
    const std::string prev(1, static_cast<char>(c - 1));
    text += std::string("      ") + c + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) text += (i ? ", *" : "*") + prev;
    text += "]\n";
  }
  return text;
}

TEST(Spec, AliasBombIsASpecErrorNotAnAllocation) {
  const std::string text = R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  laughs:
    component: util.echo
    parameters:
)" + laughs(9) + R"(steps:
  - {name: boom, template: laughs}
)";
  const auto diagnostics = parse_errors(text);
  // a..e convert (123,455 nodes); f alone is 1,111,111: it is where the budget runs out.
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(
      HasError(diagnostics, 12, 10, "alias expansion exceeds " + std::to_string(kiln::host::kMaxYamlNodes) + " nodes"));
}

TEST(Spec, OneBudgetCoversEveryConversionOfTheSpec) {
  // Level e is 111,111 nodes: one use fits the budget, the second step's
  // second conversion of the same template does not.
  const std::string text = R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  laughs:
    component: util.echo
    parameters:
)" + laughs(5) + R"(steps:
  - {name: one, template: laughs}
  - {name: two, template: laughs}
)";
  const auto diagnostics = parse_errors(text);
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 11, 10, "alias expansion exceeds"));
}

TEST(Spec, AliasBombOfMappingsInATuneBlockIsCaughtToo) {
  // The tune block records every nested mapping's position: the same budget applies.
  std::string text = R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: t
    component: util.objective
    tune:
      tuner: tune.random
      settings:
        a: &a {k0: lol, k1: lol, k2: lol, k3: lol, k4: lol, k5: lol, k6: lol, k7: lol, k8: lol, k9: lol}
)";
  for (char c = 'b'; c <= 'i'; ++c) {
    const std::string prev(1, static_cast<char>(c - 1));
    text += std::string("        ") + c + ": &" + c + " {";
    for (int i = 0; i < 10; ++i) text += (i ? ", k" : "k") + std::to_string(i) + ": *" + prev;
    text += "}\n";
  }
  const auto diagnostics = parse_errors(text);
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 9, 9, "alias expansion exceeds"));  // at the settings block
}

TEST(Spec, AnAliasInsideItsOwnAnchorIsANestingError) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - {name: a, component: util.echo, parameters: {message: &x [*x]}}
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 4, 59, "YAML nesting exceeds " + std::to_string(kiln::host::kMaxYamlDepth)));
  EXPECT_THROW(kiln::host::parse_yaml_value("&x {a: *x}"), std::invalid_argument);
}

TEST(Spec, AliasesWithinTheBudgetStillWork) {
  const auto spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - {name: a, component: util.echo, parameters: {message: &m [1, 2]}}
  - {name: b, component: util.echo, parameters: {message: *m}}
)",
                                                    "p.yaml");
  EXPECT_EQ(spec.steps.at(1).parameters.at("message").value, Json::array({1, 2}));
}

TEST(Spec, OversizedSpecIsRefusedBeforeParsing) {
  const std::string text(kiln::host::kMaxSpecFileBytes + 1, '#');
  const auto diagnostics = parse_errors(text);
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 1, 1, "the spec is larger than"));
}

TEST(Spec, ParseDuration) {
  using kiln::host::parse_duration;
  EXPECT_EQ(parse_duration("30s"), 30.0);
  EXPECT_EQ(parse_duration("5m"), 300.0);
  EXPECT_EQ(parse_duration("1h"), 3600.0);
  EXPECT_EQ(parse_duration("250ms"), 0.25);
  EXPECT_EQ(parse_duration("42"), 42.0);
  EXPECT_EQ(parse_duration("1.5m"), 90.0);
  EXPECT_EQ(parse_duration("0"), 0.0);
  EXPECT_EQ(parse_duration(""), std::nullopt);
  EXPECT_EQ(parse_duration("s"), std::nullopt);
  EXPECT_EQ(parse_duration("5 parsecs"), std::nullopt);
  EXPECT_EQ(parse_duration("5 s"), std::nullopt);
  EXPECT_EQ(parse_duration("10x"), std::nullopt);
  EXPECT_EQ(parse_duration("-1s"), std::nullopt);
  EXPECT_EQ(parse_duration("inf"), std::nullopt);
  EXPECT_EQ(parse_duration("nan"), std::nullopt);
}

TEST(Spec, RetryDelaysGrowByFactorUpToTheCap) {
  kiln::host::RetryPolicy policy;  // 1 s, factor 2, cap 60 s
  EXPECT_DOUBLE_EQ(policy.delay_before(1), 1.0);
  EXPECT_DOUBLE_EQ(policy.delay_before(2), 2.0);
  EXPECT_DOUBLE_EQ(policy.delay_before(3), 4.0);
  EXPECT_DOUBLE_EQ(policy.delay_before(6), 32.0);
  EXPECT_DOUBLE_EQ(policy.delay_before(7), 60.0);  // 64 capped
  EXPECT_DOUBLE_EQ(policy.delay_before(30), 60.0);
  policy.backoff_seconds = 0.5;
  policy.factor = 3.0;
  policy.max_backoff_seconds = 10.0;
  EXPECT_DOUBLE_EQ(policy.delay_before(1), 0.5);
  EXPECT_DOUBLE_EQ(policy.delay_before(2), 1.5);
  EXPECT_DOUBLE_EQ(policy.delay_before(3), 4.5);
  EXPECT_DOUBLE_EQ(policy.delay_before(4), 10.0);  // 13.5 capped
  policy.factor = 1.0;
  EXPECT_DOUBLE_EQ(policy.delay_before(9), 0.5);
}

TEST(Spec, ParseParameterText) {
  using kiln::host::parse_parameter_text;
  const auto spec_of = [](ValueType type) {
    ParamSpec p;
    p.name = "p";
    p.type = type;
    return p;
  };
  const Json i = parse_parameter_text(spec_of(ValueType::Int), "42");
  EXPECT_TRUE(i.is_number_integer());
  EXPECT_EQ(i, Json(42));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::Int), "-7"), Json(-7));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::Float), "2.5"), Json(2.5));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::Float), "3"), Json(3));  // an integer is a float
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::Bool), "true"), Json(true));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::Bool), "false"), Json(false));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::List), "[ada, grace]"), Json::array({"ada", "grace"}));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::List), "[1, 2.5]"), Json::array({1, 2.5}));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::Object), "{a: 1}"), Json({{"a", 1}}));
  // Strings are taken verbatim, even when they look like something else.
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::String), "42"), Json("42"));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::String), "[a, b"), Json("[a, b"));
  EXPECT_EQ(parse_parameter_text(spec_of(ValueType::String), ""), Json(""));

  const auto message_of = [&](ValueType type, const std::string& text) -> std::string {
    try {
      parse_parameter_text(spec_of(type), text);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_THAT(message_of(ValueType::Int, "4.5"), HasSubstr("'4.5' is not a valid int"));
  EXPECT_THAT(message_of(ValueType::Int, "abc"), HasSubstr("'abc' is not a valid int"));
  EXPECT_THAT(message_of(ValueType::Float, "fast"), HasSubstr("'fast' is not a valid float"));
  EXPECT_THAT(message_of(ValueType::Bool, "maybe"), HasSubstr("'maybe' is not a valid bool"));
  EXPECT_THAT(message_of(ValueType::List, "ada"), HasSubstr("'ada' is not a valid list"));
  EXPECT_THAT(message_of(ValueType::List, "[a, b"), HasSubstr("'[a, b' is not a valid list"));
  EXPECT_THAT(message_of(ValueType::Object, "[1]"), HasSubstr("'[1]' is not a valid object"));
}

// ---------------------------------------------------------------------------
// Validation against the catalog of the util plugin (and the sample greeter,
// whose `name` parameter is required).

class Validation : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cache_ = std::make_unique<TempDir>();
    fs::copy_file(kiln::test::fixture("fixture_typed"), *cache_ / "typed.so");  // Dataset and Model ports
    kiln::host::LibraryScanner scanner({kiln::test::kiln_exe(), kiln::test::scan_cache(), std::chrono::seconds(20)});
    catalog_ = std::make_unique<PluginCatalog>(PluginCatalog::discover(
        scanner,
        {kiln::test::util_plugin().parent_path(), fs::path(KILN_TEST_GREETER_PLUGIN).parent_path(), cache_->path()}));
  }
  static void TearDownTestSuite() {
    catalog_.reset();
    cache_.reset();
  }

  static const PluginCatalog& catalog() { return *catalog_; }

  static Plan plan(const std::string& text, const Json& overrides = Json::object()) {
    return kiln::host::plan_pipeline(kiln::host::parse_pipeline_text(text, "p.yaml"), catalog(), overrides);
  }

  static std::vector<Diagnostic> plan_errors(const std::string& text, const Json& overrides = Json::object(),
                                             const std::string& origin = "--param") {
    const PipelineSpec spec = kiln::host::parse_pipeline_text(text, "p.yaml");
    try {
      kiln::host::plan_pipeline(spec, catalog(), overrides, origin);
    } catch (const SpecError& e) {
      return e.diagnostics();
    }
    ADD_FAILURE() << "the pipeline validated without errors";
    return {};
  }

  static inline std::unique_ptr<TempDir> cache_;
  static inline std::unique_ptr<PluginCatalog> catalog_;
};

TEST_F(Validation, CatalogHasTheComponentsTheTestsUse) {
  for (const char* name : {"util.echo", "util.sleep", "util.fail", "util.noop", "sample.greet"})
    EXPECT_NE(catalog().find(name), nullptr) << name;
}

TEST_F(Validation, HelloSampleValidates) {
  const std::string file = std::string(KILN_TEST_SOURCE_DIR) + "/samples/hello/pipeline.yaml";
  const PipelineSpec spec = kiln::host::parse_pipeline_file(file);
  EXPECT_EQ(spec.name, "hello");
  EXPECT_EQ(spec.failure_policy, "stop");
  EXPECT_EQ(spec.timeout_seconds, 600.0);
  const Plan plan = kiln::host::plan_pipeline(spec, catalog(), Json::object());

  EXPECT_EQ(plan.parameters["greeting"], Json("Hello"));
  EXPECT_EQ(plan.parameters["names"], Json::array({"ada", "grace", "linus"}));
  EXPECT_EQ(plan.parameters["mode"], Json("quick"));
  EXPECT_EQ(plan.parameters["pause"], Json(0.2));

  const auto names = names_of(plan);
  ASSERT_EQ(names.size(), 5u);
  EXPECT_LT(index_of(names, "greet"), index_of(names, "per-name"));
  EXPECT_LT(index_of(names, "greet"), index_of(names, "thorough-check"));
  EXPECT_LT(index_of(names, "per-name"), index_of(names, "summary"));
  EXPECT_LT(index_of(names, "thorough-check"), index_of(names, "summary"));
  EXPECT_EQ(names.back(), "report");

  // greet comes from the imported template file.
  const auto* greet = plan.find("greet");
  ASSERT_NE(greet, nullptr);
  EXPECT_EQ(greet->spec.template_name, "echo-retrying");
  EXPECT_EQ(greet->spec.component, "util.echo");
  EXPECT_EQ(greet->spec.version_range, "^1.0");
  EXPECT_EQ(greet->component.manifest.version.str(), "1.0.0");
  EXPECT_EQ(greet->spec.retries.limit, 2);
  EXPECT_DOUBLE_EQ(greet->spec.retries.backoff_seconds, 0.1);
  EXPECT_DOUBLE_EQ(greet->spec.retries.max_backoff_seconds, 1.0);
  EXPECT_EQ(greet->spec.retries.on, (std::set<std::string>{"error", "crash"}));
  EXPECT_EQ(greet->spec.timeout_seconds, 30.0);
  EXPECT_EQ(greet->spec.component_pos.file, std::string(KILN_TEST_SOURCE_DIR) + "/samples/hello/templates.yaml");
  EXPECT_TRUE(greet->upstream.empty());

  const auto* per_name = plan.find("per-name");
  ASSERT_NE(per_name, nullptr);
  EXPECT_EQ(per_name->data_upstream, (std::set<std::string>{"greet"}));
  EXPECT_EQ(per_name->spec.parallelism, 2);

  // After-only dependencies are not data dependencies.
  const auto* check = plan.find("thorough-check");
  ASSERT_NE(check, nullptr);
  EXPECT_EQ(check->component.manifest.name, "util.sleep");
  EXPECT_EQ(check->spec.timeout_seconds, 120.0);
  EXPECT_EQ(check->upstream, (std::set<std::string>{"greet"}));
  EXPECT_TRUE(check->data_upstream.empty());
  ASSERT_TRUE(check->when.has_value());
  EXPECT_EQ(check->when->references(), std::vector<std::string>{"params.mode"});

  const auto* summary = plan.find("summary");
  ASSERT_NE(summary, nullptr);
  EXPECT_EQ(summary->data_upstream, (std::set<std::string>{"greet", "per-name"}));
  EXPECT_EQ(summary->upstream, (std::set<std::string>{"greet", "per-name", "thorough-check"}));

  const auto* report = plan.find("report");
  ASSERT_NE(report, nullptr);
  EXPECT_TRUE(report->spec.is_finally);
  EXPECT_TRUE(report->upstream.empty());
}

TEST_F(Validation, StepsAreOrderedDependenciesFirstAndFinallyLast) {
  const Plan p = plan(R"(apiVersion: kiln/v1
kind: Pipeline
finally:
  - name: cleanup2
    component: util.noop
    after: cleanup1
  - name: cleanup1
    component: util.noop
steps:
  - name: last
    component: util.noop
    after: [middle]
  - name: middle
    component: util.echo
    inputs:
      text: first.outputs.text
  - name: side
    component: util.echo
    parameters:
      message: "{{ steps.first.outputs.message }}"
  - name: first
    component: util.echo
)");
  const auto names = names_of(p);
  ASSERT_EQ(names.size(), 6u);
  EXPECT_LT(index_of(names, "first"), index_of(names, "middle"));
  EXPECT_LT(index_of(names, "middle"), index_of(names, "last"));
  EXPECT_LT(index_of(names, "first"), index_of(names, "side"));
  EXPECT_EQ(names[4], "cleanup1");
  EXPECT_EQ(names[5], "cleanup2");

  EXPECT_EQ(p.find("middle")->data_upstream, (std::set<std::string>{"first"}));
  EXPECT_EQ(p.find("middle")->upstream, (std::set<std::string>{"first"}));
  EXPECT_EQ(p.find("side")->data_upstream, (std::set<std::string>{"first"}));
  EXPECT_TRUE(p.find("last")->data_upstream.empty());
  EXPECT_EQ(p.find("last")->upstream, (std::set<std::string>{"middle"}));
  EXPECT_EQ(p.find("cleanup2")->upstream, (std::set<std::string>{"cleanup1"}));
  EXPECT_TRUE(p.find("cleanup2")->data_upstream.empty());
  EXPECT_EQ(p.find("nothing"), nullptr);
}

TEST_F(Validation, UnknownComponentSuggestsTheClosestName) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.ecoh
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 5, 16, "unknown component 'util.ecoh' (did you mean 'util.echo'?)"));
  EXPECT_THAT(diagnostics[0].message, HasSubstr("kiln plugins list"));
}

TEST_F(Validation, VersionRangeThatNoInstalledVersionSatisfies) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.echo@^2
  - name: b
    component: util.echo@banana
)");
  EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 5, 16, "no version of component 'util.echo' matches '^2' (installed: 1.0.0)"));
  EXPECT_TRUE(HasError(diagnostics, 7, 16, "'banana' is not a version range"));
}

TEST_F(Validation, RequiredPipelineParameterWithoutDefault) {
  const std::string text = R"(apiVersion: kiln/v1
kind: Pipeline
parameters:
  epochs: {type: int}
steps:
  - name: a
    component: util.sleep
    parameters:
      seconds: "{{ params.epochs }}"
)";
  const auto diagnostics = plan_errors(text);
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(
      HasError(diagnostics, 4, 3, "pipeline parameter 'epochs' has no default; set it with --param epochs=VALUE"));
  // An override supplies it; an int is acceptable where a float is expected.
  const Plan p = plan(text, Json{{"epochs", 3}});
  EXPECT_EQ(p.parameters["epochs"], Json(3));
}

TEST_F(Validation, RequiredComponentParameter) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: hi
    component: sample.greet
    parameters:
      times: 2
  - name: ok
    component: sample.greet
    parameters: {name: ada}
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(
      HasError(diagnostics, 4, 5, "step 'hi' is missing required parameter 'name' of component 'sample.greet'"));
}

TEST_F(Validation, ParameterValuesOfTheWrongTypeOrOutOfBounds) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: nap
    component: util.sleep
    parameters:
      seconds: "abc"
  - name: neg
    component: util.sleep
    parameters:
      seconds: -1
  - name: boom
    component: util.fail
    parameters:
      exit_code: 2.5
  - name: big
    component: util.fail
    parameters:
      exit_code: 300
      mode: explode
  - name: fine
    component: util.fail
    parameters: {exit_code: 255, mode: exit, message: "7"}
)");
  EXPECT_EQ(diagnostics.size(), 5u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 7, 17, "parameter 'seconds' of step 'nap': expected float, got \"abc\""));
  EXPECT_TRUE(HasError(diagnostics, 11, 16, "parameter 'seconds' of step 'neg': -1 is below the minimum 0"));
  EXPECT_TRUE(HasError(diagnostics, 15, 18, "parameter 'exit_code' of step 'boom': expected int, got 2.5"));
  EXPECT_TRUE(HasError(diagnostics, 19, 18, "parameter 'exit_code' of step 'big': 300 is above the maximum 255"));
  EXPECT_TRUE(HasError(diagnostics, 20, 13,
                       "parameter 'mode' of step 'big': \"explode\" is not one of: error, throw, segfault, abort, "
                       "kill, hang, exit"));
}

TEST_F(Validation, PlaceholderTypesAreCheckedAgainstTheParameter) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
parameters:
  who: {type: string, default: x}
  n: {type: int, default: 2}
steps:
  - name: g
    component: sample.greet
    parameters: {name: ada}
  - name: a
    component: util.fail
    parameters:
      exit_code: "{{ params.who }}"
  - name: b
    component: util.echo
    parameters:
      message: "{{ steps.g.outputs.words }}"
  - name: fine
    component: util.sleep
    parameters:
      seconds: "{{ params.n }}"
  - name: spliced
    component: util.echo
    parameters:
      message: "{{ params.n }} times"
)");
  EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
  EXPECT_TRUE(
      HasError(diagnostics, 13, 19, "parameter 'exit_code' of step 'a' expects int, but the value is a string"));
  EXPECT_TRUE(HasError(diagnostics, 17, 17, "parameter 'message' of step 'b' expects string, but the value is a int"));
}

TEST_F(Validation, UnknownComponentParameter) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.echo
    parameters:
      mesage: hi
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(
      HasError(diagnostics, 7, 15, "component 'util.echo' has no parameter 'mesage' (did you mean 'message'?)"));
}

TEST_F(Validation, InputWiringErrors) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: greet
    component: util.echo
  - name: a
    component: util.echo
    inputs:
      text: nowhere.outputs.text
  - name: b
    component: util.echo
    inputs:
      text: greet.outputs.txt
  - name: c
    component: util.echo
    inputs:
      texts: greet.outputs.text
  - name: d
    component: util.echo
    inputs:
      text: d.outputs.text
)");
  EXPECT_EQ(diagnostics.size(), 4u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 9, 13, "input 'text' is wired to unknown step 'nowhere'"));
  EXPECT_TRUE(HasError(diagnostics, 13, 13, "step 'greet' (util.echo) has no output 'txt' (did you mean 'text'?)"));
  EXPECT_TRUE(HasError(diagnostics, 17, 14, "component 'util.echo' has no input 'texts' (did you mean 'text'?)"));
  EXPECT_TRUE(HasError(diagnostics, 21, 13, "step 'd' depends on itself"));
}

TEST_F(Validation, UnknownReferencesInPlaceholdersAndConditions) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
parameters:
  who: {type: string, default: world}
steps:
  - name: greet
    component: util.echo
  - name: a
    component: util.echo
    parameters:
      message: "hi {{ steps.nope.outputs.message }}"
  - name: b
    component: util.echo
    parameters:
      message: "{{ steps.greet.outputs.mesage }} and {{ params.whom }}"
  - name: c
    component: util.echo
    when: steps.greet.outputs.message == 'x' and steps.gret.outputs.message != ''
  - name: d
    component: util.echo
    when: "params.who == 'x' or params.wh == 'y'"
  - name: e
    component: util.echo
    when: "steps.greet.message == 'x' or paramz.who"
)");
  EXPECT_EQ(diagnostics.size(), 7u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 11, 23, "unknown step 'nope'"));
  EXPECT_TRUE(HasError(diagnostics, 15, 20,
                       "step 'greet' (util.echo) has no output parameter 'mesage' (did you mean 'message'?)"));
  EXPECT_TRUE(HasError(diagnostics, 15, 57, "unknown pipeline parameter 'whom' (did you mean 'who'?)"));
  EXPECT_TRUE(HasError(diagnostics, 18, 50, "unknown step 'gret' (did you mean 'greet'?)"));
  EXPECT_TRUE(HasError(diagnostics, 21, 33, "unknown pipeline parameter 'wh' (did you mean 'who'?)"));
  EXPECT_TRUE(HasError(diagnostics, 24, 12, "'steps.greet.message' must have the form steps.STEP.outputs.NAME"));
  EXPECT_TRUE(HasError(diagnostics, 24, 42, "unknown reference 'paramz.who'"));
}

TEST_F(Validation, ExpressionSyntaxErrorsPointIntoTheExpression) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.echo
    when: params.x == == 1
  - name: b
    component: util.echo
    parameters:
      message: "x {{ 1 + }}"
)");
  EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 6, 23, "in 'when': unexpected '==', expected a value"));
  // The expression language has no '+': the error points at it inside the quoted string.
  EXPECT_TRUE(HasError(diagnostics, 10, 24, "unexpected character '+'"));
}

TEST_F(Validation, ItemOutsideALoopAndRunStatusOutsideFinally) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.echo
    parameters:
      message: "{{ item }}"
  - name: b
    component: util.echo
    when: run.status == 'Succeeded'
finally:
  - name: report
    component: util.echo
    parameters:
      message: "{{ run.status }} {{ run.statu }}"
  - name: loop
    component: util.echo
    for_each: [1, 2]
    parameters:
      message: "{{ item }} of {{ run.failed_steps }}"
)");
  EXPECT_EQ(diagnostics.size(), 3u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 7, 20, "'item' is only defined in a step with for_each"));
  EXPECT_TRUE(HasError(diagnostics, 10, 11, "'run.status' is only defined in finally steps"));
  EXPECT_TRUE(HasError(diagnostics, 15, 37, "unknown run field 'run.statu' (did you mean 'run.status'?)"));
}

TEST_F(Validation, CyclesAndSelfDependencies) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.noop
    after: [b]
  - name: b
    component: util.noop
    after: a
  - name: c
    component: util.noop
    after: [c]
)");
  EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 4, 5, "steps form a cycle: a -> b -> a"));
  EXPECT_TRUE(HasError(diagnostics, 12, 13, "step 'c' depends on itself"));
}

TEST_F(Validation, LongerCycleThroughDataDependencies) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: x
    component: util.echo
    inputs: {text: z.outputs.text}
  - name: y
    component: util.echo
    parameters: {message: "{{ steps.x.outputs.message }}"}
  - name: z
    component: util.echo
    when: steps.y.outputs.message == ''
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 4, 5, "steps form a cycle: x -> z -> y -> x"));
}

TEST_F(Validation, DuplicateStepNames) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.noop
  - name: a
    component: util.noop
finally:
  - name: a
    component: util.noop
)");
  EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 6, 5, "duplicate step name 'a' (first defined at p.yaml:4:5)"));
  EXPECT_TRUE(HasError(diagnostics, 9, 5, "duplicate step name 'a' (first defined at p.yaml:4:5)"));
}

TEST_F(Validation, FinallyAndMainStepsCannotDependOnEachOther) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.echo
  - name: m
    component: util.echo
    after: [r]
finally:
  - name: r
    component: util.echo
    after: [a]
    parameters:
      message: "{{ steps.a.outputs.message }}"
  - name: s
    component: util.echo
    inputs:
      text: a.outputs.text
)");
  EXPECT_EQ(diagnostics.size(), 4u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 8, 13, "step 'm' cannot depend on finally step 'r'"));
  EXPECT_TRUE(HasError(diagnostics, 12, 13, "finally step 'r' may depend only on other finally steps, not on 'a'"));
  EXPECT_TRUE(HasError(diagnostics, 14, 20, "finally step 'r' may depend only on other finally steps, not on 'a'"));
  EXPECT_TRUE(HasError(diagnostics, 18, 13, "finally step 's' may depend only on other finally steps, not on 'a'"));
}

TEST_F(Validation, AfterNamesUnknownStep) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: prepare
    component: util.noop
  - name: a
    component: util.noop
    after: [prepair]
)");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 8, 13, "'after' names unknown step 'prepair' (did you mean 'prepare'?)"));
}

TEST_F(Validation, ForEachMustBeAList) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
parameters:
  who: {type: string, default: x}
  names: {type: list, default: [a, b]}
steps:
  - name: a
    component: util.echo
    for_each: "{{ params.who }}"
  - name: b
    component: util.echo
    for_each: 5
  - name: c
    component: util.echo
    for_each: "{{ params.names }}"
    parameters: {message: "{{ item }}"}
  - name: d
    component: util.echo
    for_each: "{{ steps.c.outputs.message }}"
)");
  EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 9, 16, "'for_each' needs a list, but the reference is a string"));
  EXPECT_TRUE(HasError(diagnostics, 12, 15, "'for_each' must be a list or one reference to a list"));
}

TEST_F(Validation, ALiteralForEachHasAtMostTheItemLimit) {
  std::string items;
  for (size_t i = 0; i <= kiln::host::kMaxForEachItems; ++i) items += (i ? ", " : "") + std::to_string(i);
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: many
    component: util.echo
    for_each: [)" + items + R"(]
  - name: enough
    component: util.echo
    for_each: [1, 2, 3]
)");
  EXPECT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, 6, 15, "'for_each' has 10001 items, more than the limit of 10000"))
      << dump(diagnostics);
}

TEST_F(Validation, ParameterOverrides) {
  const std::string text = R"(apiVersion: kiln/v1
kind: Pipeline
parameters:
  epochs: {type: int, default: 3, min: 1, max: 100}
  mode: {type: string, default: quick, choices: [quick, full]}
steps:
  - name: a
    component: util.noop
)";
  auto diagnostics = plan_errors(text, Json{{"epoch", 5}});
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_EQ(diagnostics[0].pos.file, "--param");
  EXPECT_THAT(diagnostics[0].message, HasSubstr("the pipeline has no parameter 'epoch' (did you mean 'epochs'?)"));

  diagnostics = plan_errors(text, Json{{"epochs", "many"}, {"mode", "fast"}});
  EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
  for (const auto& d : diagnostics) EXPECT_EQ(d.pos.file, "--param");
  EXPECT_TRUE(HasError(diagnostics, "--param", 0, 0, "parameter 'epochs': expected int, got \"many\""));
  EXPECT_TRUE(HasError(diagnostics, "--param", 0, 0, "parameter 'mode': \"fast\" is not one of: quick, full"));

  diagnostics = plan_errors(text, Json{{"epochs", 500}}, "overrides.json");
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_EQ(diagnostics[0].pos.file, "overrides.json");
  EXPECT_THAT(diagnostics[0].message, HasSubstr("parameter 'epochs': 500 is above the maximum 100"));

  diagnostics = plan_errors(text, Json{{"epochs", 0}});
  ASSERT_EQ(diagnostics.size(), 1u) << dump(diagnostics);
  EXPECT_THAT(diagnostics[0].message, HasSubstr("parameter 'epochs': 0 is below the minimum 1"));

  const Plan p = plan(text, Json{{"epochs", 7}, {"mode", "full"}});
  EXPECT_EQ(p.parameters, (Json{{"epochs", 7}, {"mode", "full"}}));
  EXPECT_EQ(plan(text).parameters, (Json{{"epochs", 3}, {"mode", "quick"}}));
}

TEST_F(Validation, AllErrorsAreReportedSortedByPosition) {
  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
parameters:
  required: {type: string}
steps:
  - name: a
    component: util.slep
  - name: b
    component: util.fail
    parameters:
      exit_code: 999
    after: [ghost]
  - name: c
    component: util.echo
    when: params.mod == 'x'
  - name: d
    component: util.noop
    after: d
)",
                                       Json{{"extra", 1}});
  EXPECT_EQ(diagnostics.size(), 7u) << dump(diagnostics);
  EXPECT_TRUE(HasError(diagnostics, "--param", 0, 0, "the pipeline has no parameter 'extra'"));
  EXPECT_TRUE(HasError(diagnostics, 4, 3, "pipeline parameter 'required' has no default"));
  EXPECT_TRUE(HasError(diagnostics, 7, 16, "unknown component 'util.slep' (did you mean 'util.sleep'?)"));
  EXPECT_TRUE(HasError(diagnostics, 11, 18, "parameter 'exit_code' of step 'b': 999 is above the maximum 255"));
  EXPECT_TRUE(HasError(diagnostics, 12, 13, "'after' names unknown step 'ghost'"));
  EXPECT_TRUE(HasError(diagnostics, 15, 11, "unknown pipeline parameter 'mod'"));
  EXPECT_TRUE(HasError(diagnostics, 18, 12, "step 'd' depends on itself"));
  const auto key = [](const Diagnostic& d) { return std::tie(d.pos.file, d.pos.line, d.pos.column); };
  EXPECT_TRUE(std::is_sorted(diagnostics.begin(), diagnostics.end(), [&](const Diagnostic& x, const Diagnostic& y) {
    return key(x) < key(y);
  })) << dump(diagnostics);
  try {
    plan(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.slep
  - name: b
    component: util.fial
)");
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    EXPECT_STREQ(e.what(),
                 "p.yaml:5:16: unknown component 'util.slep' (did you mean 'util.sleep'?); 'kiln plugins list' shows "
                 "what is installed; to install it from a registry: kiln plugin install util.slep --registry URL\n"
                 "p.yaml:7:16: unknown component 'util.fial' (did you mean 'util.fail'?); 'kiln plugins list' shows "
                 "what is installed; to install it from a registry: kiln plugin install util.fial --registry URL");
  }
}

TEST_F(Validation, ImportedTemplatesAreAppliedAndTheirErrorsNameTheirFile) {
  TempDir dir;
  const std::string templates = (dir / "lib" / "templates.yaml").string();
  kiln::test::write_text(templates, R"(apiVersion: kiln/v1
kind: Templates
templates:
  failing:
    component: util.fail
    parameters:
      mode: exit
      exit_code: 7
    timeout: 30s
    retries: {limit: 2, on: [error]}
  broken:
    component: util.sleep
    parameters:
      seconds: "{{ params.nope }}"
)");
  kiln::test::write_text(dir / "pipeline.yaml", R"(apiVersion: kiln/v1
kind: Pipeline
imports:
  - lib/templates.yaml
steps:
  - name: a
    template: failing
    timeout: 1m
  - name: b
    template: failing
    parameters:
      exit_code: 9
)");
  const std::string file = (dir / "pipeline.yaml").string();
  const Plan p = kiln::host::plan_pipeline(kiln::host::parse_pipeline_file(file), catalog(), Json::object());
  const auto* a = p.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->component.manifest.name, "util.fail");
  EXPECT_EQ(a->spec.template_name, "failing");
  EXPECT_EQ(a->spec.timeout_seconds, 60.0);
  EXPECT_EQ(a->spec.retries.limit, 2);
  EXPECT_EQ(a->spec.retries.on, (std::set<std::string>{"error"}));
  ASSERT_EQ(a->spec.parameters.size(), 2u);
  EXPECT_EQ(a->spec.parameters.at("exit_code").value, Json(7));
  EXPECT_EQ(a->spec.parameters.at("exit_code").pos.file, templates);
  EXPECT_EQ(a->spec.parameters.at("exit_code").pos.line, 8);
  EXPECT_EQ(a->spec.parameters.at("exit_code").pos.column, 18);
  const auto* b = p.find("b");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->spec.parameters.size(), 2u);
  EXPECT_EQ(b->spec.parameters.at("mode").value, Json("exit"));  // kept from the template
  EXPECT_EQ(b->spec.parameters.at("exit_code").value, Json(9));  // the step's own value wins
  EXPECT_EQ(b->spec.parameters.at("exit_code").pos.file, file);
  EXPECT_EQ(b->spec.parameters.at("exit_code").pos.line, 12);
  EXPECT_EQ(b->spec.timeout_seconds, 30.0);

  // A problem in a template is reported where the template says it.
  kiln::test::write_text(dir / "pipeline.yaml", R"(apiVersion: kiln/v1
kind: Pipeline
imports: [lib/templates.yaml]
steps:
  - {name: a, template: broken}
)");
  try {
    kiln::host::plan_pipeline(kiln::host::parse_pipeline_file(file), catalog(), Json::object());
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    ASSERT_EQ(e.diagnostics().size(), 1u) << dump(e.diagnostics());
    EXPECT_TRUE(HasError(e.diagnostics(), templates, 14, 20, "unknown pipeline parameter 'nope'"));
  }
}

// A second catalog where the shadow fixture's util.echo 9.9.9 comes first
// on the path (so it is the active one) and util's 1.0.0 is shadowed.
class VersionRanges : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shadow_ = std::make_unique<TempDir>();
    fs::copy_file(kiln::test::fixture("fixture_shadow_echo"), shadow_->path() / "shadow.so");
    kiln::host::LibraryScanner scanner({kiln::test::kiln_exe(), kiln::test::scan_cache(), std::chrono::seconds(20)});
    catalog_ = std::make_unique<PluginCatalog>(
        PluginCatalog::discover(scanner, {shadow_->path(), kiln::test::util_plugin().parent_path()}));
  }
  static void TearDownTestSuite() {
    catalog_.reset();
    shadow_.reset();
  }

  static Plan plan_one(const std::string& component) {
    return kiln::host::plan_pipeline(
        kiln::host::parse_pipeline_text(
            "apiVersion: kiln/v1\nkind: Pipeline\nsteps:\n  - name: a\n    component: " + component + "\n", "p.yaml"),
        *catalog_, Json::object());
  }

  static inline std::unique_ptr<TempDir> shadow_;
  static inline std::unique_ptr<PluginCatalog> catalog_;
};

TEST_F(VersionRanges, RangePicksTheVersionItAccepts) {
  EXPECT_EQ(plan_one("util.echo@^1").steps.at(0).component.manifest.version.str(), "1.0.0");
  EXPECT_EQ(plan_one("util.echo@^1").steps.at(0).component.library.parent_path(),
            kiln::test::util_plugin().parent_path());
  EXPECT_EQ(plan_one("util.echo@^9").steps.at(0).component.manifest.version.str(), "9.9.9");
  EXPECT_EQ(plan_one("util.echo@^9").steps.at(0).component.library, shadow_->path() / "shadow.so");
  EXPECT_EQ(plan_one("util.echo@>=1.0").steps.at(0).component.manifest.version.str(), "9.9.9");  // the highest
  EXPECT_EQ(plan_one("util.echo").steps.at(0).component.manifest.version.str(), "9.9.9");        // the active one
}

TEST_F(VersionRanges, ParametersAreCheckedAgainstTheChosenVersion) {
  const std::string text = R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.echo@^1
    parameters: {message: hi}
  - name: b
    component: util.echo@^9
    parameters: {message: hi}
  - name: c
    component: util.echo@^3
)";
  try {
    kiln::host::plan_pipeline(kiln::host::parse_pipeline_text(text, "p.yaml"), *catalog_, Json::object());
    FAIL() << "expected a SpecError";
  } catch (const SpecError& e) {
    const auto& diagnostics = e.diagnostics();
    EXPECT_EQ(diagnostics.size(), 2u) << dump(diagnostics);
    // 9.9.9 declares no parameters; 1.0.0 does.
    EXPECT_TRUE(HasError(diagnostics, 9, 27, "component 'util.echo' has no parameter 'message'"));
    EXPECT_TRUE(HasError(diagnostics, 11, 16, "no version of component 'util.echo' matches '^3' (installed: "));
    for (const auto& d : diagnostics)
      if (d.pos.line == 11) {
        EXPECT_THAT(d.message, HasSubstr("1.0.0"));
        EXPECT_THAT(d.message, HasSubstr("9.9.9"));
      }
  }
}

}  // namespace

TEST_F(Validation, InputsWiredToAnOutputOfAnotherArtifactTypeAreRejected) {
  const auto errors = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: make
    component: fixture.make-dataset
  - name: use
    component: fixture.use-model
    inputs: {model: make.outputs.data}
  - name: any
    component: fixture.use-model
    inputs: {model: make.outputs.anything}
)");
  ASSERT_EQ(errors.size(), 1u) << errors.front().str();
  EXPECT_EQ(errors[0].str(), "p.yaml:8:21: input 'model' of step 'use' takes Model, but make.outputs.data is Dataset");
}

// ---- tuning steps (issue 7) ------------------------------------------------

TEST(Spec, ReadsATuneBlock) {
  const PipelineSpec spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: t
    component: util.sleep
    tune:
      tuner: tune.asha
      objective: {metric: loss, goal: minimize}
      space:
        seconds: {type: uniform, low: 0.0, high: 0.1}
      settings: {max_resource: 9}
      early_stopping: {rule: median, grace_steps: 2}
      max_trials: 12
      parallel_trials: 3
      max_failed_trials: 2
      seed: 5
)",
                                                            "p.yaml");
  ASSERT_TRUE(spec.steps.at(0).tune.has_value());
  const auto& tune = *spec.steps[0].tune;
  EXPECT_EQ(tune.tuner, "tune.asha");
  EXPECT_EQ(tune.metric, "loss");
  EXPECT_FALSE(tune.maximize);
  EXPECT_EQ(tune.max_trials, 12);
  EXPECT_EQ(tune.parallel_trials, 3);
  EXPECT_EQ(tune.max_failed_trials, 2);
  EXPECT_EQ(tune.seed, 5);
  const Json config = tune.tuner_config();
  EXPECT_EQ(config["objective"], Json::parse(R"({"metric": "loss", "goal": "minimize"})"));
  EXPECT_EQ(config["space"]["seconds"]["high"], Json(0.1));
  EXPECT_EQ(config["settings"]["max_resource"], Json(9));
  EXPECT_EQ(config["early_stopping"]["rule"], Json("median"));
  // A tuner's error naming a field is reported where the field was written.
  EXPECT_EQ(tune.position_of("space.seconds.low").str(), "p.yaml:10:39");
  EXPECT_EQ(tune.position_of("space.seconds.nonsense").str(), "p.yaml:10:18");
  EXPECT_EQ(tune.position_of("objective").str(), "p.yaml:8:18");
}

TEST(Spec, BadTuneBlocks) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.sleep
    for_each: [1, 2]
    tune:
      objective: {goal: up}
      space: {seconds: {low: 0}}
      max_trial: 3
      seed: -1
  - name: b
    component: util.sleep
    tune: {tuner: tune.random}
)");
  EXPECT_TRUE(HasError(diagnostics, 4, 5, "step 'a' has both 'tune' and 'for_each'"));
  EXPECT_TRUE(HasError(diagnostics, 8, 7, "'tune' needs a 'tuner'"));
  EXPECT_TRUE(HasError(diagnostics, 8, 18, "'tune.objective' needs a 'metric'"));
  EXPECT_TRUE(HasError(diagnostics, 8, 25, "'tune.objective.goal' must be maximize or minimize, not 'up'"));
  EXPECT_TRUE(HasError(diagnostics, 9, 24, "space entry 'seconds' needs a type"));
  EXPECT_TRUE(HasError(diagnostics, 10, 7, "unknown key 'max_trial' in tune (did you mean 'max_trials'?)"));
  EXPECT_TRUE(HasError(diagnostics, 11, 13, "'tune.seed' must be a whole number"));
  EXPECT_TRUE(HasError(diagnostics, 14, 11, "'tune' needs an 'objective'"));
  EXPECT_TRUE(HasError(diagnostics, 14, 11, "'tune' needs a 'space'"));
}

// Issue 23: `objectives:` (several metrics with goals) instead of `objective:`.
TEST(Spec, ReadsSeveralObjectives) {
  const PipelineSpec spec = kiln::host::parse_pipeline_text(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: t
    component: util.objective
    tune:
      tuner: tune.random
      objectives: [{metric: loss, goal: minimize}, {metric: cost}]
      space: {x: {type: uniform, low: 0, high: 1}}
)",
                                                "p.yaml");
  const kiln::host::TuneSpec& tune = *spec.steps.at(0).tune;
  ASSERT_EQ(tune.objectives.size(), 2u);
  EXPECT_EQ(tune.metric, "loss");  // the first is also the step's objective
  EXPECT_FALSE(tune.maximize);
  EXPECT_EQ(tune.objectives[1].metric, "cost");
  EXPECT_TRUE(tune.objectives[1].maximize);
  EXPECT_EQ(tune.tuner_config()["objectives"],
            Json::parse(R"([{"metric": "loss", "goal": "minimize"}, {"metric": "cost", "goal": "maximize"}])"));
  EXPECT_EQ(tune.position_of("objectives").line, 8);
}

TEST(Spec, BadObjectives) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: a
    component: util.objective
    tune:
      tuner: tune.random
      objective: {metric: loss}
      objectives: [{metric: loss}, {metric: cost}]
      space: {x: {type: uniform, low: 0, high: 1}}
  - name: b
    component: util.objective
    tune:
      tuner: tune.random
      objectives: [{metric: loss}]
      space: {x: {type: uniform, low: 0, high: 1}}
  - name: c
    component: util.objective
    tune:
      tuner: tune.random
      objectives: [{metric: loss}, {goal: down}, {metric: loss}]
      space: {x: {type: uniform, low: 0, high: 1}}
)");
  EXPECT_TRUE(HasError(diagnostics, 9, 19, "'tune' takes 'objective' or 'objectives', not both"));
  EXPECT_TRUE(HasError(diagnostics, 15, 19, "'tune.objectives' must be a list of two or more"));
  EXPECT_TRUE(HasError(diagnostics, 21, 36, "'tune.objectives[1]' needs a 'metric'"));
  EXPECT_TRUE(HasError(diagnostics, 21, 43, "'tune.objectives[1].goal' must be maximize or minimize, not 'down'"));
  EXPECT_TRUE(HasError(diagnostics, 21, 50, "'tune.objectives' names metric 'loss' twice"));
}

TEST_F(Validation, TuningStepAgainstTheCatalog) {
  const Plan p = plan(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: t
    component: util.sleep
    tune:
      tuner: tune.tpe
      objective: {metric: loss}
      space: {seconds: {type: uniform, low: 0.0, high: 0.1}}
  - name: after
    component: util.echo
    parameters:
      message: "best {{ steps.t.outputs.best_seconds }} of {{ steps.t.outputs.best_trial }}"
)");
  const auto* t = p.find("t");
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(t->tuner.has_value());
  EXPECT_EQ(t->tuner->manifest.name, "tune.tpe");
  EXPECT_EQ(p.find("after")->upstream, (std::set<std::string>{"t"}));

  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
steps:
  - name: t
    component: util.sleep
    tune:
      tuner: tune.annealing
      objective: {metric: loss}
      space: {secs: {type: uniform, low: 0.0, high: 0.1}}
  - name: u
    component: util.sleep
    tune:
      tuner: util.echo
      objective: {metric: loss}
      space: {seconds: {type: uniform, low: 0.0, high: 0.1}}
  - name: after
    component: util.echo
    parameters:
      message: "{{ steps.u.outputs.best_second }}"
)");
  EXPECT_TRUE(HasError(diagnostics, 7, 14, "unknown tuner 'tune.annealing'"));
  EXPECT_TRUE(
      HasError(diagnostics, 9, 21, "space parameter 'secs' is not a parameter of the trial component 'util.sleep'"));
  EXPECT_TRUE(HasError(diagnostics, 13, 14, "component 'util.echo' is not a tuner"));
  EXPECT_TRUE(HasError(diagnostics, 19, 20,
                       "tuning step 'u' has no output parameter 'best_second' (did you mean 'best_seconds'?)"));
}

// A trial template (tune.trial): its steps are planned one by one, with the
// tuning step's parameters and inputs merged into those that declare them;
// wires between them stay inside the trial, wires out of it make the tuning
// step depend on their source.
TEST_F(Validation, TuningStepWithATrialTemplate) {
  const Plan p = plan(R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  fit-and-report:
    steps:
      - name: fit
        component: util.objective
        after: prepare
      - name: prepare
        component: util.echo
        parameters: {message: data}
      - name: report
        component: util.echo
        inputs: {text: prepare.outputs.text}
        after: fit
steps:
  - name: source
    component: util.echo
  - name: t
    parameters: {epochs: 3, message: shared}
    tune:
      trial: fit-and-report
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {x: {type: uniform, low: 0.0, high: 1.0}, y: {type: int, low: 0, high: 3}}
  - name: use
    component: util.echo
    inputs: {text: t.outputs.text}
    parameters: {message: "x={{ steps.t.outputs.best_x }}"}
)");
  const auto* t = p.find("t");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->trial_steps.size(), 3u);
  const auto& fit = t->trial_steps[0];
  EXPECT_EQ(fit.component.manifest.name, "util.objective");
  EXPECT_EQ(fit.upstream, (std::set<std::string>{"prepare"}));
  EXPECT_EQ(fit.spec.parameters.at("epochs").value, 3);
  EXPECT_FALSE(fit.spec.parameters.count("message"));                          // util.objective has none
  EXPECT_EQ(t->trial_steps[1].spec.parameters.at("message").value, "shared");  // the tuning step's value wins
  EXPECT_EQ(t->trial_steps[2].upstream, (std::set<std::string>{"fit", "prepare"}));
  EXPECT_TRUE(t->upstream.empty());  // sibling wires are not the tuning step's dependencies
  EXPECT_EQ(p.find("use")->upstream, (std::set<std::string>{"t"}));

  const auto diagnostics = plan_errors(R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  pair:
    steps:
      - name: fit
        component: util.objective
        inputs: {text: nowhere.outputs.text}
      - name: report
        component: util.echo
        inputs: {text: fit.outputs.text}
steps:
  - name: t
    parameters: {epoch: 3}
    tune:
      trial: pair
      tuner: tune.grid
      objective: {metric: loss, goal: minimize}
      space: {z: {type: uniform, low: 0.0, high: 1.0}}
  - name: use
    component: util.echo
    inputs: {text: t.outputs.txt}
)");
  EXPECT_TRUE(HasError(diagnostics, 8, 24, "component 'util.objective' has no input 'text'"));
  EXPECT_TRUE(HasError(diagnostics, 8, 24, "input 'text' is wired to unknown step 'nowhere'"));
  EXPECT_TRUE(HasError(diagnostics, 11, 24, "step 'fit' (util.objective) has no output 'text'"));
  EXPECT_TRUE(HasError(diagnostics, 14, 25, "'epoch' is not a parameter of any step of trial template 'pair'"));
  EXPECT_TRUE(
      HasError(diagnostics, 19, 18, "space parameter 'z' is not a parameter of any step of trial template 'pair'"));
  EXPECT_TRUE(
      HasError(diagnostics, 22, 20, "step 't' (trial template 'pair') has no output 'txt' (did you mean 'text'?)"));
}

TEST(Spec, BadTrialTemplates) {
  const auto diagnostics = parse_errors(R"(apiVersion: kiln/v1
kind: Pipeline
templates:
  one: {component: util.echo}
  many:
    steps:
      - name: a
        component: util.sleep
        for_each: [1, 2]
steps:
  - name: a
    template: many
  - name: b
    component: util.sleep
    tune: {tuner: tune.random, objective: {metric: loss}, space: {seconds: {type: uniform}}, trial: many}
  - name: c
    tune: {tuner: tune.random, objective: {metric: loss}, space: {seconds: {type: uniform}}, trial: one}
  - name: d
    tune: {tuner: tune.random, objective: {metric: loss}, space: {seconds: {type: uniform}}, trial: mony}
)");
  EXPECT_TRUE(HasError(diagnostics, 12, 15, "template 'many' has several steps: only a tuning step can run it"));
  EXPECT_TRUE(HasError(diagnostics, 14, 16, "step 'b' names both a component and 'tune.trial'"));
  EXPECT_TRUE(HasError(diagnostics, 7, 9, "step 'a' of trial template 'many' cannot use 'for_each'"));
  EXPECT_TRUE(HasError(diagnostics, 17, 101, "template 'one' has no 'steps'"));
  EXPECT_TRUE(HasError(diagnostics, 19, 101, "unknown template 'mony' (did you mean 'many'?)"));
}

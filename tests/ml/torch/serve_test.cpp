// kiln serve over real HTTP on 127.0.0.1 (ephemeral ports): every endpoint
// and error status, predictions equal to offline ones, dynamic batching, hot
// reload under load, SIGTERM drain and a TorchScript model from PyTorch.
// Responses are checked against the Open Inference Protocol's OpenAPI file
// (tests/fixtures/open-inference-protocol). No assertion is on wall time.
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <gtest/gtest.h>
#include <torch/version.h>
#include <kiln/host/plugin_library.hpp>
#include <kiln/host/yaml_json.hpp>
#include <kiln/serve/server.hpp>
#include <kiln/ui/ui_server.hpp>

#include <atomic>
#include <cmath>
#include <csignal>
#include <limits>
#include <sstream>
#include <thread>

#include "device.hpp"
#include "predict.hpp"
#include "raw_http_client.hpp"
#include "test_support.hpp"
#include "torch_test_data.hpp"
#include "transform.hpp"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;
using host::Json;

struct Response {
  int status = 0;
  std::string body;
  Json json() const { return Json::parse(body); }
};

Response http(uint16_t port, const std::string& method, const std::string& path, const std::string& body = "") {
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(60, 0));
  Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  if (method == "POST") {
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
  }
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  std::ostringstream out;
  out << in.rdbuf();
  return {static_cast<int>(response.getStatus()), out.str()};
}

// ------------------------------------------------ OpenAPI conformance checks

Json openapi() {
  return host::parse_yaml_value(read_text(fs::path(KILN_TEST_SOURCE_DIR) / "tests" / "fixtures" /
                                          "open-inference-protocol" / "open_inference_rest.yaml"));
}

// Checks `value` against an OpenAPI 3.0 schema (type, required, properties,
// items, anyOf, $ref); returns the first problem, "" when it conforms.
std::string check_schema(const Json& spec, const Json& schema, const Json& value, const std::string& at) {
  if (schema.contains("$ref")) {
    const auto ref = schema["$ref"].get<std::string>();
    const auto name = ref.substr(ref.rfind('/') + 1);
    return check_schema(spec, spec["components"]["schemas"][name], value, at);
  }
  if (schema.contains("anyOf")) {
    for (const auto& option : schema["anyOf"])
      if (check_schema(spec, option, value, at).empty()) return "";
    return at + ": matches none of anyOf";
  }
  const std::string type = schema.value("type", "");
  if (type == "object") {
    if (!value.is_object()) return at + ": not an object";
    if (schema.contains("required"))
      for (const auto& r : schema["required"])
        if (!value.contains(r.get<std::string>())) return at + ": missing required '" + r.get<std::string>() + "'";
    if (schema.contains("properties"))
      for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it)
        if (value.contains(it.key())) {
          const auto problem = check_schema(spec, it.value(), value[it.key()], at + "." + it.key());
          if (!problem.empty()) return problem;
        }
  } else if (type == "array") {
    if (!value.is_array()) return at + ": not an array";
    if (schema.contains("items"))
      for (size_t i = 0; i < value.size(); ++i) {
        const auto problem = check_schema(spec, schema["items"], value[i], at + "[" + std::to_string(i) + "]");
        if (!problem.empty()) return problem;
      }
  } else if (type == "string" && !value.is_string()) {
    return at + ": not a string";
  } else if (type == "integer" && !value.is_number_integer()) {
    return at + ": not an integer";
  } else if (type == "number" && !value.is_number()) {
    return at + ": not a number";
  } else if (type == "boolean" && !value.is_boolean()) {
    return at + ": not a boolean";
  }
  return "";
}

// The response schema of `path_key` for `method` and `status` (nullopt when
// the spec gives none), e.g. ("/v2/", "get", "200").
void expect_conforms(const Response& r, const std::string& path_key, const std::string& method) {
  static const auto spec = openapi();
  ASSERT_TRUE(spec["paths"].contains(path_key)) << path_key;
  const auto& op = spec["paths"][path_key][method];
  const auto status = std::to_string(r.status);
  ASSERT_TRUE(op.contains("responses")) << path_key;
  if (!op["responses"].contains(status)) {
    // Statuses the spec does not list (404, 413, 503) still carry the error object.
    const Json error_schema = {{"$ref", "#/components/schemas/inference_error_response"}};
    EXPECT_EQ(check_schema(spec, error_schema, r.json(), "body"), "") << r.body;
    return;
  }
  const auto& response = op["responses"][status];
  if (!response.contains("content")) return;
  const auto& schema = response["content"]["application/json"]["schema"];
  EXPECT_EQ(check_schema(spec, schema, r.json(), "body"), "") << path_key << " " << r.body;
}

// --------------------------------------------------------------- fixtures

const KilnServingApi* torch_runtime(const std::string& name) {
  const auto library = host::PluginLibrary::load(KILN_TEST_TORCH_PLUGIN);
  const auto* component = library->find(name);
  return component != nullptr ? component->serving : nullptr;
}

// A standardising transform fitted on `data` (so serving must apply it).
ml::Transform standardize(const ml::Dataset& data) {
  ml::Transform t;
  t.input_shape = data.schema.feature_shape;
  t.input_columns = data.schema.columns;
  t.output_columns = data.schema.columns;
  ml::TransformOp op;
  op.kind = ml::TransformOpKind::Affine;
  op.method = "standardize";
  const int64_t d = data.schema.feature_shape[0];
  const auto values = data.features.to_float();
  const auto rows = static_cast<int64_t>(values.size()) / d;
  for (int64_t c = 0; c < d; ++c) {
    double sum = 0, sq = 0;
    for (int64_t r = 0; r < rows; ++r) sum += values[r * d + c];
    const double mean = sum / rows;
    for (int64_t r = 0; r < rows; ++r) sq += (values[r * d + c] - mean) * (values[r * d + c] - mean);
    op.columns.push_back(c);
    op.shift.push_back(mean);
    op.scale.push_back(1.0 / std::sqrt(sq / rows + 1e-12));
  }
  t.ops.push_back(op);
  return t;
}

struct TrainedModel {
  fs::path model;  // the Model artifact (with transform/)
  ml::Dataset test_raw;
  std::vector<float> offline;  // predictions on test_raw, [rows, classes]
  int64_t classes = 3;
};

TrainedModel train_model(const fs::path& dir) {
  const auto train_raw = blobs(150, 3, 4, 1);
  TrainedModel m;
  m.test_raw = blobs(40, 3, 4, 2);
  // Shift the raw features so the transform matters.
  const auto transform = standardize(train_raw);
  ml::save_transform(dir / "transform", transform);
  const auto train_dir = save(dir / "train", ml::apply_transform(transform, train_raw));
  RecordingSink sink;
  const auto outcome = train(dir / "step",
                             {{"architecture", "mlp"},
                              {"hidden_sizes", Json::array({8})},
                              {"epochs", 3},
                              {"batch_size", 16},
                              {"threads", 1},
                              {"seed", 3}},
                             sink, train_dir, {}, dir / "transform");
  EXPECT_TRUE(outcome.ok) << outcome.message;
  m.model = dir / "step" / "out" / "model";
  const auto p = ml::predict_dataset(m.model, ml::apply_transform(transform, m.test_raw), 1024, 1);
  m.offline = p.values;
  m.classes = p.width;
  return m;
}

void copy_version(const fs::path& model, const fs::path& repo_model, int version) {
  const auto staging = repo_model / (".staging" + std::to_string(version));
  fs::create_directories(repo_model);
  fs::copy(model, staging, fs::copy_options::recursive);
  fs::rename(staging, repo_model / std::to_string(version));
}

std::vector<float> rows_of(const ml::Dataset& data, int64_t first, int64_t count) {
  const auto all = data.features.to_float();
  const int64_t d = data.schema.feature_shape[0];
  return {all.begin() + first * d, all.begin() + (first + count) * d};
}

std::string infer_body(const std::vector<float>& rows, int64_t d, const std::string& id = "",
                       const std::string& datatype = "FP32") {
  Json j{{"inputs", Json::array({{{"name", "input"},
                                  {"shape", {static_cast<int64_t>(rows.size()) / d, d}},
                                  {"datatype", datatype},
                                  {"data", rows}}})}};
  if (!id.empty()) j["id"] = id;
  return j.dump();
}

class Serving {
 public:
  explicit Serving(const fs::path& root, kiln::serve::ServerOptions options = {},
                   std::chrono::milliseconds poll = std::chrono::milliseconds(1000))
      : repository_({root, poll, 1}, torch_runtime, &metrics_) {
    repository_.start();
    options.port = 0;
    server_ = std::make_unique<kiln::serve::Server>(options, repository_, metrics_);
    server_->start();
  }
  ~Serving() { server_->stop(std::chrono::seconds(10)); }
  uint16_t port() const { return server_->port(); }
  kiln::serve::ModelRepository& repository() { return repository_; }

 private:
  kiln::serve::Metrics metrics_;
  kiln::serve::ModelRepository repository_;
  std::unique_ptr<kiln::serve::Server> server_;
};

void expect_close(const std::vector<float>& expected, const Json& data, int64_t offset = 0) {
  ASSERT_TRUE(data.is_array());
  for (size_t i = 0; i < data.size(); ++i)
    ASSERT_NEAR(data[i].get<double>(), expected[static_cast<size_t>(offset) + i], 1e-5) << "value " << i;
}

// ------------------------------------------------------------------- tests

TEST(Serve, EveryEndpointAndOfflinePredictions) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  copy_version(m.model, dir / "repo" / "blobs", 1);
  Serving s(dir / "repo");
  const auto port = s.port();

  auto r = http(port, "GET", "/v2");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["name"], "kiln");
  expect_conforms(r, "/v2/", "get");
  EXPECT_EQ(http(port, "GET", "/v2/health/live").status, 200);
  EXPECT_EQ(http(port, "GET", "/v2/health/ready").status, 200);

  for (const std::string path : {"/v2/models/blobs", "/v2/models/blobs/versions/1"}) {
    r = http(port, "GET", path);
    ASSERT_EQ(r.status, 200) << r.body;
    const auto j = r.json();
    EXPECT_EQ(j["name"], "blobs");
    EXPECT_EQ(j["versions"], Json::array({"1"}));
    EXPECT_EQ(j["inputs"][0]["name"], "input");
    EXPECT_EQ(j["inputs"][0]["datatype"], "FP32");
    EXPECT_EQ(j["inputs"][0]["shape"], Json::array({-1, 4}));
    EXPECT_EQ(j["outputs"][0]["name"], "probabilities");
    expect_conforms(r, "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}", "get");
    r = http(port, "GET", path + "/ready");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["ready"], true);
  }

  // The whole test split in one request equals the offline predictions.
  const int64_t rows = static_cast<int64_t>(m.offline.size()) / m.classes;
  r = http(port, "POST", "/v2/models/blobs/infer", infer_body(rows_of(m.test_raw, 0, rows), 4, "req-42"));
  ASSERT_EQ(r.status, 200) << r.body;
  expect_conforms(r, "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer", "post");
  auto j = r.json();
  EXPECT_EQ(j["id"], "req-42");
  EXPECT_EQ(j["model_name"], "blobs");
  EXPECT_EQ(j["model_version"], "1");
  ASSERT_EQ(j["outputs"].size(), 1u);
  EXPECT_EQ(j["outputs"][0]["name"], "probabilities");
  EXPECT_EQ(j["outputs"][0]["shape"], Json::array({rows, m.classes}));
  expect_close(m.offline, j["outputs"][0]["data"]);

  // One row at a time through the version URL, with the output named.
  for (int64_t i = 0; i < 5; ++i) {
    Json body = Json::parse(infer_body(rows_of(m.test_raw, i, 1), 4));
    body["outputs"] = Json::array({{{"name", "probabilities"}}});
    r = http(port, "POST", "/v2/models/blobs/versions/1/infer", body.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    expect_close(m.offline, r.json()["outputs"][0]["data"], i * m.classes);
  }

  r = http(port, "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("kiln_serve_requests_total{model=\"blobs\",version=\"1\",status=\"200\"}"), std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("kiln_serve_request_duration_seconds_bucket{model=\"blobs\""), std::string::npos);
  EXPECT_NE(r.body.find("kiln_serve_models_loaded 1"), std::string::npos);
}

// kiln ui's Models form sends its request through kiln ui (POST
// /api/v1/models/M/infer?port=P), which forwards it to this kiln serve on
// 127.0.0.1 and answers with kiln serve's status and JSON, whatever it was.
TEST(Serve, KilnUiForwardsAnInferenceRequestAndShowsTheAnswer) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  copy_version(m.model, dir / "repo" / "blobs", 1);
  auto serving = std::make_unique<Serving>(dir / "repo");
  const std::string serve_port = std::to_string(serving->port());
  fs::create_directories(dir / "ws");
  ui::UiOptions options;
  options.workspace = dir / "ws";
  options.models = dir / "repo";
  ui::UiServer ui(options);
  ui.start();
  const auto infer = [&](const std::string& target, const std::string& body) {
    return http(ui.port(), "POST", "/api/v1/models/" + target, body);
  };

  // Three rows: kiln serve's answer, the offline predictions.
  auto r = infer("blobs/infer?port=" + serve_port, infer_body(rows_of(m.test_raw, 0, 3), 4, "from-ui"));
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = r.json();
  EXPECT_EQ(j["status"], 200) << r.body;
  EXPECT_EQ(j["url"], "http://127.0.0.1:" + serve_port + "/v2/models/blobs/infer");
  EXPECT_GE(j["duration_ms"].get<double>(), 0.0);
  EXPECT_EQ(j["body"]["id"], "from-ui");
  EXPECT_EQ(j["body"]["model_version"], "1");
  EXPECT_EQ(j["body"]["outputs"][0]["shape"], Json::array({3, m.classes}));
  expect_close(m.offline, j["body"]["outputs"][0]["data"]);
  // A version, which kiln serve has or has not; a model it does not know; a request it refuses.
  r = infer("blobs/infer?port=" + serve_port + "&version=1", infer_body(rows_of(m.test_raw, 1, 1), 4));
  ASSERT_EQ(r.status, 200) << r.body;
  expect_close(m.offline, r.json()["body"]["outputs"][0]["data"], m.classes);
  for (const auto& [target, status] : std::vector<std::pair<std::string, int>>{
           {"blobs/infer?port=" + serve_port + "&version=7", 404}, {"nope/infer?port=" + serve_port, 404}}) {
    r = infer(target, infer_body(rows_of(m.test_raw, 0, 1), 4));
    ASSERT_EQ(r.status, 200) << target << ": " << r.body;
    EXPECT_EQ(r.json()["status"], status) << target << ": " << r.body;
    EXPECT_FALSE(r.json()["body"].value("error", "").empty()) << target << ": " << r.body;
  }
  r = infer("blobs/infer?port=" + serve_port, infer_body(rows_of(m.test_raw, 0, 1), 3));  // 4 values, shape [1, 3]
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["status"], 400) << r.body;
  // kiln serve gone: kiln ui says it had no answer.
  serving.reset();
  r = infer("blobs/infer?port=" + serve_port, infer_body(rows_of(m.test_raw, 0, 1), 4));
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_NE(r.json().value("error", "").find("no answer from kiln serve"), std::string::npos) << r.body;
}

TEST(Serve, ErrorsAreJsonWithTheRightStatus) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  copy_version(m.model, dir / "repo" / "blobs", 1);
  fs::create_directories(dir / "repo" / "broken" / "1");
  write_text(dir / "repo" / "broken" / "1" / "model.json", "{not json");
  kiln::serve::ServerOptions options;
  options.max_body_bytes = 4096;
  Serving s(dir / "repo", options);
  const auto port = s.port();
  const std::string infer_path = "/v2/models/blobs/infer";
  const auto row = rows_of(m.test_raw, 0, 1);

  struct Case {
    std::string what, method, path, body;
    int status;
  };
  const std::vector<Case> cases{
      {"malformed JSON", "POST", infer_path, "{\"inputs\": [", 400},
      {"not an object", "POST", infer_path, "[1, 2]", 400},
      {"no inputs", "POST", infer_path, "{}", 400},
      {"wrong shape", "POST", infer_path, infer_body(rows_of(m.test_raw, 0, 2), 8), 400},
      {"wrong datatype", "POST", infer_path, infer_body(row, 4, "", "FP64"), 400},
      {"data/shape mismatch", "POST", infer_path,
       R"({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]})", 400},
      {"unknown input", "POST", infer_path,
       R"({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})", 400},
      {"unknown datatype", "POST", infer_path,
       R"({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP33", "data": [1, 2, 3, 4]}]})", 400},
      {"not a number", "POST", infer_path,
       R"({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, "a", 3, 4]}]})", 400},
      {"unknown output", "POST", infer_path,
       R"({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
           "outputs": [{"name": "nope"}]})",
       400},
      {"unknown model", "POST", "/v2/models/nope/infer", infer_body(row, 4), 404},
      {"unknown model metadata", "GET", "/v2/models/nope", "", 404},
      {"unknown version", "POST", "/v2/models/blobs/versions/7/infer", infer_body(row, 4), 404},
      {"unknown version ready", "GET", "/v2/models/blobs/versions/7/ready", "", 404},
      {"unknown endpoint", "GET", "/v3", "", 404},
      {"body too large", "POST", infer_path, std::string(8192, ' '), 413},
      {"model not ready", "POST", "/v2/models/broken/infer", infer_body(row, 4), 503},
      {"version not ready", "GET", "/v2/models/broken/versions/1/ready", "", 503},
      {"server not ready", "GET", "/v2/health/ready", "", 503},
  };
  for (const auto& c : cases) {
    const auto r = http(port, c.method, c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.body;
    const auto j = r.json();
    ASSERT_TRUE(j.contains("error") && j["error"].is_string()) << c.what << ": " << r.body;
    EXPECT_FALSE(j["error"].get<std::string>().empty());
    if (c.method == "POST") expect_conforms(r, "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer", "post");
  }
  // Still serving after all that.
  EXPECT_EQ(http(port, "POST", infer_path, infer_body(row, 4)).status, 200);
}

// Issue 17, end to end on a served model: a tensor whose data nests 100,000
// levels (it crashed the server), a model name that is not UTF-8 (it gave
// 500) and unknown model names (they grew /metrics) get 4xx with a JSON
// reason, and the model goes on answering.
TEST(Serve, HostileRequestsGet4xxAndTheServerGoesOn) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  copy_version(m.model, dir / "repo" / "blobs", 1);
  Serving s(dir / "repo");
  const auto row = rows_of(m.test_raw, 0, 1);
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "{\"a\":";
  deep += "1" + std::string(100000, '}');
  const auto nested =
      http(s.port(), "POST", "/v2/models/blobs/infer",
           R"({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [)" + deep + ", 2, 3, 4]}]})");
  EXPECT_EQ(nested.status, 400) << nested.body.substr(0, 300);
  EXPECT_NE(nested.json()["error"].get<std::string>().find("deeper than 64 levels"), std::string::npos) << nested.body;
  {
    Client c(s.port());
    c.send("GET /v2/models/blobs\xff/ready HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto r = c.read_reply();
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(Json::parse(r.body)["error"].get<std::string>().find("not valid UTF-8"), std::string::npos) << r.body;
  }
  for (int i = 0; i < 50; ++i) EXPECT_EQ(http(s.port(), "GET", "/v2/models/nope" + std::to_string(i)).status, 404);
  const auto metrics = http(s.port(), "GET", "/metrics").body;
  EXPECT_EQ(metrics.find("nope"), std::string::npos) << metrics.substr(0, 2000);
  const auto r = http(s.port(), "POST", "/v2/models/blobs/infer", infer_body(row, 4));
  ASSERT_EQ(r.status, 200) << r.body;
  expect_close(m.offline, r.json()["outputs"][0]["data"]);
}

// The value of the metrics line that starts with `series` ("" when absent: 0).
double metric_value(const std::string& metrics, const std::string& series) {
  const auto at = metrics.find(series + " ");
  return at == std::string::npos ? 0 : std::stod(metrics.substr(at + series.size() + 1));
}

const std::string kRunByIoThreads = R"(kiln_serve_batches_total{model="blobs",runner="io_thread"})";
const std::string kRunByWorker = R"(kiln_serve_batches_total{model="blobs",runner="worker"})";

// Eight clients at once, one row each: every answer holds its own row's prediction.
// Returns the /metrics text afterwards.
std::string expect_each_request_gets_its_rows(const std::string& config) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  copy_version(m.model, dir / "repo" / "blobs", 1);
  write_text(dir / "repo" / "blobs" / "config.json", config);
  Serving s(dir / "repo");
  const int64_t rows = static_cast<int64_t>(m.offline.size()) / m.classes;
  std::vector<std::thread> clients;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      for (int64_t i = t; i < rows; i += 8) {
        const auto r = http(s.port(), "POST", "/v2/models/blobs/infer", infer_body(rows_of(m.test_raw, i, 1), 4));
        if (r.status != 200) {
          ++failures;
          continue;
        }
        const auto data = r.json()["outputs"][0]["data"];
        for (int64_t k = 0; k < m.classes; ++k)
          if (std::abs(data[static_cast<size_t>(k)].get<double>() - m.offline[i * m.classes + k]) > 1e-5) ++failures;
      }
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(failures.load(), 0);
  const auto metrics = http(s.port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("kiln_serve_batch_size_count{model=\"blobs\"}"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kiln_serve_queue_seconds_count{model=\"blobs\"}"), std::string::npos);
  return metrics;
}

TEST(Serve, ModelConfigErrorsNameTheFileAndField) {
  using kiln::serve::parse_model_config;
  const auto error_of = [](const std::string& text) {
    try {
      parse_model_config(text, "repo/m/config.json");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(parse_model_config(R"({"io_thread_batches": "never"})", "c").io_thread_batches, "never");
  EXPECT_EQ(parse_model_config("{}", "c").io_thread_batches, "auto");
  for (const auto& [text, field] :
       std::vector<std::pair<std::string, std::string>>{{R"({"io_thread_batches": "sometimes"})", "io_thread_batches"},
                                                        {R"({"io_thread_batches": 1})", "io_thread_batches"},
                                                        {R"({"max_batch_size": -2})", "max_batch_size"},
                                                        {R"({"max_queue_delay_us": "1"})", "max_queue_delay_us"},
                                                        {"{not json", "not valid JSON"}}) {
    const auto message = error_of(text);
    EXPECT_NE(message.find("repo/m/config.json"), std::string::npos) << text << " -> " << message;
    EXPECT_NE(message.find(field), std::string::npos) << text << " -> " << message;
  }
}

TEST(Serve, DynamicBatchingGivesEachRequestItsRows) {
  // A queue delay: the version's worker gathers the batches.
  const auto metrics = expect_each_request_gets_its_rows(R"({"max_batch_size": 16, "max_queue_delay_us": 5000})");
  EXPECT_GT(metric_value(metrics, kRunByWorker), 0) << metrics;
  EXPECT_EQ(metric_value(metrics, kRunByIoThreads), 0) << metrics;
}

TEST(Serve, BatchesRunByTheIoThreadsGiveEachRequestItsRows) {
  // No queue delay: each I/O thread runs what one pass over its connections
  // gathered as a batch ("always": not only once the model has been
  // measured as quick, which a sanitizer build may not be).
  const auto metrics = expect_each_request_gets_its_rows(
      R"({"max_batch_size": 16, "max_queue_delay_us": 0, "io_thread_batches": "always"})");
  EXPECT_GT(metric_value(metrics, kRunByIoThreads), 0) << metrics;
  EXPECT_EQ(metric_value(metrics, kRunByWorker), 0) << metrics;
}

TEST(Serve, AFullQueueAnswers503AtOnce) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  copy_version(m.model, dir / "repo" / "blobs", 1);
  // One queued request fills the queue; it waits for its batch for 5 s.
  write_text(dir / "repo" / "blobs" / "config.json",
             R"({"max_batch_size": 64, "max_queue_delay_us": 5000000, "max_queue_size": 1})");
  Serving s(dir / "repo");
  const auto body = infer_body(rows_of(m.test_raw, 0, 1), 4);
  Response first;
  std::thread client([&] { first = http(s.port(), "POST", "/v2/models/blobs/infer", body); });
  bool queued = false;
  for (int i = 0; i < 6000 && !queued; ++i) {
    queued = http(s.port(), "GET", "/metrics").body.find("kiln_serve_queue_depth{model=\"blobs\",version=\"1\"} 1") !=
             std::string::npos;
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(queued);
  const auto rejected = http(s.port(), "POST", "/v2/models/blobs/infer", body);
  EXPECT_EQ(rejected.status, 503) << rejected.body;
  EXPECT_NE(rejected.body.find("queue"), std::string::npos);
  client.join();
  EXPECT_EQ(first.status, 200) << first.body;
}

TEST(Serve, HotReloadUnderLoadLosesNoRequest) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  const auto repo_model = dir / "repo" / "blobs";
  copy_version(m.model, repo_model, 1);
  Serving s(dir / "repo", {}, std::chrono::milliseconds(20));
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, saw_v2{0}, saw_v3{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&] {
      while (!stop) {
        const auto r = http(s.port(), "POST", "/v2/models/blobs/infer", infer_body(rows_of(m.test_raw, 0, 1), 4));
        if (r.status != 200) {
          ++failed;
          continue;
        }
        ++ok;
        const auto version = r.json()["model_version"].get<std::string>();
        if (version == "2") ++saw_v2;
        if (version == "3") ++saw_v3;
      }
    });
  // Version 2 takes over; a broken version 3 is reported and does not.
  copy_version(m.model, repo_model, 2);
  for (int i = 0; i < 6000 && saw_v2 < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  fs::create_directories(repo_model / ".staging3");
  write_text(repo_model / ".staging3" / "model.json", "{broken");
  fs::rename(repo_model / ".staging3", repo_model / "3");
  const auto before = saw_v2.load();
  // Until the poller has tried version 3 (its ready endpoint exists) and 50 more requests were served.
  const auto v3_seen = [&] { return http(s.port(), "GET", "/v2/models/blobs/versions/3/ready").status != 404; };
  for (int i = 0; i < 6000 && (saw_v2 < before + 50 || !v3_seen()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(saw_v2.load(), before + 50);
  EXPECT_EQ(saw_v3.load(), 0);
  EXPECT_EQ(s.repository().versions("blobs"), std::vector<int64_t>{2});
  EXPECT_EQ(http(s.port(), "GET", "/v2/models/blobs/versions/1").status, 404);  // retired
  EXPECT_EQ(http(s.port(), "GET", "/v2/models/blobs/versions/3/ready").status, 503);
  const auto metrics = http(s.port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("kiln_serve_model_load_failures_total{model=\"blobs\",version=\"3\"} 1"), std::string::npos);
}

std::string raw_infer(const std::string& body, const std::string& extra_headers = "") {
  return "POST /v2/models/blobs/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

// Pipelined inference on one connection, batched with other connections'
// requests, comes back in order; a body over 1 KiB with Expect: 100-continue
// (what curl sends) works; 200 keep-alive connections on two I/O threads.
// Pipelined requests, Expect: 100-continue and 200 connections at once,
// each answer checked against the offline predictions; `metrics` gets /metrics.
void expect_pipelining_and_many_connections(const std::string& config, std::string* metrics = nullptr) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  copy_version(m.model, dir / "repo" / "blobs", 1);
  write_text(dir / "repo" / "blobs" / "config.json", config);
  kiln::serve::ServerOptions options;
  options.io_threads = 2;
  Serving s(dir / "repo", options);
  const auto check_row = [&](const Reply& r, int64_t row) {
    ASSERT_EQ(r.status, 200) << r.body;
    expect_close(m.offline, Json::parse(r.body)["outputs"][0]["data"], row * m.classes);
  };

  Client pipelined(s.port());
  std::string requests;
  for (int64_t i = 0; i < 8; ++i) requests += raw_infer(infer_body(rows_of(m.test_raw, i, 1), 4));
  pipelined.send(requests);
  for (int64_t i = 0; i < 8; ++i) check_row(pipelined.read_reply(), i);

  const int64_t rows = static_cast<int64_t>(m.offline.size()) / m.classes;
  const std::string big = infer_body(rows_of(m.test_raw, 0, rows), 4);
  ASSERT_GT(big.size(), 1024u);
  const std::string expecting = raw_infer(big, "Expect: 100-continue\r\n");
  pipelined.send(expecting.substr(0, expecting.size() - big.size()));  // the head; the body after the 100
  EXPECT_EQ(pipelined.read_reply().status, 100);
  pipelined.send(big);
  const auto all = pipelined.read_reply();
  ASSERT_EQ(all.status, 200) << all.body;
  expect_close(m.offline, Json::parse(all.body)["outputs"][0]["data"]);

  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 200; ++i) clients.push_back(std::make_unique<Client>(s.port()));
  for (size_t i = 0; i < clients.size(); ++i)
    clients[i]->send(raw_infer(infer_body(rows_of(m.test_raw, static_cast<int64_t>(i) % rows, 1), 4)));
  for (size_t i = 0; i < clients.size(); ++i) check_row(clients[i]->read_reply(), static_cast<int64_t>(i) % rows);
  if (metrics != nullptr) *metrics = http(s.port(), "GET", "/metrics").body;
}

TEST(Serve, PipeliningExpectContinueAndManyConnections) {
  expect_pipelining_and_many_connections(R"({"max_batch_size": 16, "max_queue_delay_us": 2000})");
}

TEST(Serve, PipeliningAndManyConnectionsWithBatchesOnTheIoThreads) {
  // Answering a gathered batch lets the next pipelined request through,
  // which is gathered and run in a later round of the same loop.
  std::string metrics;
  expect_pipelining_and_many_connections(
      R"({"max_batch_size": 16, "max_queue_delay_us": 0, "io_thread_batches": "always"})", &metrics);
  EXPECT_GT(metric_value(metrics, kRunByIoThreads), 0) << metrics;
}

TEST(Serve, VersionPolicies) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  for (int v = 1; v <= 3; ++v) {
    copy_version(m.model, dir / "repo" / "latest2", v);
    copy_version(m.model, dir / "repo" / "pinned", v);
  }
  write_text(dir / "repo" / "latest2" / "config.json", R"({"version_policy": {"latest": {"num_versions": 2}}})");
  write_text(dir / "repo" / "pinned" / "config.json", R"({"version_policy": {"specific": {"versions": [1]}}})");
  Serving s(dir / "repo");
  EXPECT_EQ(s.repository().versions("latest2"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(s.repository().versions("pinned"), (std::vector<int64_t>{1}));
  EXPECT_EQ(http(s.port(), "GET", "/v2/models/latest2/versions/2/ready").status, 200);
  EXPECT_EQ(http(s.port(), "GET", "/v2/models/pinned/versions/3/ready").status, 404);
  const auto r = http(s.port(), "POST", "/v2/models/pinned/infer", infer_body(rows_of(m.test_raw, 0, 1), 4));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["model_version"], "1");
}

TEST(Serve, SigtermDrainsRequestsInProgress) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  copy_version(m.model, dir / "repo" / "blobs", 1);
  // A long batching delay keeps the request in flight when SIGTERM comes.
  write_text(dir / "repo" / "blobs" / "config.json", R"({"max_batch_size": 64, "max_queue_delay_us": 500000})");
  host::ChildProcess::Options options;
  options.argv = {kiln_exe().string(),
                  "serve",
                  "--model-repo",
                  (dir / "repo").string(),
                  "--port",
                  "0",
                  "--port-file",
                  (dir / "port").string(),
                  "--runtime-threads",
                  "1",
                  "--access-log",
                  "off"};
  options.env = {{"KILN_PLUGIN_PATH", fs::path(KILN_TEST_TORCH_PLUGIN).parent_path().string()},
                 {"KILN_CACHE_DIR", kiln::test::scan_cache().string()}};
  auto child = host::ChildProcess::spawn(options);
  for (int i = 0; i < 6000 && !fs::exists(dir / "port"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(fs::exists(dir / "port")) << "kiln serve did not start";
  const auto port = static_cast<uint16_t>(std::stoi(read_text(dir / "port")));
  Response in_flight;
  std::thread client(
      [&] { in_flight = http(port, "POST", "/v2/models/blobs/infer", infer_body(rows_of(m.test_raw, 0, 1), 4)); });
  // Wait until the request is queued (the queue-depth gauge says 1).
  bool queued = false;
  for (int i = 0; i < 6000 && !queued; ++i) {
    queued = http(port, "GET", "/metrics").body.find("kiln_serve_queue_depth{model=\"blobs\",version=\"1\"} 1") !=
             std::string::npos;
    if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(queued);
  ::kill(child.pid(), SIGTERM);
  client.join();
  EXPECT_EQ(in_flight.status, 200) << in_flight.body;
  const auto status = child.wait();
  EXPECT_TRUE(status.success()) << status.describe();
}

TEST(Serve, TorchScriptFromPyTorchGivesPyTorchsOutputs) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    KILN_TEST_SKIP(
        "/usr/bin/python3 with torch (python3-torch, scripts/setup.sh's KILN_TEST_PACKAGES) is not installed");
  TempDir dir;
  const auto version = dir / "repo" / "scripted" / "1";
  fs::create_directories(version);
  write_text(dir / "make.py", R"(
import json, sys, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 2)
    def forward(self, x: torch.Tensor, k: torch.Tensor):
        y = self.lin(x) + k.to(torch.float32)
        return y, torch.argmax(y, dim=1)
m = torch.jit.script(M())
torch.jit.save(m, sys.argv[1] + "/model.pt")
x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
k = torch.tensor([[1], [-2]], dtype=torch.int64)
y, idx = m(x, k)
json.dump({"x": x.flatten().tolist(), "k": k.flatten().tolist(), "y": y.flatten().tolist(),
           "idx": idx.tolist()}, open(sys.argv[1] + "/../../expected.json", "w"))
)");
  ASSERT_EQ(std::system(("/usr/bin/python3 " + (dir / "make.py").string() + " " + version.string()).c_str()), 0);
  write_text(dir / "repo" / "scripted" / "config.json", R"({
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}, {"name": "k", "datatype": "INT64", "shape": [-1, 1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}, {"name": "idx", "datatype": "INT64", "shape": [-1]}]
  })");
  const auto expected = Json::parse(read_text(dir / "repo" / "expected.json"));
  Serving s(dir / "repo");
  const Json body{
      {"inputs", Json::array({{{"name", "k"}, {"shape", {2, 1}}, {"datatype", "INT64"}, {"data", expected["k"]}},
                              {{"name", "x"}, {"shape", {2, 3}}, {"datatype", "FP32"}, {"data", expected["x"]}}})}};
  const auto r = http(s.port(), "POST", "/v2/models/scripted/infer", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = r.json();
  ASSERT_EQ(j["outputs"].size(), 2u);
  EXPECT_EQ(j["outputs"][0]["name"], "y");
  EXPECT_EQ(j["outputs"][1]["datatype"], "INT64");
  EXPECT_EQ(j["outputs"][1]["data"], expected["idx"]);
  const auto y = expected["y"].get<std::vector<float>>();
  expect_close(y, j["outputs"][0]["data"]);
  expect_conforms(r, "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer", "post");
}

// A model saved by train.torch holds CPU tensors whatever device trained it
// (docs/gpu.md): it loads onto the device its config names. Here (Debian's
// LibTorch has no CUDA) "cpu" and "auto" serve the offline predictions and
// "cuda" is a load error naming the field and the step's GPUs. The
// components' descriptions name the LibTorch build.
TEST(Serve, ModelsLoadOnTheDeviceTheirConfigNames) {
  TempDir dir;
  const auto m = train_model(dir / "train");
  kiln::serve::Metrics metrics;
  const auto* runtime = torch_runtime("serve.torch");
  ASSERT_NE(runtime, nullptr);
  for (const std::string device : {"cpu", "auto"}) {
    const kiln::serve::ModelVersion version("blobs", 1, m.model, runtime,
                                            kiln::serve::parse_model_config(R"({"device": ")" + device + "\"}", "c"),
                                            &metrics);
    EXPECT_EQ(version.metadata()["device"], "cpu") << device;
  }
  copy_version(m.model, dir / "repo" / "blobs", 1);
  write_text(dir / "repo" / "blobs" / "config.json", R"({"device": "cpu"})");
  {
    Serving s(dir / "repo");
    const int64_t rows = static_cast<int64_t>(m.offline.size()) / m.classes;
    const auto r = http(s.port(), "POST", "/v2/models/blobs/infer", infer_body(rows_of(m.test_raw, 0, rows), 4));
    ASSERT_EQ(r.status, 200) << r.body;
    expect_close(m.offline, r.json()["outputs"][0]["data"]);
  }
  for (const std::string device : {"cuda", "cuda:1", "gpu"}) {
    try {
      const kiln::serve::ModelVersion version("blobs", 1, m.model, runtime,
                                              kiln::serve::parse_model_config(R"({"device": ")" + device + "\"}", "c"),
                                              &metrics);
      ADD_FAILURE() << device << " loaded";
    } catch (const std::runtime_error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("the model config's device"), std::string::npos) << message;
      if (device != "gpu") {
        EXPECT_NE(message.find("device: " + device + " needs a GPU"), std::string::npos) << message;
        EXPECT_NE(message.find("resources: {gpus: N}"), std::string::npos) << message;
      }
    }
  }
  // `kiln plugins describe` shows the LibTorch each component was built for
  // (Debian's, without CUDA, in CI).
#ifdef KILN_TORCH_CUDA_VERSION
  const std::string devices = std::string("CPU + CUDA ") + KILN_TORCH_CUDA_VERSION;
#else
  const std::string devices = "CPU only";
#endif
  const auto library = host::PluginLibrary::load(KILN_TEST_TORCH_PLUGIN);
  for (const char* name : {"train.torch", "evaluate", "serve.torch"}) {
    const auto* component = library->find(name);
    ASSERT_NE(component, nullptr) << name;
    const auto& description = component->manifest.description;
    EXPECT_NE(description.find("[built for LibTorch " + std::string(TORCH_VERSION) + ", " + devices + "]"),
              std::string::npos)
        << description;
  }
}

// The compute placement behind train.torch (device.hpp), on CPU tensors
// (ATen only: the whole of torch/torch.h would cost this file ~30 s to
// compile), in one test (each costs a process start): `auto` is the CPU
// without CUDA and fp16 needs CUDA; AutocastScope runs CPU matmuls in bf16
// and restores fp32; fp16's dynamic loss scaling unscales finite gradients,
// while an inf or a nan skips the step (gradients untouched) and halves the
// scale, and growth_interval good steps in a row double it.
TEST(TorchDevice, PlacementAutocastAndLossScaling) {
  EXPECT_EQ(ml::resolve_device(ml::parse_device("auto")), at::Device(at::kCPU));
  EXPECT_EQ(ml::resolve_device(ml::parse_device("cpu")), at::Device(at::kCPU));
  EXPECT_THROW(ml::resolve_device(ml::parse_device("cuda:0")), std::invalid_argument);
  EXPECT_THROW(ml::check_precision(ml::Precision::Fp16, at::kCPU), std::invalid_argument);
  EXPECT_NO_THROW(ml::check_precision(ml::Precision::Bf16, at::kCPU));

  const auto a = at::ones({4, 4});
  {
    const ml::AutocastScope scope(at::kCPU, ml::Precision::Bf16);
    EXPECT_EQ(at::mm(a, a).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(at::mm(a, a).scalar_type(), at::kFloat);
  {
    const ml::AutocastScope scope(at::kCPU, ml::Precision::Fp32);
    EXPECT_EQ(at::mm(a, a).scalar_type(), at::kFloat);
  }

  ml::LossScaler scaler({1024.0, 2.0, 0.5, 3});
  auto w = at::ones({2}).requires_grad_(true);
  scaler.scale((w * 3).sum()).backward();
  EXPECT_FLOAT_EQ(w.grad()[0].item<float>(), 3072.0f);  // scaled by 1024
  ASSERT_TRUE(scaler.unscale({w}));
  EXPECT_FLOAT_EQ(w.grad()[0].item<float>(), 3.0f);
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 1024.0);
  for (const float poison : {std::numeric_limits<float>::infinity(), std::nanf("")}) {
    w.mutable_grad() = at::tensor({poison, 5.0f});
    EXPECT_FALSE(scaler.unscale({w}));
    EXPECT_FLOAT_EQ(w.grad()[1].item<float>(), 5.0f);  // left as it was
    scaler.update(false);
  }
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 256.0);
  EXPECT_EQ(scaler.skipped_steps(), 2);
  for (int i = 0; i < 2; ++i) scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 256.0);  // the overflow reset the run of good steps
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 512.0);
  auto unused = at::ones({1}).requires_grad_(true);  // no gradient: nothing to check
  EXPECT_TRUE(scaler.unscale({unused}));
}

TEST(Serve, PublishWritesTheNextVersionThroughARename) {
  TempDir dir;
  write_text(dir / "model" / "model.json", "{}\n");
  write_text(dir / "model" / "transform" / "transform.json", "{}\n");
  const Json params{{"repo", (dir / "repo").string()}, {"name", "m"}, {"config", {{"max_batch_size", 8}}}};
  for (int i = 1; i <= 2; ++i) {
    RecordingSink sink;
    const auto outcome =
        invoke_component(KILN_TEST_SERVE_PLUGIN, "serve.publish", params, dir / ("step" + std::to_string(i)), sink,
                         {{"model", host::InputArtifact{dir / "model"}}});
    ASSERT_TRUE(outcome.ok) << outcome.message;
    EXPECT_EQ(sink.output_parameters["version"], i);
    EXPECT_TRUE(fs::exists(dir / "repo" / "m" / std::to_string(i) / "transform" / "transform.json"));
  }
  EXPECT_EQ(Json::parse(read_text(dir / "repo" / "m" / "config.json"))["max_batch_size"], 8);
  Json gated = params;
  gated["passed"] = false;
  RecordingSink sink;
  const auto outcome = invoke_component(KILN_TEST_SERVE_PLUGIN, "serve.publish", gated, dir / "step3", sink,
                                        {{"model", host::InputArtifact{dir / "model"}}});
  ASSERT_TRUE(outcome.ok) << outcome.message;
  EXPECT_EQ(sink.output_parameters["published"], false);
  EXPECT_FALSE(fs::exists(dir / "repo" / "m" / "3"));
  size_t entries = 0;  // no staging directory left behind
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "repo" / "m")) ++entries;
  EXPECT_EQ(entries, 3u);
}

}  // namespace
}  // namespace kiln::test

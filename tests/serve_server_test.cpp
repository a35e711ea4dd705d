// kiln serve's Open Inference Protocol server (host/serve/server.cpp) over
// real HTTP on 127.0.0.1 with a repository that needs no runtime (an empty
// model and a broken one): what reaches /metrics from the URL, names that
// are not UTF-8, and the bound on metrics label sets. Models that answer
// inferences are tested in tests/ml/torch/serve_test.cpp.
#include "raw_http_client.hpp"
#include "test_support.hpp"

#include <kiln/host/json.hpp>
#include <kiln/serve/server.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace kiln::test {
namespace {

using host::Json;

std::string get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
}

std::string post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A server over DIR/repo holding "broken" (a version whose model.json does
// not parse): a model the repository knows, never ready. No runtime is resolved.
class Serving {
 public:
  explicit Serving(const TempDir& dir)
      : root_(dir / "repo"),
        repository_({make_repo(root_), std::chrono::milliseconds(60000), 1},
                    [](const std::string&) -> const KilnServingApi* { return nullptr; }, &metrics_) {
    repository_.start();
    serve::ServerOptions options;
    options.port = 0;
    options.io_threads = 2;
    server_ = std::make_unique<serve::Server>(options, repository_, metrics_);
    server_->start();
  }
  ~Serving() { server_->stop(std::chrono::seconds(5)); }
  uint16_t port() const { return server_->port(); }

 private:
  static std::filesystem::path make_repo(const std::filesystem::path& root) {
    std::filesystem::create_directories(root / "broken" / "1");
    write_text(root / "broken" / "1" / "model.json", "{not json");
    return root;
  }
  std::filesystem::path root_;
  serve::Metrics metrics_;
  serve::ModelRepository repository_;
  std::unique_ptr<serve::Server> server_;
};

// The value of the metrics line that starts with `series` (0 when absent).
double metric_value(const std::string& metrics, const std::string& series) {
  const auto at = metrics.find(series + " ");
  return at == std::string::npos ? 0 : std::stod(metrics.substr(at + series.size() + 1));
}

// Issue 17: the model name in the URL became a metrics label before the
// model was looked up, so unknown names grew /metrics without bound.
TEST(ServeServer, UnknownModelNamesDoNotBecomeMetricsLabels) {
  TempDir dir;
  Serving s(dir);
  Client c(s.port());
  ASSERT_TRUE(c.connected());
  constexpr int kNames = 500;
  for (int i = 0; i < kNames; ++i) {
    const std::string name = "no-such-model-" + std::to_string(i);
    c.send(get("/v2/models/" + name + "/ready") + post("/v2/models/" + name + "/infer", "{}"));
    ASSERT_EQ(c.read_reply().status, 404) << name;
    ASSERT_EQ(c.read_reply().status, 404) << name;
  }
  c.send(get("/v2/models/broken/ready"));
  EXPECT_EQ(c.read_reply().status, 503);  // a known model keeps its label
  c.send(get("/metrics"));
  const auto metrics = c.read_reply();
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.body.find("no-such-model"), std::string::npos) << metrics.body.substr(0, 2000);
  EXPECT_EQ(metric_value(metrics.body, R"(kiln_serve_requests_total{model="",version="",status="404"})"), 2 * kNames)
      << metrics.body.substr(0, 2000);
  EXPECT_EQ(metric_value(metrics.body, R"(kiln_serve_requests_total{model="broken",version="",status="503"})"), 1);
  EXPECT_LT(metrics.body.size(), 16u << 10);
}

// Issue 17: bytes that are not UTF-8 in the model name gave 500 (the JSON
// error could not be written). Now 400 with a JSON reason, wherever they are.
TEST(ServeServer, ANameThatIsNotUtf8Is400WithAJsonReason) {
  TempDir dir;
  Serving s(dir);
  const std::vector<std::string> requests{
      get("/v2/models/\xff\xfe/ready"),
      get("/v2/models/caf\xc3"),
      post("/v2/models/\xc0\xaf/infer", "{}"),  // an overlong '/'
      post("/v2/models/\xed\xa0\x80/infer", "{}"),  // a surrogate
      get("/v2/models/broken/versions/1\xff/ready"),
  };
  for (const auto& request : requests) {
    Client c(s.port());
    c.send(request);
    const auto r = c.read_reply();
    EXPECT_EQ(r.status, 400) << request << r.body;
    Json body;
    ASSERT_NO_THROW(body = Json::parse(r.body)) << r.body;
    ASSERT_TRUE(body.contains("error") && body["error"].is_string()) << r.body;
    EXPECT_NE(body["error"].get<std::string>().find("not valid UTF-8"), std::string::npos) << r.body;
  }
  Client c(s.port());  // still serving, and /metrics is text
  c.send(get("/metrics"));
  const auto metrics = c.read_reply();
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metric_value(metrics.body, R"(kiln_serve_requests_total{model="",version="",status="400"})"), 5)
      << metrics.body.substr(0, 2000);
}

// Whatever labels reach it, a family holds a bounded number of label sets;
// the rest are counted under model="_other", so no count is lost.
TEST(ServeServer, MetricsLabelSetsAreBounded) {
  serve::Metrics metrics(4);
  for (int i = 0; i < 50; ++i) {
    const std::string model = "m" + std::to_string(i);
    metrics.observe_request(model, std::to_string(i), 200, 0.001);
    metrics.observe_batch(model, 1, {0.001}, true);
    metrics.count_load_failure(model, "1");
  }
  const auto text = metrics.render("");
  size_t request_series = 0;
  for (size_t at = text.find("\nkiln_serve_requests_total{"); at != std::string::npos;
       at = text.find("\nkiln_serve_requests_total{", at + 1))
    ++request_series;
  EXPECT_EQ(request_series, 5u) << text;
  EXPECT_EQ(metric_value(text, R"(kiln_serve_requests_total{model="_other",version="",status="200"})"), 46) << text;
  EXPECT_EQ(metric_value(text, R"(kiln_serve_request_duration_seconds_count{model="_other"})"), 46) << text;
  EXPECT_EQ(metric_value(text, R"(kiln_serve_batches_total{model="_other",runner="io_thread"})"), 46) << text;
  EXPECT_EQ(metric_value(text, R"(kiln_serve_model_load_failures_total{model="_other",version=""})"), 46) << text;
  EXPECT_EQ(text.find("m49"), std::string::npos);
}

}  // namespace
}  // namespace kiln::test

#include <kiln/host/host_identity.hpp>
#include <kiln/host/version.hpp>
#include <kiln/serve/infer_json.hpp>
#include <kiln/serve/server.hpp>

#include "http_front.hpp"
#include "json_text.hpp"

#include <algorithm>
#include <iostream>
#include <mutex>
#include <optional>
#include <string_view>

namespace kiln::serve {

using host::Json;
using Clock = std::chrono::steady_clock;

namespace {

struct Reply {
  int status = 200;
  std::string body;
  const char* content_type = "application/json";
};

Reply json_reply(int status, const Json& j) {
  return Reply{status, j.dump(), "application/json"};
}

HttpResponse to_http(Reply reply) {
  return HttpResponse{reply.status, std::move(reply.body), reply.content_type, reply.status == 413};
}

HttpResponse error_response(int status, const std::string& message) {
  return HttpResponse{status, json_error_body(message), "application/json", status == 413};
}

// The non-empty segments of the URL's path (views into `uri`).
std::vector<std::string_view> split_path(const std::string& uri) {
  const std::string_view path = std::string_view(uri).substr(0, uri.find('?'));
  std::vector<std::string_view> parts;
  parts.reserve(8);
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = path.find('/', start);
    const auto part = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!part.empty()) parts.push_back(part);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  ModelRepository& repository;
  Metrics& metrics;
  std::mutex log_mutex;
  std::unique_ptr<HttpFront> http;
  // Inferences gathered by each loop during its pass (used by that loop's thread only).
  using Gathered = std::vector<std::pair<std::shared_ptr<ModelVersion>, std::vector<ModelVersion::Call>>>;
  std::vector<Gathered> gathered;

  Impl(ServerOptions o, ModelRepository& r, Metrics& m) : options(std::move(o)), repository(r), metrics(m) {}

  Reply model_metadata(const std::shared_ptr<ModelVersion>& m, const std::string& name) const {
    Json j{{"name", name}, {"versions", Json::array()}, {"platform", m->metadata()["platform"]}};
    for (const auto v : repository.versions(name)) j["versions"].push_back(std::to_string(v));
    j["inputs"] = m->metadata()["inputs"];
    j["outputs"] = m->metadata()["outputs"];
    return json_reply(200, j);
  }

  // The request body as an inference call; throws ServeError(400).
  InferBody parse_infer(const ModelVersion& m, const std::string& body) const {
    InferBody call = read_infer_body(body);
    const auto& declared = m.metadata()["outputs"];
    for (const auto& name : call.wanted_outputs)
      if (std::none_of(declared.begin(), declared.end(), [&](const Json& d) { return d["name"] == name; }))
        throw ServeError(400, "model '" + m.model() + "' has no output '" + excerpt_text(name) + "'");
    return call;
  }

  static HttpResponse infer_response(const std::string& model, int64_t version, const std::optional<std::string>& id,
                                     const std::vector<std::string>& wanted, InferResult result) {
    if (result.error) {
      try {
        std::rethrow_exception(result.error);
      } catch (const ServeError& e) {
        return error_response(e.status(), e.what());
      } catch (const std::exception& e) {
        return error_response(500, std::string("internal error: ") + e.what());
      }
    }
    HttpResponse response{200, {}, "application/json", false};
    size_t values = 0;
    for (const auto& o : result.outputs) values += o.bytes.size();
    response.body.reserve(256 + 4 * values);  // about a value's text per byte: no regrowth while writing
    try {
      write_infer_response(response.body, model, version, id, result.outputs, wanted);
    } catch (const ServeError& e) {
      return error_response(e.status(), e.what());
    }
    return response;
  }

  // Gathers the inference for this loop's end of pass (a fast model, see
  // ModelVersion::runs_on_caller) or queues it for the version's worker;
  // the answer goes out through `responder` from either thread.
  void infer(const std::shared_ptr<ModelVersion>& m, HttpRequest& http_request, const Responder& responder) {
    InferBody call = parse_infer(*m, http_request.body);
    http_request.hold = m;  // the version stays loaded until the answer is sent
    InferRequest inputs{std::move(call.inputs), Clock::now() + options.request_timeout};
    // The callback must not own the version (see ModelVersion::infer_async).
    InferCallback done = [responder, model = m->model(), version = m->version(), id = std::move(call.id),
                          wanted = std::move(call.wanted_outputs)](InferResult result) {
      responder.send(infer_response(model, version, id, wanted, std::move(result)));
    };
    if (!m->runs_on_caller()) return m->infer_async(std::move(inputs), std::move(done));
    m->check(inputs.inputs);
    auto& calls = gathered.at(http_request.loop);
    const auto it = std::find_if(calls.begin(), calls.end(), [&](const auto& g) { return g.first == m; });
    auto& list = it != calls.end() ? it->second : calls.emplace_back(m, std::vector<ModelVersion::Call>{}).second;
    list.push_back(ModelVersion::Call{std::move(inputs), std::move(done)});
  }

  // Runs what loop `loop` gathered in its pass, a batch per version, and
  // again for requests that answering let through (pipelined ones), a few
  // rounds at most so that one pipelining client cannot hold the loop;
  // returns whether some are left for after the next pass.
  bool after_pass(size_t loop) {
    constexpr int kRounds = 4;
    auto& calls = gathered[loop];
    for (int round = 0; round < kRounds && !calls.empty(); ++round) {
      Gathered taken;
      taken.swap(calls);
      for (auto& [version, list] : taken) {
        try {
          version->infer_now(std::move(list));
        } catch (const std::exception& e) {  // its unanswered requests time out (504); the loop goes on
          std::cerr << "kiln serve: a batch of '" << version->model() << "' failed: " << e.what() << "\n";
        }
      }
    }
    return !calls.empty();
  }

  // The front end's bounded resources, as Prometheus gauges.
  std::string front_gauges() const {
    return "# HELP kiln_serve_open_connections client connections open (bounded by --max-connections)\n"
           "# TYPE kiln_serve_open_connections gauge\nkiln_serve_open_connections " +
           std::to_string(http->open_connections()) +
           "\n# HELP kiln_serve_buffered_request_bytes request bytes held (bounded by --max-buffered-bytes)\n"
           "# TYPE kiln_serve_buffered_request_bytes gauge\nkiln_serve_buffered_request_bytes " +
           std::to_string(http->buffered_bytes()) + "\n";
  }

  // The model named in the URL, found; only then does the request carry its
  // name (a metrics label): unknown names from the network must not become
  // label values. A known model's errors (not ready, no such version) carry it.
  std::shared_ptr<ModelVersion> find_model(HttpRequest& request, const std::string& name, const std::string& version) {
    if (!valid_utf8(name) || !valid_utf8(version))
      throw ServeError(400, "the model name or version in the URL is not valid UTF-8");
    try {
      auto m = repository.find(name, version);
      request.model = name;
      request.model_version = std::to_string(m->version());
      return m;
    } catch (const ServeError&) {
      if (repository.knows(name)) request.model = name;
      throw;
    }
  }

  // Answers one request (at once, or later for a queued inference); throws
  // ServeError for the statuses it maps to.
  void route(HttpRequest& request, const std::vector<std::string_view>& p, const Responder& responder) {
    const std::string& method = request.method;
    const bool get = method == "GET";
    if (p.size() == 1 && p[0] == "metrics" && get)
      return responder.send(
          to_http(Reply{200, metrics.render(repository.gauges() + front_gauges()), "text/plain; version=0.0.4"}));
    if (p.empty() || p[0] != "v2") throw ServeError(404, "no such endpoint");
    if (p.size() == 1 && get)
      return responder.send(to_http(
          json_reply(200, Json{{"name", "kiln"}, {"version", host::kiln_version()}, {"extensions", Json::array()}})));
    if (p.size() == 3 && p[1] == "health" && get) {
      if (p[2] == "live") return responder.send(to_http(json_reply(200, Json{{"live", true}})));
      if (p[2] == "ready") {
        if (!repository.all_ready()) throw ServeError(503, "not every model in the repository is ready");
        return responder.send(to_http(json_reply(200, Json{{"ready", true}})));
      }
    }
    if (p.size() >= 3 && p[1] == "models") {
      const std::string name(p[2]);
      std::string version;
      size_t next = 3;
      if (p.size() >= 5 && p[3] == "versions") {
        version = p[4];
        next = 5;
      }
      const std::string_view action = p.size() > next ? p[next] : "";
      if (p.size() <= next + 1 && (action.empty() || action == "ready" || action == "infer")) {
        if (action == "infer" && method != "POST") throw ServeError(405, "infer needs POST");
        if (action != "infer" && !get) throw ServeError(405, "this endpoint needs GET");
        const auto m = find_model(request, name, version);
        if (action == "infer") return infer(m, request, responder);
        return responder.send(
            to_http(action.empty() ? model_metadata(m, name) : json_reply(200, Json{{"name", name}, {"ready", true}})));
      }
    }
    throw ServeError(404, "no such endpoint");
  }

  void handle(HttpRequest& request, const Responder& responder) {
    const auto parts = split_path(request.url);
    try {
      route(request, parts, responder);
    } catch (const ServeError& e) {
      responder.send(error_response(e.status(), e.what()));
    } catch (const std::exception& e) {
      responder.send(error_response(500, std::string("internal error: ") + e.what()));
    }
  }

  // Metrics and the access log, once an answer is on its way.
  void completed(const HttpRequest& request, int status, size_t body_bytes) {
    const double seconds = std::chrono::duration<double>(Clock::now() - request.started).count();
    if (!request.model.empty()) {
      metrics.observe_request(request.model, request.model_version, status, seconds);
    } else {
      metrics.count_request("", "", status);
    }
    if (options.access_log == nullptr) return;
    const std::lock_guard<std::mutex> lock(log_mutex);
    *options.access_log << request.peer << " " << kiln::host::wall_clock_now() << " \"" << request.method << " "
                        << request.url << " HTTP/1." << request.version_minor << "\" " << status << " " << body_bytes
                        << " " << seconds << "\n"
                        << std::flush;
  }
};

Server::Server(ServerOptions options, ModelRepository& repository, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), repository, metrics)) {}

Server::~Server() {
  stop(std::chrono::milliseconds(0));
}

void Server::start() {
  const auto& o = impl_->options;
  HttpFrontOptions front;
  front.host = o.host;
  front.port = o.port;
  front.io_threads = o.io_threads;
  front.backlog = o.max_queued_connections;
  front.max_body_bytes = o.max_body_bytes;
  front.max_connections = o.max_connections;
  front.max_buffered_bytes = o.max_buffered_bytes;
  front.request_timeout = o.request_timeout;
  front.keep_alive_timeout = o.keep_alive_timeout;
  auto& impl = *impl_;
  impl_->http = std::make_unique<HttpFront>(
      front, [&impl](HttpRequest& request, const Responder& responder) { impl.handle(request, responder); },
      [&impl](const HttpRequest& request, int status, size_t bytes) { impl.completed(request, status, bytes); },
      [&impl](size_t loop) { return impl.after_pass(loop); });
  impl_->gathered.resize(impl_->http->loop_count());
  impl_->http->start();
}

uint16_t Server::port() const {
  return impl_->http ? impl_->http->port() : 0;
}

void Server::stop(std::chrono::milliseconds drain) {
  if (impl_->http) impl_->http->stop(drain);
}

}  // namespace kiln::serve

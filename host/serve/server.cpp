#include <kiln/host/host_identity.hpp>
#include <kiln/host/version.hpp>
#include <kiln/serve/server.hpp>

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

namespace kiln::serve {

using host::Json;
using Clock = std::chrono::steady_clock;

namespace {

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string model, version;  // for metrics, when the request named a model
};

Reply json_reply(int status, const Json& j) {
  return Reply{status, j.dump(), "application/json", "", ""};
}

Reply error_reply(int status, const std::string& message) {
  return json_reply(status, Json{{"error", message}});
}

std::vector<std::string> split_path(const std::string& uri) {
  std::string path = uri.substr(0, uri.find('?'));
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = path.find('/', start);
    const std::string part = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!part.empty()) parts.push_back(part);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return parts;
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  ModelRepository& repository;
  Metrics& metrics;
  std::unique_ptr<Poco::ThreadPool> pool;
  std::unique_ptr<Poco::Net::HTTPServer> http;
  std::mutex mutex;  // active count and the access log
  std::condition_variable idle;
  int64_t active = 0;
  bool stopped = false;

  Impl(ServerOptions o, ModelRepository& r, Metrics& m) : options(std::move(o)), repository(r), metrics(m) {}

  Reply model_metadata(const std::shared_ptr<ModelVersion>& m, const std::string& name) const {
    Json j{{"name", name}, {"versions", Json::array()}, {"platform", m->metadata()["platform"]}};
    for (const auto v : repository.versions(name)) j["versions"].push_back(std::to_string(v));
    j["inputs"] = m->metadata()["inputs"];
    j["outputs"] = m->metadata()["outputs"];
    return json_reply(200, j);
  }

  Reply infer(const std::shared_ptr<ModelVersion>& m, const std::string& body) const {
    Json request;
    try {
      request = Json::parse(body);
    } catch (const Json::parse_error& e) {
      return error_reply(400, std::string("the request body is not valid JSON: ") + e.what());
    }
    if (!request.is_object()) return error_reply(400, "the request body must be a JSON object");
    if (!request.contains("inputs") || !request["inputs"].is_array())
      return error_reply(400, "the request needs \"inputs\": an array of tensors");
    if (request.contains("id") && !request["id"].is_string()) return error_reply(400, "\"id\" must be a string");
    InferRequest call;
    for (const auto& input : request["inputs"]) call.inputs.push_back(tensor_from_json(input));
    std::vector<std::string> wanted;
    if (request.contains("outputs")) {
      if (!request["outputs"].is_array()) return error_reply(400, "\"outputs\" must be an array of {\"name\": ...}");
      for (const auto& o : request["outputs"]) {
        if (!o.is_object() || !o.contains("name") || !o["name"].is_string())
          return error_reply(400, "each requested output needs a \"name\"");
        const auto name = o["name"].get<std::string>();
        const auto& declared = m->metadata()["outputs"];
        if (std::none_of(declared.begin(), declared.end(), [&](const Json& d) { return d["name"] == name; }))
          return error_reply(400, "model '" + m->model() + "' has no output '" + name + "'");
        wanted.push_back(name);
      }
    }
    call.deadline = Clock::now() + options.request_timeout;
    const auto outputs = m->infer(std::move(call));
    Json response{{"model_name", m->model()}, {"model_version", std::to_string(m->version())}};
    if (request.contains("id")) response["id"] = request["id"];
    response["outputs"] = Json::array();
    for (const auto& o : outputs)
      if (wanted.empty() || std::find(wanted.begin(), wanted.end(), o.name) != wanted.end())
        response["outputs"].push_back(tensor_to_json(o));
    return json_reply(200, response);
  }

  // Routes one request; throws ServeError for the statuses it maps to.
  Reply route(const std::string& method, const std::vector<std::string>& p, const std::string& body) const {
    const bool get = method == "GET";
    if (p.size() == 1 && p[0] == "metrics" && get)
      return Reply{200, metrics.render(repository.gauges()), "text/plain; version=0.0.4", "", ""};
    if (p.empty() || p[0] != "v2") throw ServeError(404, "no such endpoint");
    if (p.size() == 1 && get)
      return json_reply(200, Json{{"name", "kiln"}, {"version", host::kiln_version()}, {"extensions", Json::array()}});
    if (p.size() == 3 && p[1] == "health" && get) {
      if (p[2] == "live") return json_reply(200, Json{{"live", true}});
      if (p[2] == "ready") {
        if (!repository.all_ready()) throw ServeError(503, "not every model in the repository is ready");
        return json_reply(200, Json{{"ready", true}});
      }
    }
    if (p.size() >= 3 && p[1] == "models") {
      const std::string& name = p[2];
      std::string version;
      size_t next = 3;
      if (p.size() >= 5 && p[3] == "versions") {
        version = p[4];
        next = 5;
      }
      const std::string action = p.size() > next ? p[next] : "";
      if (p.size() <= next + 1 && (action.empty() || action == "ready" || action == "infer")) {
        if (action == "infer" && method != "POST") throw ServeError(405, "infer needs POST");
        if (action != "infer" && !get) throw ServeError(405, "this endpoint needs GET");
        const auto m = repository.find(name, version);
        Reply reply = action.empty()      ? model_metadata(m, name)
                      : action == "ready" ? json_reply(200, Json{{"name", name}, {"ready", true}})
                                          : infer(m, body);
        reply.version = std::to_string(m->version());
        return reply;
      }
    }
    throw ServeError(404, "no such endpoint");
  }
};

namespace {

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(Server::Impl& impl) : impl_(impl) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    const auto started = Clock::now();
    {
      const std::lock_guard<std::mutex> lock(impl_.mutex);
      ++impl_.active;
    }
    const auto parts = split_path(request.getURI());
    const bool names_model = parts.size() >= 3 && parts[0] == "v2" && parts[1] == "models";
    Reply reply;
    try {
      const std::string body = read_body(request);
      reply = impl_.route(request.getMethod(), parts, body);
    } catch (const ServeError& e) {
      reply = error_reply(e.status(), e.what());
      if (e.status() == 413) response.setKeepAlive(false);
    } catch (const std::exception& e) {
      reply = error_reply(500, std::string("internal error: ") + e.what());
    }
    if (names_model) reply.model = parts[2];
    try {
      response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
      response.setContentType(reply.content_type);
      response.setContentLength(static_cast<std::streamsize>(reply.body.size()));
      response.sendBuffer(reply.body.data(), reply.body.size());
    } catch (const std::exception&) {  // the client went away
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    if (names_model) {
      impl_.metrics.count_request(reply.model, reply.version, reply.status);
      impl_.metrics.observe_latency(reply.model, seconds);
    } else {
      impl_.metrics.count_request("", "", reply.status);
    }
    const std::lock_guard<std::mutex> lock(impl_.mutex);
    if (impl_.options.access_log != nullptr)
      *impl_.options.access_log << request.clientAddress().host().toString() << " " << kiln::host::wall_clock_now()
                                << " \"" << request.getMethod() << " " << request.getURI() << " "
                                << request.getVersion() << "\" " << reply.status << " " << reply.body.size() << " "
                                << seconds << "\n"
                                << std::flush;
    if (--impl_.active == 0) impl_.idle.notify_all();
  }

 private:
  std::string read_body(Poco::Net::HTTPServerRequest& request) const {
    const auto limit = impl_.options.max_body_bytes;
    const auto length = request.getContentLength64();
    if (length != Poco::Net::HTTPMessage::UNKNOWN_CONTENT_LENGTH && static_cast<uint64_t>(length) > limit) {
      // Read (and drop) a moderate excess first: closing on unread bytes
      // resets the connection, and the client might never see the 413.
      constexpr int64_t kDrainAtMost = 16 << 20;
      if (length <= kDrainAtMost) request.stream().ignore(static_cast<std::streamsize>(length));
      throw ServeError(413, "the request body has " + std::to_string(length) + " bytes, more than the limit of " +
                                std::to_string(limit));
    }
    std::string body;
    if (length > 0) body.reserve(static_cast<size_t>(length));
    auto& in = request.stream();
    char buffer[65536];
    while (in) {
      in.read(buffer, sizeof buffer);
      body.append(buffer, static_cast<size_t>(in.gcount()));
      if (body.size() > limit)
        throw ServeError(413, "the request body is larger than the limit of " + std::to_string(limit) + " bytes");
    }
    return body;
  }

  Server::Impl& impl_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(Server::Impl& impl) : impl_(impl) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler(impl_);  // Poco takes ownership
  }

 private:
  Server::Impl& impl_;
};

}  // namespace

Server::Server(ServerOptions options, ModelRepository& repository, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), repository, metrics)) {}

Server::~Server() {
  stop(std::chrono::milliseconds(0));
}

void Server::start() {
  auto& o = impl_->options;
  // Not Poco's (address, backlog) constructor: it sets SO_REUSEPORT, which
  // lets a second server bind the same port and silently split the traffic.
  Poco::Net::ServerSocket socket;
  try {
    socket.bind(Poco::Net::SocketAddress(o.host, o.port), true, false);
    socket.listen(o.max_queued_connections);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " + e.displayText());
  }
  auto params = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
  params->setMaxThreads(o.threads);
  params->setMaxQueued(o.max_queued_connections);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);  // unlimited
  params->setKeepAliveTimeout(Poco::Timespan(o.keep_alive_timeout.count() * 1000));
  params->setTimeout(Poco::Timespan(o.request_timeout.count() * 1000));
  params->setServerName("kiln");
  impl_->pool = std::make_unique<Poco::ThreadPool>(2, o.threads + 2);
  impl_->http = std::make_unique<Poco::Net::HTTPServer>(new Factory(*impl_), *impl_->pool, socket, params);
  impl_->http->start();
}

uint16_t Server::port() const {
  return impl_->http ? impl_->http->port() : 0;
}

void Server::stop(std::chrono::milliseconds drain) {
  if (!impl_->http || impl_->stopped) return;
  impl_->stopped = true;
  impl_->http->stopAll(false);  // no new connections; open ones close after their current request
  const auto until = Clock::now() + drain;
  {
    std::unique_lock<std::mutex> lock(impl_->mutex);
    impl_->idle.wait_until(lock, until, [&] { return impl_->active == 0; });
  }
  while (impl_->http->currentConnections() > 0 && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  impl_->http->stopAll(true);
  impl_->pool->joinAll();
}

}  // namespace kiln::serve

// The router: a table of routes (method, OpenAPI path, handler), each path
// matched segment by segment; every refusal is {"error": reason} with its
// status. Handlers run on the I/O thread that received the request (reads
// of the database and of small files); event streams are followed by
// EventStreams' thread.
#include <kiln/ui/ui_server.hpp>

#include <kiln/host/event_log.hpp>
#include <kiln/host/json.hpp>

#include "access.hpp"
#include "event_streams.hpp"
#include "http_front.hpp"
#include "query_string.hpp"
#include "runs_api.hpp"
#include "pipelines_api.hpp"
#include "plugins_api.hpp"
#include "run_control_api.hpp"
#include "artifacts_api.hpp"
#include "metrics_api.hpp"
#include "models_api.hpp"
#include "inference_proxy.hpp"
#include "workspace_db.hpp"
#include "runs_feed.hpp"
#include "static_assets.hpp"

#include <stdexcept>

namespace kiln::ui {

namespace fs = std::filesystem;
using host::Json;

namespace {

// What one request's handler gets: the request, the decoded target and the
// values of the path's {placeholders}, in order.
struct Call {
  http::HttpRequest& request;
  const http::Responder& responder;
  Target target;
  std::vector<std::string> params;
};

http::HttpResponse json_response(int status, const Json& body) {
  http::HttpResponse response{status, body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json"};
  response.headers = {{"Cache-Control", "no-store"}, {"X-Content-Type-Options", "nosniff"}};
  return response;
}

http::HttpResponse error_response(int status, const std::string& reason) {
  return json_response(status, Json{{"error", reason}});
}

// A file's bytes: a download (an attachment) or an image shown inline. Never sniffed as HTML.
http::HttpResponse file_response(FileAnswer file, bool download) {
  std::string name;
  for (const char c : file.file_name)
    name += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ? c : '_';
  using Kind = http::ByteRange::Kind;
  const int status = file.range.kind == Kind::Satisfiable ? 206 : file.range.kind == Kind::Unsatisfiable ? 416 : 200;
  http::HttpResponse response{status, std::move(file.body), file.content_type};
  response.headers = {{"Cache-Control", "no-store"},
                      {"Accept-Ranges", "bytes"},
                      {"X-Content-Type-Options", "nosniff"},
                      {"Content-Security-Policy", "default-src 'none'; sandbox"},
                      {"Content-Disposition", std::string(download ? "attachment" : "inline") + "; filename=\"" +
                                                  (name.empty() ? "file" : name) + "\""}};
  if (status != 200) response.headers.emplace_back("Content-Range", http::content_range(file.range, file.size));
  return response;
}

bool is_placeholder(const std::string& segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

void check_options(const UiOptions& options) {
  std::error_code ec;
  if (options.workspace.empty() || !fs::is_directory(options.workspace, ec))
    throw std::invalid_argument("--workdir " + options.workspace.string() + " is not a directory");
  if (!options.pipelines.empty() && !fs::is_directory(options.pipelines, ec))
    throw std::invalid_argument("--pipelines " + options.pipelines.string() + " is not a directory");
  if (!options.models.empty() && !fs::is_directory(options.models, ec))
    throw std::invalid_argument("--models " + options.models.string() + " is not a directory");
  if (!options.ui_dir.empty() && !fs::is_regular_file(options.ui_dir / "index.html", ec))
    throw std::invalid_argument("--ui-dir " + options.ui_dir.string() + " holds no index.html (give host/ui/web)");
  if (options.token.empty() && !is_loopback_host(options.host))
    throw std::invalid_argument("--host " + options.host +
                                " is not a loopback address: anyone who can reach it could read the workspace, so "
                                "give --token-file FILE (a secret of at least " +
                                std::to_string(kMinTokenLength) + " characters)");
}

struct UiServer::Impl {
  using Handler = void (Impl::*)(Call&);
  struct Entry {
    Route route;
    std::vector<std::string> segments;
    Handler handler;
  };

  explicit Impl(UiOptions o)
      : options(std::move(o)),
        access(options.token),
        runs(options.workspace),
        streams(options.poll, options.heartbeat),
        pipelines(options.pipelines),
        plugins(options.kiln, options.plugin_dirs),
        control(options.workspace, options.kiln, pipelines, plugins),
        db(options.workspace),
        artifacts(options.workspace, db),
        metrics(options.workspace, db, [this](const std::string& id) { return runs.run_dir(id); }),
        models(options.models, db),
        feed(options.workspace, options.poll, options.heartbeat),
        assets(options.ui_dir) {}

  static const std::vector<Entry>& table() {
    static const std::vector<Entry> entries = [] {
      const std::vector<std::pair<Route, Handler>> routes{
          {{"GET", "/api/v1/runs"}, &Impl::list_runs},
          {{"GET", "/api/v1/runs/{id}"}, &Impl::run_detail},
          {{"GET", "/api/v1/runs/{id}/events"}, &Impl::run_events},
          {{"GET", "/api/v1/events"}, &Impl::workspace_events},
          {{"GET", "/api/v1/runs/{id}/steps/{step}/logs"}, &Impl::step_logs},
          {{"GET", "/api/v1/runs/{id}/steps/{step}/logs/raw"}, &Impl::raw_step_log},
          {{"GET", "/api/v1/session"}, &Impl::session},
          {{"POST", "/api/v1/login"}, &Impl::login},
          {{"POST", "/api/v1/logout"}, &Impl::logout},
          // Starting and stopping runs (run_control_api.cpp, pipelines_api.cpp).
          {{"GET", "/api/v1/pipelines"}, &Impl::list_pipelines},
          {{"GET", "/api/v1/pipelines/{name}"}, &Impl::pipeline_detail},
          {{"POST", "/api/v1/runs"}, &Impl::start_run},
          {{"POST", "/api/v1/runs/{id}/cancel"}, &Impl::cancel_run},
          {{"POST", "/api/v1/runs/{id}/resume"}, &Impl::resume_run},
          {{"POST", "/api/v1/runs/{id}/rerun"}, &Impl::rerun_run},
          {{"GET", "/api/v1/launches/{id}"}, &Impl::launch_log},
          {{"GET", "/api/v1/plugins"}, &Impl::list_plugins},
          // Artifacts and lineage (artifacts_api.cpp).
          {{"GET", "/api/v1/artifacts/{digest}"}, &Impl::artifact_info},
          {{"GET", "/api/v1/artifacts/{digest}/content"}, &Impl::artifact_content},
          {{"GET", "/api/v1/artifacts/{digest}/preview"}, &Impl::artifact_preview},
          {{"GET", "/api/v1/artifacts/{digest}/lineage"}, &Impl::artifact_lineage},
          {{"GET", "/api/v1/runs/{id}/lineage"}, &Impl::run_lineage},
          // Metrics, trials, comparison (metrics_api.cpp); models (models_api.cpp).
          {{"GET", "/api/v1/runs/{id}/steps/{step}/metrics"}, &Impl::step_metrics},
          {{"GET", "/api/v1/runs/{id}/steps/{step}/trials"}, &Impl::step_trials},
          {{"GET", "/api/v1/compare"}, &Impl::compare_runs},
          {{"GET", "/api/v1/models"}, &Impl::list_models},
          {{"POST", "/api/v1/models/{name}/infer"}, &Impl::infer},
      };
      std::vector<Entry> out;
      for (const auto& [route, handler] : routes)
        out.push_back(Entry{route, split_nonempty(route.path, '/'), handler});  // "{x}": any one segment
      return out;
    }();
    return entries;
  }

  void handle(http::HttpRequest& request, const http::Responder& responder) {
    try {
      Call call{request, responder, parse_target(request.url), {}};
      // Everything outside /api is the UI's files: static, public (the login page is one), GET or HEAD.
      if (call.target.segments.empty() || call.target.segments.front() != "api") {
        if (request.method != "GET" && request.method != "HEAD") {
          auto response =
              error_response(405, "method " + request.method + " is not allowed here (allowed: GET, HEAD)");
          response.headers.emplace_back("Allow", "GET, HEAD");
          return responder.send(std::move(response));
        }
        auto response = assets.serve(call.target.segments, request);
        response.head_only = request.method == "HEAD";
        return responder.send(std::move(response));
      }
      const Entry* match = nullptr;
      std::string allowed;
      for (const auto& entry : table()) {
        if (entry.segments.size() != call.target.segments.size()) continue;
        std::vector<std::string> params;
        bool same = true;
        for (size_t i = 0; i < entry.segments.size() && same; ++i) {
          if (is_placeholder(entry.segments[i]))
            params.push_back(call.target.segments[i]);
          else
            same = entry.segments[i] == call.target.segments[i];
        }
        if (!same) continue;
        if (entry.route.method != request.method) {
          allowed += (allowed.empty() ? "" : ", ") + entry.route.method;
          continue;
        }
        match = &entry;
        call.params = std::move(params);
        break;
      }
      if (match == nullptr && !allowed.empty()) {
        auto response = error_response(405, "method " + request.method + " is not allowed here (allowed: " + allowed + ")");
        response.headers.emplace_back("Allow", allowed);
        return responder.send(std::move(response));
      }
      if (match == nullptr)
        throw ApiError(404, "no such endpoint: the API is under /api/v1 (docs/api/openapi.yaml)");
      // Signing in and out and asking whether one is need no token (their Origin is still checked).
      const bool open = match->handler == &Impl::login || match->handler == &Impl::logout ||
                        match->handler == &Impl::session;
      access.check(request, open);
      (this->*(match->handler))(call);
    } catch (const ApiError& e) {
      auto response = e.problems().is_null()
                          ? error_response(e.status(), e.what())
                          : json_response(e.status(), Json{{"error", e.what()}, {"problems", e.problems()}});
      if (e.status() == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
      responder.send(std::move(response));
    } catch (const std::exception& e) {
      responder.send(error_response(500, std::string("internal error: ") + e.what()));
    }
  }

  void list_runs(Call& call) { call.responder.send(json_response(200, runs.list(call.target.query))); }

  void run_detail(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(200, runs.detail(call.params[0])));
  }

  void step_logs(Call& call) {
    call.responder.send(json_response(200, runs.step_log(call.params[0], call.params[1], call.target.query)));
  }

  void raw_step_log(Call& call) {
    call.responder.send(file_response(
        runs.raw_log(call.params[0], call.params[1], call.target.query, call.request.header("range")), true));
  }

  // The run's events from `from` (?from=, or one past Last-Event-ID), then
  // live until run_finished. A run that has finished with nothing after
  // `from` is answered 204, which tells a browser's EventSource to stop
  // reconnecting.
  void run_events(Call& call) {
    const QueryParams& query = call.target.query;
    query.allow_only({"from"});
    uint64_t from = static_cast<uint64_t>(query.integer("from", 1, 1, INT64_MAX / 2));
    if (const std::string* last = call.request.header("last-event-id"); last && !last->empty()) {
      const auto id = parse_integer(*last, 0, INT64_MAX / 2);
      if (!id) throw ApiError(400, "Last-Event-ID must be an event's sequence number, not '" + last->substr(0, 64) + "'");
      from = std::max(from, static_cast<uint64_t>(*id) + 1);
    }
    const fs::path dir = runs.run_dir(call.params[0]);
    host::EventLogReader reader(dir / host::kEventLogName);
    std::vector<Json> events;
    try {
      events = reader.poll();
    } catch (const std::exception& e) {
      throw ApiError(500, e.what());
    }
    if (reader.run_finished() && !events.empty() && events.back().value("seq", uint64_t{0}) < from)
      return call.responder.send(http::HttpResponse{204, "", "application/json"});
    const http::Stream stream = call.responder.stream();
    std::string first = "retry: " + std::to_string(options.retry.count()) + "\n\n";
    for (const auto& event : events)
      if (event.value("seq", uint64_t{0}) >= from) first += sse_message(event);
    if (reader.run_finished()) {
      stream.write(first + sse_end("run_finished"));
      return stream.close();
    }
    stream.write(std::move(first));
    streams.follow(stream, std::move(reader));
  }

  // Run-level changes of the whole workspace (RunsFeed), for the runs list.
  void workspace_events(Call& call) {
    call.target.query.allow_only({});
    const http::Stream stream = call.responder.stream();
    stream.write("retry: " + std::to_string(options.retry.count()) + "\n\n");
    feed.add(stream);
  }

  // POST /api/v1/login {"token": "..."}: the token in an HttpOnly,
  // SameSite=Strict cookie, for a browser (which cannot add a header to an EventSource).
  void login(Call& call) {
    call.target.query.allow_only({});
    if (!access.token_required())
      return call.responder.send(json_response(200, Json{{"token_required", false}}));
    const Json body = Json::parse(call.request.body, nullptr, false);
    if (!body.is_object() || !body.contains("token") || !body["token"].is_string())
      throw ApiError(400, "the body must be a JSON object {\"token\": \"...\"}");
    if (!access.matches(body["token"].get<std::string>())) throw ApiError(401, "wrong token");
    auto response = json_response(200, Json{{"token_required", true}});
    response.headers.emplace_back("Set-Cookie", access.session_cookie());
    call.responder.send(std::move(response));
  }

  // POST /api/v1/logout: the cookie cleared (asks for no token: forgetting one harms nobody).
  void logout(Call& call) {
    call.target.query.allow_only({});
    auto response = json_response(200, Json{{"token_required", access.token_required()}, {"signed_in", false}});
    if (access.token_required()) response.headers.emplace_back("Set-Cookie", access.cleared_cookie());
    call.responder.send(std::move(response));
  }

  // GET /api/v1/session: whether this server needs a token and whether this
  // request carries it, so that a page shows the sign-in form (or a sign-out
  // button) without first being refused.
  void session(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(
        200, Json{{"token_required", access.token_required()}, {"signed_in", access.signed_in(call.request)}}));
  }

  void list_pipelines(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(200, pipelines.list()));
  }
  void pipeline_detail(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(200, pipelines.detail(call.params[0], plugins.catalog())));
  }
  void start_run(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(202, control.start(call.request.body)));
  }
  void cancel_run(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(202, control.cancel(call.params[0])));
  }
  void resume_run(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(202, control.resume(call.params[0])));
  }
  void rerun_run(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(202, control.rerun(call.params[0], call.request.body)));
  }
  void launch_log(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(200, control.launch_log(call.params[0])));
  }
  void list_plugins(Call& call) { call.responder.send(json_response(200, plugins.list(call.target.query))); }

  void artifact_info(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(200, artifacts.info(call.params[0])));
  }
  void artifact_content(Call& call) {
    call.responder.send(
        file_response(artifacts.content(call.params[0], call.target.query, call.request.header("range")), true));
  }
  void artifact_preview(Call& call) {
    FileAnswer image;
    const Json preview = artifacts.preview(call.params[0], call.target.query, &image);
    call.responder.send(preview.is_null() ? file_response(std::move(image), false) : json_response(200, preview));
  }
  void artifact_lineage(Call& call) {
    call.responder.send(json_response(200, artifacts.lineage(call.params[0], call.target.query)));
  }
  void run_lineage(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(200, artifacts.run_lineage(call.params[0])));
  }
  void step_metrics(Call& call) {
    call.responder.send(json_response(200, metrics.metrics(call.params[0], call.params[1], call.target.query)));
  }
  void step_trials(Call& call) {
    call.target.query.allow_only({});
    call.responder.send(json_response(200, metrics.trials(call.params[0], call.params[1])));
  }
  void compare_runs(Call& call) { call.responder.send(json_response(200, metrics.compare(call.target.query))); }
  void list_models(Call& call) { call.responder.send(json_response(200, models.list(call.target.query))); }
  // Answered later, from the proxy's worker thread (a Responder may be used from any thread).
  void infer(Call& call) {
    proxy.forward(call.params[0], call.target.query, call.request.body,
                  [responder = call.responder](int status, Json body) { responder.send(json_response(status, body)); });
  }

  UiOptions options;
  Access access;
  RunsApi runs;
  EventStreams streams;
  PipelinesApi pipelines;
  PluginsApi plugins;
  RunControlApi control;
  WorkspaceDb db;
  ArtifactsApi artifacts;
  MetricsApi metrics;
  ModelsApi models;
  RunsFeed feed;
  StaticAssets assets;
  InferenceProxy proxy;
  std::unique_ptr<http::HttpFront> front;
};

const std::vector<Route>& api_routes() {
  static const std::vector<Route> routes = [] {
    std::vector<Route> out;
    for (const auto& entry : UiServer::Impl::table()) out.push_back(entry.route);
    return out;
  }();
  return routes;
}

UiServer::UiServer(UiOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  check_options(impl_->options);
}

UiServer::~UiServer() {
  stop(std::chrono::milliseconds(0));
}

void UiServer::start() {
  http::HttpFrontOptions o;
  o.host = impl_->options.host;
  o.port = impl_->options.port;
  o.io_threads = impl_->options.io_threads;
  o.max_body_bytes = 1 << 20;  // the API takes small JSON bodies only
  o.max_buffered_bytes = 64 << 20;
  o.kept_headers = kept_request_headers();
  impl_->front = std::make_unique<http::HttpFront>(
      o, [impl = impl_.get()](http::HttpRequest& request, const http::Responder& responder) {
        impl->handle(request, responder);
      },
      nullptr);
  impl_->front->start();
}

uint16_t UiServer::port() const {
  return impl_->front ? impl_->front->port() : 0;
}

size_t UiServer::open_streams() const {
  return impl_->streams.open() + impl_->feed.open();
}

void UiServer::stop(std::chrono::milliseconds drain) {
  if (impl_->front) impl_->front->stop(drain);  // closes every stream: their follower drops them
}

}  // namespace kiln::ui

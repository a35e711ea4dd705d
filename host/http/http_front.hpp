// The event-driven HTTP/1.1 front end shared by `kiln serve` and `kiln ui`
// (library kiln_http, host/http/README.md): a few I/O threads, each an epoll
// loop over non-blocking sockets, requests parsed by http-parser. A handler
// gets each request on the connection's loop thread and answers through a
// Responder, at once or later from any thread (the dynamic batcher's). Why
// and how: docs/architecture.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::http {

struct HttpFrontOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                  // 0: any free port
  int io_threads = 0;                 // 0: one per core
  int backlog = 256;                  // listen(2) queue
  size_t max_body_bytes = 64u << 20;  // larger bodies get 413, decided from Content-Length when it is sent
  // Connections open at once; one more is answered 503 and closed.
  size_t max_connections = 1024;
  // Request bytes held over all connections (received and not yet
  // answered: bodies, unparsed input). A connection whose bytes would take
  // the total past it is answered 503 and closed.
  size_t max_buffered_bytes = 256u << 20;
  std::chrono::milliseconds request_timeout{30000};     // to receive a request, and for its answer (then 504)
  std::chrono::milliseconds keep_alive_timeout{10000};  // an idle connection is closed after this
  // Request headers kept in HttpRequest::headers, by lower-case name (the
  // others are parsed and dropped: a server that reads none allocates none).
  std::vector<std::string> kept_headers;
};

struct HttpRequest {
  std::string method, url;
  int version_minor = 1;  // HTTP/1.<minor>
  std::string body;
  // The headers named in HttpFrontOptions::kept_headers, names in lower case,
  // values without surrounding blanks, in the order received.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string peer;  // client address
  size_t loop = 0;   // index of the I/O thread that received it
  std::chrono::steady_clock::time_point started;
  // Set by the handler: labels for the completion callback (metrics), and
  // what must stay alive until the answer is sent (a model version).
  std::string model, model_version;
  std::shared_ptr<const void> hold;

  // The first kept header of that (lower-case) name; nullptr when it was not sent.
  const std::string* header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  const char* content_type = "application/json";
  bool close = false;  // close the connection after this answer
  // The answer to a HEAD request: the head that GET would get (its
  // Content-Length is the body's size), and no body.
  bool head_only = false;
  // More header lines ("Set-Cookie", ...). A name or value holding CR or LF
  // is not sent (no header can be injected).
  std::vector<std::pair<std::string, std::string>> headers{};
};

class HttpFront;

// A streamed answer (Server-Sent Events): 200 with the stream's content type,
// `Cache-Control: no-cache` and no length, then whatever is written, until
// close(); the connection closes with it. Any thread may write. While open,
// the connection has no request, answer or keep-alive timeout (it still
// counts against max_connections); a client that stops reading for the
// request timeout, or leaves more than 1 MiB unread, is disconnected. When
// the client goes away (or the server stops) the stream is closed: write()
// then returns false and closed() true, so a producer knows to stop.
class Stream {
 public:
  struct Target;
  Stream() = default;  // closed
  explicit Stream(std::shared_ptr<Target> target) : target_(std::move(target)) {}
  // Queues bytes to send; false when the stream is closed (nothing is sent).
  bool write(std::string bytes) const;
  // Ends the answer after what was written (the connection closes).
  void close() const;
  bool closed() const;

 private:
  std::shared_ptr<Target> target_;
};

// Answers one request, exactly once, from any thread: with send(), or by
// opening a stream. A late answer (the request already timed out, the
// connection is gone) is dropped; a late stream is closed at once.
class Responder {
 public:
  struct Target;
  explicit Responder(std::shared_ptr<Target> target) : target_(std::move(target)) {}
  void send(HttpResponse response) const;
  Stream stream(const char* content_type = "text/event-stream") const;

 private:
  std::shared_ptr<Target> target_;
};

class HttpFront {
 public:
  // Called on the loop thread with each complete request.
  using Handler = std::function<void(HttpRequest& request, Responder responder)>;
  // Called on the loop thread once an answer is queued for sending (metrics, access log).
  using Completed = std::function<void(const HttpRequest& request, int status, size_t body_bytes)>;

  // Called on loop thread `loop` after each pass over its ready connections
  // (and its timeouts): requests gathered meanwhile can be answered together.
  // Returns whether some are left (then the loop polls without sleeping and
  // calls it again after the next pass).
  using AfterPass = std::function<bool(size_t loop)>;

  HttpFront(HttpFrontOptions options, Handler handler, Completed completed, AfterPass after_pass = nullptr);
  ~HttpFront();  // stop(0)
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  // Binds and listens (throws std::runtime_error naming the address), then starts the loops.
  void start();
  uint16_t port() const;
  // How many loops (I/O threads) there are: options.io_threads, or one per core.
  size_t loop_count() const;
  // Connections open now (those being refused not counted), and the request
  // bytes they hold: what max_connections and max_buffered_bytes bound.
  size_t open_connections() const;
  size_t buffered_bytes() const;
  // Stops accepting, closes idle connections, lets requests in progress be
  // answered (at most `drain`), then closes the rest and joins the loops.
  void stop(std::chrono::milliseconds drain);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// "{\"error\": message}" with JSON escaping (invalid UTF-8 is replaced, never thrown on).
std::string json_error_body(const std::string& message);

}  // namespace kiln::http

// kiln serve's names for these from before the layer was shared (its tests
// and the request parser's fuzzer use them).
namespace kiln::serve {
using http::HttpFront;
using http::HttpFrontOptions;
using http::HttpRequest;
using http::HttpResponse;
using http::json_error_body;
using http::Responder;
}  // namespace kiln::serve

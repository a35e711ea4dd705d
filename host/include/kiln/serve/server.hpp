// The HTTP front of `kiln serve`: the Open Inference Protocol (KServe V2)
// REST endpoints on an event-driven HTTP/1.1 front end (a few epoll I/O
// threads; host/http/http_front.hpp), /metrics and an access log.
#pragma once

#include <kiln/serve/metrics.hpp>
#include <kiln/serve/repository.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>

namespace kiln::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;               // 0: any free port (see Server::port)
  int io_threads = 0;                 // epoll I/O threads, each serving many connections; 0: one per core
  int max_queued_connections = 256;   // listen backlog
  size_t max_body_bytes = 64u << 20;  // larger request bodies get 413
  size_t max_connections = 1024;      // open at once; more are answered 503 and closed
  size_t max_buffered_bytes = 256u << 20;  // request bytes held over all connections; past it 503
  std::chrono::milliseconds request_timeout{30000};  // to receive a request, and to answer it (504)
  std::chrono::milliseconds keep_alive_timeout{10000};
  std::ostream* access_log = nullptr;  // one line per request when set
};

class Server {
 public:
  Server(ServerOptions options, ModelRepository& repository, Metrics& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start();
  uint16_t port() const;
  // Stops accepting, closes idle connections, lets requests in progress be
  // answered (at most `drain`), then closes the rest.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(30));

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::serve

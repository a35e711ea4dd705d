// The HTTP front of `kiln serve`: the Open Inference Protocol (KServe V2)
// REST endpoints on Poco's HTTPServer, /metrics and an access log.
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
  uint16_t port = 8080;  // 0: any free port (see Server::port)
  int threads = 64;      // HTTP worker threads: one per open (keep-alive) connection
  int max_queued_connections = 256;
  size_t max_body_bytes = 64u << 20;  // larger request bodies get 413
  std::chrono::milliseconds request_timeout{30000};
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
  // Stops accepting, lets requests in progress finish (at most `drain`),
  // then closes idle keep-alive connections.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(30));

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::serve

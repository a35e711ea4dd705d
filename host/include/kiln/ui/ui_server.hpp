// `kiln ui`'s server (library kiln_ui, host/ui/README.md): the JSON API under
// /api/v1 and the runs' live event streams, on the HTTP layer kiln serve
// shares (host/http). It reads a workspace (its database, run records, event
// logs and log files); runs are other processes (`kiln run`), so stopping
// the server stops no run. The API is described by docs/api/openapi.yaml.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace kiln::ui {

struct UiOptions {
  std::filesystem::path workspace;
  std::filesystem::path pipelines;  // --pipelines: the pipeline files offered to start runs from
  std::filesystem::path models;     // --models: a serving repository to show (docs/serving.md); empty: none
  // The kiln executable that runs are started with (`kiln run`, `kiln
  // resume`) and that scans plugin libraries; empty: this process's own.
  std::filesystem::path kiln;
  // Where the plugin catalog is read from; empty: the default search path.
  std::vector<std::filesystem::path> plugin_dirs;
  // --ui-dir: serve the web UI's files from this directory (host/ui/web),
  // read at each request, instead of the copy compiled in. Empty: the copy.
  std::filesystem::path ui_dir;
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  // The API token (--token-file). Empty: none, and then `host` must be a
  // loopback address (check_options).
  std::string token;
  int io_threads = 2;
  std::chrono::milliseconds poll{100};  // how often open event streams look for new events
  std::chrono::milliseconds heartbeat{15000};
  std::chrono::milliseconds retry{2000};  // the reconnection delay a stream asks its client for
};

// A token shorter than this is refused (a guessable one is no lock).
inline constexpr size_t kMinTokenLength = 16;
inline constexpr size_t kMaxTokenLength = 4096;

// The token in `file` (--token-file): its content without surrounding white
// space. Throws std::runtime_error naming the file when it cannot be read,
// is shorter than kMinTokenLength or longer than kMaxTokenLength, or holds
// white space, control characters or characters a cookie cannot carry.
std::string read_token_file(const std::filesystem::path& file);

// Whether `host` (an address or a name, IPv6 possibly in brackets) is this
// machine's loopback: 127.0.0.0/8, ::1, "localhost". 0.0.0.0 is not.
bool is_loopback_host(const std::string& host);

// Throws std::invalid_argument with the reason when the options cannot be
// served: no workspace directory, a --pipelines that is not a directory, a
// --ui-dir without an index.html, a
// non-loopback host without a token.
void check_options(const UiOptions& options);

// One route of the API: its method and its path as OpenAPI writes it
// ("/api/v1/runs/{id}"). The server dispatches from this very table.
struct Route {
  std::string method;
  std::string path;
};
const std::vector<Route>& api_routes();

class UiServer {
 public:
  explicit UiServer(UiOptions options);  // check_options first
  ~UiServer();                           // stop()
  UiServer(const UiServer&) = delete;
  UiServer& operator=(const UiServer&) = delete;

  // Listens (throws std::runtime_error naming the address).
  void start();
  uint16_t port() const;
  // Event streams open now.
  size_t open_streams() const;
  // Closes the streams and the connections, after at most `drain` for answers in progress.
  void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(1000));

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::ui

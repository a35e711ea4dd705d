// POST /api/v1/models/{model}/infer?port=N[&version=V]: one inference
// request, for the Models view's form, sent on to a `kiln serve` on this
// machine (http://127.0.0.1:N/v2/models/MODEL[/versions/V]/infer, the Open
// Inference Protocol, docs/serving.md) and its answer shown. Only loopback
// and only that path can be reached (a client names a port, never a host or
// a URL); the request body must be JSON of at most kMaxInferenceRequestBytes
// and the answer read is at most kMaxInferenceAnswerBytes. One worker thread
// sends the requests, so no I/O thread waits on kiln serve; at most
// kMaxInferenceQueue wait.
#pragma once

#include "api_error.hpp"
#include "query_string.hpp"

#include <kiln/host/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace kiln::ui {

inline constexpr size_t kMaxInferenceRequestBytes = 256 << 10;
inline constexpr size_t kMaxInferenceAnswerBytes = 4 << 20;
inline constexpr size_t kMaxInferenceQueue = 8;

class InferenceProxy {
 public:
  // How an answer goes back: the HTTP status and the JSON body.
  using Answer = std::function<void(int status, host::Json body)>;

  // `timeout`: how long kiln serve may take to accept and to answer.
  explicit InferenceProxy(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Cuts the request in progress, answers those waiting 503, joins the worker.
  ~InferenceProxy();
  InferenceProxy(const InferenceProxy&) = delete;
  InferenceProxy& operator=(const InferenceProxy&) = delete;

  // Checks the request (ApiError 400 naming the parameter or the body, 413,
  // 503 when kMaxInferenceQueue wait) and queues it; `answer` is called
  // later on the worker thread: 200 {"url", "status", "duration_ms", "body"
  // (kiln serve's JSON) or "text"}, whatever kiln serve answered; 502 when it
  // could not be reached or its answer was not HTTP or too long; 504 when it
  // took longer than the timeout.
  void forward(const std::string& model, const QueryParams& query, const std::string& body, Answer answer);

 private:
  struct Job {
    uint16_t port;
    std::string path, body;
    Answer answer;
  };
  void work();
  void send(const Job& job);

  const std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  int in_progress_fd_ = -1;  // the socket of the request being sent (cut on stop)
  std::thread worker_;
};

}  // namespace kiln::ui

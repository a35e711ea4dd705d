#include "inference_proxy.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>

#include <sys/socket.h>

#include <cctype>

namespace kiln::ui {

using host::Json;

namespace {

// A model name as kiln serve's repository holds it: a directory name, in a URL path as is.
void check_model_name(const std::string& model) {
  bool plain = !model.empty() && model.size() <= 128 && model != "." && model != "..";
  for (const char c : model)
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  if (!plain)
    throw ApiError(400, "'" + model.substr(0, 64) +
                            "' is not a model name (1 to 128 letters, digits, '.', '_', '-'; not '.' or '..')");
}

Poco::Timespan span(std::chrono::milliseconds ms) {
  return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000);
}

}  // namespace

InferenceProxy::InferenceProxy(std::chrono::milliseconds timeout) : timeout_(timeout), worker_([this] { work(); }) {}

InferenceProxy::~InferenceProxy() {
  std::deque<Job> left;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    if (in_progress_fd_ >= 0) ::shutdown(in_progress_fd_, SHUT_RDWR);
    left.swap(queue_);
  }
  wake_.notify_all();
  worker_.join();
  for (const Job& job : left) job.answer(503, Json{{"error", "kiln ui is stopping"}});
}

void InferenceProxy::forward(const std::string& model, const QueryParams& query, const std::string& body,
                             Answer answer) {
  query.allow_only({"port", "version"});
  check_model_name(model);
  const auto port = query.optional_integer("port", 1, 65535);
  if (!port) throw ApiError(400, "query parameter 'port' is missing: the port kiln serve listens on (127.0.0.1)");
  const auto version = query.optional_integer("version", 1, 1'000'000'000);
  if (body.size() > kMaxInferenceRequestBytes)
    throw ApiError(413, "the request has " + std::to_string(body.size()) + " bytes; at most " +
                            std::to_string(kMaxInferenceRequestBytes) + " are sent on");
  const Json parsed = Json::parse(body, nullptr, false);
  if (!parsed.is_object())
    throw ApiError(400, "the request must be a JSON object (an Open Inference Protocol request: {\"inputs\": [...]})");
  Job job{static_cast<uint16_t>(*port),
          "/v2/models/" + model + (version ? "/versions/" + std::to_string(*version) : "") + "/infer", body,
          std::move(answer)};
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.size() >= kMaxInferenceQueue)
      throw ApiError(503, std::to_string(kMaxInferenceQueue) + " inference requests are waiting already; try again");
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void InferenceProxy::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    send(job);
  }
}

void InferenceProxy::send(const Job& job) {
  const std::string url = "http://127.0.0.1:" + std::to_string(job.port) + job.path;
  const auto started = std::chrono::steady_clock::now();
  int status = 502;
  Json out;
  try {
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress("127.0.0.1", job.port), span(timeout_));
    Poco::Net::HTTPClientSession session(socket);
    session.setTimeout(span(timeout_), span(timeout_), span(timeout_));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, job.path, Poco::Net::HTTPMessage::HTTP_1_1);
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(job.body.size()));
    request.setKeepAlive(false);
    {  // connected: a stop cuts this socket
      const std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) throw Poco::Exception("kiln ui is stopping");
      in_progress_fd_ = socket.impl()->sockfd();
    }
    struct Forget {
      InferenceProxy* proxy;
      ~Forget() {
        const std::lock_guard<std::mutex> lock(proxy->mutex_);
        proxy->in_progress_fd_ = -1;
      }
    } forget{this};
    session.sendRequest(request) << job.body;
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    std::string text;
    char buffer[1 << 14];
    while (text.size() <= kMaxInferenceAnswerBytes && in.read(buffer, sizeof buffer).gcount() > 0)
      text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxInferenceAnswerBytes)
      throw Poco::Exception("its answer is longer than " + std::to_string(kMaxInferenceAnswerBytes) + " bytes");
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    status = 200;
    out = Json{{"url", url}, {"status", static_cast<int>(response.getStatus())}, {"duration_ms", ms}};
    Json body = Json::parse(text, nullptr, false);
    if (body.is_discarded())
      out["text"] = text.substr(0, 64 << 10);
    else
      out["body"] = std::move(body);
  } catch (const Poco::TimeoutException&) {
    status = 504;
    out = Json{{"error", "kiln serve at " + url + " did not answer within " + std::to_string(timeout_.count()) +
                             " ms"}};
  } catch (const Poco::Exception& e) {
    out = Json{{"error", "no answer from kiln serve at " + url + ": " + e.displayText()}};
  } catch (const std::exception& e) {
    out = Json{{"error", "no answer from kiln serve at " + url + ": " + e.what()}};
  }
  job.answer(status, std::move(out));
}

}  // namespace kiln::ui

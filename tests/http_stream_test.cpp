// Streamed answers (Server-Sent Events) of the shared HTTP layer
// (host/http/http_front.hpp), and the request headers it keeps, over real
// sockets on 127.0.0.1: the stream's head, chunks written from another
// thread, no idle or request timeout while it is open, the connection limit,
// cleanup when the client leaves, the end at stop. Every wait is bounded.
#include "http_front.hpp"
#include "raw_http_client.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::test {
namespace {

using http::HttpFront;
using http::HttpFrontOptions;
using http::HttpRequest;
using http::HttpResponse;
using http::Responder;
using http::Stream;
using namespace std::chrono_literals;

std::string get(const std::string& path, const std::string& extra_headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
}

// A front end whose /stream opens a stream (its first event written by the
// handler itself) and keeps it for the test to write to; /echo-header
// answers the kept header x-probe.
class StreamFront {
 public:
  explicit StreamFront(HttpFrontOptions options = {}) {
    options.port = 0;
    options.kept_headers = {"x-probe"};
    front_ = std::make_unique<HttpFront>(
        options, [this](HttpRequest& request, const Responder& responder) { handle(request, responder); }, nullptr);
    front_->start();
  }
  uint16_t port() const { return front_->port(); }
  size_t connections() const { return front_->open_connections(); }
  void stop(std::chrono::milliseconds drain) { front_->stop(drain); }
  // The n-th stream opened (0-based), once it is there.
  Stream stream(size_t n) {
    Stream found;
    poll_until([&] {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (streams_.size() <= n) return false;
      found = streams_[n];
      return true;
    });
    return found;
  }

 private:
  void handle(HttpRequest& request, const Responder& responder) {
    if (request.url == "/stream") {
      const Stream stream = responder.stream();
      stream.write("retry: 1000\n\ndata: open\n\n");
      const std::lock_guard<std::mutex> lock(mutex_);
      streams_.push_back(stream);
      return;
    }
    if (request.url == "/echo-header") {
      const std::string* probe = request.header("x-probe");
      HttpResponse response{200, probe ? *probe : "(none)", "text/plain"};
      response.headers = {{"X-Answer", "yes"}, {"X-Bad", "a\r\nInjected: 1"}};
      return responder.send(std::move(response));
    }
    responder.send(HttpResponse{404, http::json_error_body("no such endpoint")});
  }

  std::mutex mutex_;
  std::vector<Stream> streams_;
  std::unique_ptr<HttpFront> front_;
};

TEST(HttpStream, AStreamHasSseHeadersAndCarriesWritesFromAnyThread) {
  StreamFront f;
  Client c(f.port());
  c.send(get("/stream"));
  const Reply head = c.read_head();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(header_of(head, "content-type"), "text/event-stream");
  EXPECT_EQ(header_of(head, "cache-control"), "no-cache");
  EXPECT_EQ(header_of(head, "content-length"), "");
  EXPECT_EQ(c.read_until("data: open\n\n"), "retry: 1000\n\ndata: open\n\n");
  const Stream stream = f.stream(0);
  std::thread writer([stream] {
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(stream.write("data: " + std::to_string(i) + "\n\n"));
  });
  writer.join();
  EXPECT_EQ(c.read_until("data: 2\n\n"), "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  stream.close();
  EXPECT_TRUE(stream.closed());
  EXPECT_FALSE(stream.write("data: late\n\n"));
  EXPECT_TRUE(c.closed_by_server());
}

TEST(HttpStream, AnOpenStreamHasNoIdleOrRequestTimeout) {
  HttpFrontOptions options;
  options.keep_alive_timeout = 100ms;
  options.request_timeout = 100ms;
  StreamFront f(options);
  Client c(f.port());
  c.send(get("/stream"));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_FALSE(c.read_until("data: open\n\n").empty());
  // Several sweeps pass while nothing is written: both timeouts are long gone.
  std::this_thread::sleep_for(600ms);
  const Stream stream = f.stream(0);
  EXPECT_FALSE(stream.closed());
  EXPECT_TRUE(stream.write("data: still here\n\n"));
  EXPECT_EQ(c.read_until("\n\n"), "data: still here\n\n");
}

TEST(HttpStream, StreamsCountAgainstTheConnectionLimit) {
  HttpFrontOptions options;
  options.max_connections = 2;
  StreamFront f(options);
  std::vector<std::unique_ptr<Client>> open;
  for (int i = 0; i < 2; ++i) {
    open.push_back(std::make_unique<Client>(f.port()));
    open.back()->send(get("/stream"));
    ASSERT_EQ(open.back()->read_head().status, 200);
  }
  Client extra(f.port());
  extra.send(get("/echo-header"));
  const Reply refused = extra.read_reply();
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("--max-connections"), std::string::npos) << refused.body;
}

TEST(HttpStream, AStreamIsClosedAndItsConnectionFreedWhenTheClientLeaves) {
  StreamFront f;
  auto c = std::make_unique<Client>(f.port());
  c->send(get("/stream"));
  ASSERT_EQ(c->read_head().status, 200);
  const Stream stream = f.stream(0);
  ASSERT_FALSE(stream.closed());
  EXPECT_EQ(f.connections(), 1u);
  c.reset();  // the client goes away
  EXPECT_TRUE(poll_until([&] { return stream.closed(); }));
  EXPECT_FALSE(stream.write("data: nobody\n\n"));
  EXPECT_TRUE(poll_until([&] { return f.connections() == 0; })) << f.connections();
}

TEST(HttpStream, AClientThatDoesNotReadIsDisconnected) {
  StreamFront f;
  Client c(f.port());
  c.send(get("/stream"));
  ASSERT_EQ(c.read_head().status, 200);
  const Stream stream = f.stream(0);
  // The client reads nothing more: once the socket buffers are full, more
  // than 1 MiB waits unsent and the stream is cut off (at most 64 MiB written).
  const std::string chunk = "data: " + std::string(64 << 10, 'x') + "\n\n";
  for (int i = 0; i < 1024 && stream.write(chunk); ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(poll_until([&] { return stream.closed(); }));
  EXPECT_TRUE(poll_until([&] { return f.connections() == 0; })) << f.connections();
}

TEST(HttpStream, StopEndsOpenStreams) {
  StreamFront f;
  Client c(f.port());
  c.send(get("/stream"));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_FALSE(c.read_until("data: open\n\n").empty());
  const Stream stream = f.stream(0);
  f.stop(2s);
  EXPECT_TRUE(stream.closed());
  EXPECT_TRUE(c.closed_by_server());
}

TEST(HttpStream, KeptRequestHeadersAndExtraAnswerHeaders) {
  StreamFront f;
  Client c(f.port());
  c.send(get("/echo-header", "X-Probe:   some value \r\nX-Other: dropped\r\n"));
  const Reply r = c.read_reply();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "some value");
  EXPECT_EQ(header_of(r, "x-answer"), "yes");
  EXPECT_EQ(header_of(r, "x-bad"), "");  // a value with a line break is not sent
  EXPECT_EQ(header_of(r, "injected"), "");
  c.send(get("/echo-header"));
  EXPECT_EQ(c.read_reply().body, "(none)");
}

}  // namespace
}  // namespace kiln::test

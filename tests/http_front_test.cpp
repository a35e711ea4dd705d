// The event-driven HTTP/1.1 front end of kiln serve and kiln ui (host/http/http_front.hpp)
// over real sockets on 127.0.0.1 with a small handler: pipelining, requests
// in many small writes, Expect: 100-continue, Connection: close, HTTP/1.0
// keep-alive, chunked bodies, 413 before the body, many connections on few
// threads, a slow client, answers from another thread, timeouts and drain on
// stop, the connection limit and the budget of buffered request bytes.
// Every wait is bounded (socket timeouts, counted polls); nothing asserts on wall time.
#include "http_front.hpp"
#include "raw_http_client.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::test {
namespace {

using serve::HttpFront;
using serve::HttpFrontOptions;
using serve::HttpRequest;
using serve::HttpResponse;
using serve::Responder;
using namespace std::chrono_literals;

std::string get(const std::string& path, const std::string& extra_headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
}

std::string post(const std::string& path, const std::string& body, const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra_headers + "\r\n" + body;
}

// Runs answers later on its own thread, as the dynamic batcher does.
class Later {
 public:
  Later() : thread_([this] { loop(); }) {}
  ~Later() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void after(std::chrono::milliseconds delay, std::function<void()> task) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      tasks_.emplace_back(std::chrono::steady_clock::now() + delay, std::move(task));
    }
    wake_.notify_all();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_ || !tasks_.empty()) {
      if (tasks_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto first = std::min_element(tasks_.begin(), tasks_.end(),
                                          [](const auto& a, const auto& b) { return a.first < b.first; });
      if (first->first > std::chrono::steady_clock::now() && !stopping_) {
        wake_.wait_until(lock, first->first);
        continue;
      }
      auto task = std::move(first->second);
      tasks_.erase(first);
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::function<void()>>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

// A front end whose handler answers:
//   /echo          200 "<method> <body>" at once
//   /later?ms=N    200 "later" after N ms, from another thread
//   /never         never (the request timeout answers 504)
//   /throw         the handler throws (500)
class Front {
 public:
  explicit Front(HttpFrontOptions options = {}) {
    options.port = 0;
    front_ = std::make_unique<HttpFront>(
        options, [this](HttpRequest& request, const Responder& responder) { handle(request, responder); },
        [this](const HttpRequest&, int, size_t) { ++completed; });
    front_->start();
  }
  uint16_t port() const { return front_->port(); }
  void stop(std::chrono::milliseconds drain) { front_->stop(drain); }
  size_t connections() const { return front_->open_connections(); }
  size_t buffered() const { return front_->buffered_bytes(); }
  std::atomic<int> completed{0};

 private:
  void handle(HttpRequest& request, const Responder& responder) {
    if (request.url == "/echo")
      return responder.send(HttpResponse{200, request.method + " " + request.body, "text/plain"});
    if (request.url.rfind("/later?ms=", 0) == 0) {
      const auto delay = std::chrono::milliseconds(std::stoi(request.url.substr(10)));
      return later_.after(delay, [responder] { responder.send(HttpResponse{200, "later", "text/plain"}); });
    }
    if (request.url == "/never") return;
    if (request.url == "/throw") throw std::runtime_error("handler failed");
    responder.send(HttpResponse{404, serve::json_error_body("no such endpoint")});
  }

  Later later_;  // outlives the front end: late answers after stop are dropped
  std::unique_ptr<HttpFront> front_;
};

TEST(HttpFront, PipelinedRequestsAreAnsweredInOrder) {
  Front f;
  Client c(f.port());
  ASSERT_TRUE(c.connected());
  // The first is answered late from another thread; the rest must wait for it.
  c.send(get("/later?ms=50") + get("/echo") + post("/echo", "abc") + get("/nope"));
  auto r = c.read_reply();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "later");
  r = c.read_reply();
  EXPECT_EQ(r.body, "GET ");
  r = c.read_reply();
  EXPECT_EQ(r.body, "POST abc");
  r = c.read_reply();
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"error":"no such endpoint"})");
  EXPECT_EQ(f.completed.load(), 4);
}

TEST(HttpFront, ARequestInManySmallWrites) {
  Front f;
  Client c(f.port());
  const std::string body(3000, 'x');
  const std::string request = post("/echo", body);
  for (size_t i = 0; i < request.size(); i += 7) {
    c.send(request.substr(i, 7));
    if (i % 700 == 0) std::this_thread::sleep_for(1ms);  // some writes arrive alone
  }
  const auto r = c.read_reply();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST " + body);
}

TEST(HttpFront, ExpectContinue) {
  HttpFrontOptions options;
  options.max_body_bytes = 4096;
  Front f(options);
  Client c(f.port());
  const std::string body(2000, 'b');
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n");
  auto r = c.read_reply();
  EXPECT_EQ(r.status, 100);  // only then does the client send the body
  c.send(body);
  r = c.read_reply();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST " + body);

  // Too large: 413 at once, no 100, and the connection closes.
  Client big(f.port());
  big.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n");
  r = big.read_reply();
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(header_of(r, "connection"), "close");
  EXPECT_TRUE(big.closed_by_server());
}

TEST(HttpFront, TooLargeIsDecidedFromContentLengthBeforeTheBody) {
  HttpFrontOptions options;
  options.max_body_bytes = 1000;
  Front f(options);
  Client c(f.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");  // no body sent at all
  const auto r = c.read_reply();
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("more than the limit of 1000"), std::string::npos) << r.body;
  // A client that sends the body anyway still gets the 413 (no reset).
  Client d(f.port());
  d.send(post("/echo", std::string(5000, 'x')));
  EXPECT_EQ(d.read_reply().status, 413);
  // A chunked body over the limit too.
  Client e(f.port());
  e.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + std::string(1024, 'y') +
         "\r\n0\r\n\r\n");
  EXPECT_EQ(e.read_reply().status, 413);
}

TEST(HttpFront, ChunkedBodies) {
  Front f;
  Client c(f.port());
  c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  c.send("4\r\ndefg\r\n0\r\n\r\n");
  const auto r = c.read_reply();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST abcdefg");
  c.send(get("/echo"));  // still open
  EXPECT_EQ(c.read_reply().status, 200);
}

TEST(HttpFront, ConnectionCloseAndHttp10) {
  Front f;
  {
    Client c(f.port());
    c.send(get("/echo", "Connection: close\r\n"));
    const auto r = c.read_reply();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(header_of(r, "connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    Client c(f.port());  // HTTP/1.0 closes unless asked to keep alive
    c.send("GET /echo HTTP/1.0\r\n\r\n");
    EXPECT_EQ(c.read_reply().status, 200);
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    Client c(f.port());
    for (int i = 0; i < 3; ++i) {
      c.send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
      const auto r = c.read_reply();
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(header_of(r, "connection"), "keep-alive");
    }
  }
}

TEST(HttpFront, MalformedRequestsAndFailingHandlers) {
  Front f;
  Client c(f.port());
  c.send("NOT HTTP AT ALL\r\n\r\n");
  auto r = c.read_reply();
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  EXPECT_TRUE(c.closed_by_server());
  Client d(f.port());
  d.send(get("/throw"));
  r = d.read_reply();
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("handler failed"), std::string::npos);
  d.send(get("/echo"));  // the connection survives
  EXPECT_EQ(d.read_reply().status, 200);
}

TEST(HttpFront, ManyKeepAliveConnectionsOnTwoThreads) {
  HttpFrontOptions options;
  options.io_threads = 2;
  Front f(options);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 200; ++i) clients.push_back(std::make_unique<Client>(f.port()));
  int ok = 0;
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < clients.size(); ++i)  // all in flight at once, half of them answered later
      clients[i]->send(i % 2 ? get("/echo") : get("/later?ms=5"));
    for (auto& client : clients) ok += client->read_reply().status == 200;
  }
  EXPECT_EQ(ok, 600);
}

TEST(HttpFront, ASlowClientDoesNotBlockOthers) {
  HttpFrontOptions options;
  options.io_threads = 1;
  Front f(options);
  Client slow(f.port());
  const std::string request = post("/echo", "slow");
  slow.send(request.substr(0, 20));  // half a request, then silence
  for (int i = 0; i < 5; ++i) {
    Client other(f.port());
    other.send(get("/echo"));
    EXPECT_EQ(other.read_reply().status, 200);
  }
  slow.send(request.substr(20));
  const auto r = slow.read_reply();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST slow");
}

TEST(HttpFront, UnansweredRequestsTimeOutWith504) {
  HttpFrontOptions options;
  options.request_timeout = 200ms;
  Front f(options);
  Client c(f.port());
  c.send(get("/never"));
  const auto r = c.read_reply();
  EXPECT_EQ(r.status, 504);
  EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  c.send(get("/echo"));  // keep-alive goes on
  EXPECT_EQ(c.read_reply().status, 200);
  // A request that never arrives whole gets 408 and is closed.
  Client partial(f.port());
  partial.send("GET /echo HTTP/1.1\r\n");
  EXPECT_EQ(partial.read_reply().status, 408);
  EXPECT_TRUE(partial.closed_by_server());
}

TEST(HttpFront, IdleConnectionsAreClosedAfterTheKeepAliveTimeout) {
  HttpFrontOptions options;
  options.keep_alive_timeout = 200ms;
  Front f(options);
  Client c(f.port());
  c.send(get("/echo"));
  EXPECT_EQ(c.read_reply().status, 200);
  EXPECT_TRUE(c.closed_by_server());
}

TEST(HttpFront, StopDrainsRequestsInProgressAndClosesIdleConnections) {
  HttpFrontOptions options;
  options.io_threads = 1;  // so the probe below is read after the busy request
  Front f(options);
  Client idle(f.port());
  idle.send(get("/echo"));
  ASSERT_EQ(idle.read_reply().status, 200);
  Client busy(f.port());
  busy.send(get("/later?ms=300"));
  // One loop reads in order: once the probe is answered, the busy request
  // was taken and is in progress.
  {
    Client probe(f.port());
    probe.send(get("/echo"));
    ASSERT_EQ(probe.read_reply().status, 200);
  }
  std::thread stopper([&] { f.stop(std::chrono::seconds(30)); });
  const auto r = busy.read_reply();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "later");
  EXPECT_EQ(header_of(r, "connection"), "close");
  EXPECT_TRUE(busy.closed_by_server());
  EXPECT_TRUE(idle.closed_by_server());
  stopper.join();
  Client late(f.port());
  EXPECT_FALSE(late.connected() && [&] {
    late.send(get("/echo"));
    return late.read_reply().status == 200;
  }());
}

// Polls `done` every 10 ms, 1000 times at most; whether it came true.
template <class Done>
bool eventually(Done done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

// Issue 17: nothing bounded the connections open at once. Past
// max_connections a connection is answered 503 at once and closed; those
// within it are served as before, and a place freed is taken again.
TEST(HttpFront, ConnectionsPastTheLimitAreAnswered503AndClosed) {
  HttpFrontOptions options;
  options.io_threads = 2;
  options.max_connections = 3;
  Front f(options);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Client>(f.port()));
    held.back()->send(get("/echo"));
    ASSERT_EQ(held.back()->read_reply().status, 200);
  }
  EXPECT_EQ(f.connections(), 3u);
  for (int i = 0; i < 20; ++i) {
    Client extra(f.port());
    extra.send(get("/echo"));
    const auto r = extra.read_reply();
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_NE(r.body.find("--max-connections"), std::string::npos) << r.body;
    EXPECT_EQ(header_of(r, "connection"), "close");
    EXPECT_TRUE(extra.closed_by_server());
  }
  for (auto& c : held) {  // the three are served as before
    c->send(get("/echo"));
    EXPECT_EQ(c->read_reply().status, 200);
  }
  held.pop_back();  // its place is free once its loop has seen the close
  ASSERT_TRUE(eventually([&] { return f.connections() < 3; }));
  Client next(f.port());
  next.send(get("/echo"));
  EXPECT_EQ(next.read_reply().status, 200);
}

// Issue 17: 500 connections each holding 1 MiB of a declared large body
// took 1 GB. Request bytes held over all connections are now bounded: the
// connection that would pass max_buffered_bytes is answered 503 and
// closed, the others go on, and every byte is given back.
TEST(HttpFront, RequestBytesPastTheBudgetAreAnswered503AndClosed) {
  HttpFrontOptions options;
  options.io_threads = 2;
  options.max_body_bytes = 8 << 20;
  options.max_buffered_bytes = 1 << 20;
  Front f(options);
  const auto head = [](size_t length) {
    return "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
  };
  constexpr size_t kHeld = 700 << 10, kWhole = 900 << 10;
  Client a(f.port());
  a.send(head(kWhole) + std::string(kHeld, 'a'));  // most of its body, then a pause
  ASSERT_TRUE(eventually([&] { return f.buffered() >= kHeld; })) << f.buffered();
  // A declared length alone takes nothing: 8 MiB announced, nothing sent.
  Client declared(f.port());
  declared.send(head(8 << 20));
  Client b(f.port());  // 400 KiB more would take the total past 1 MiB
  b.send(head(3 << 20) + std::string(400 << 10, 'b'));
  const auto r = b.read_reply();
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("--max-buffered-bytes"), std::string::npos) << r.body;
  EXPECT_EQ(header_of(r, "connection"), "close");
  EXPECT_TRUE(b.closed_by_server());
  EXPECT_LE(f.buffered(), size_t{1} << 20);
  // Small requests still fit beside it, and its body completes.
  Client small(f.port());
  small.send(post("/echo", "small"));
  EXPECT_EQ(small.read_reply().body, "POST small");
  a.send(std::string(kWhole - kHeld, 'a'));
  const auto whole = a.read_reply();
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body, "POST " + std::string(kWhole, 'a'));
  EXPECT_TRUE(eventually([&] { return f.buffered() == 0; })) << f.buffered();
}

}  // namespace
}  // namespace kiln::test

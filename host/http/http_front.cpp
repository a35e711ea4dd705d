#include "http_front.hpp"
#include "http_request_parser.hpp"

#include <kiln/host/unique_fd.hpp>

#include <nlohmann/json.hpp>

#include <Poco/Exception.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kiln::http {

using Clock = std::chrono::steady_clock;

namespace {

using host::UniqueFd;

UniqueFd checked(int fd, const char* what) {
  if (fd < 0) throw std::system_error(errno, std::generic_category(), what);
  return UniqueFd(fd);
}

// epoll data of the two descriptors that are not connections.
constexpr uint64_t kListenId = 0;
constexpr uint64_t kWakeId = 1;
constexpr size_t kReadChunk = 64 << 10;
// Unparsed input (pipelined requests waiting for an answer) and unsent
// output past which a connection is not read further until they shrink.
constexpr size_t kMaxBacklog = 1 << 20;
// After a 413 the rest of the body is read and dropped (up to this much, for
// at most kDiscardFor): closing on unread bytes sends a reset, which can
// destroy the 413 before the client reads it.
constexpr size_t kDiscardAtMost = 16 << 20;
constexpr auto kDiscardFor = std::chrono::seconds(2);
constexpr auto kSweepEvery = std::chrono::milliseconds(100);
// Connections past max_connections are answered 503 through the usual path
// (which reads what the client sends for a moment, so that closing does not
// reset the answer away); this many at most at once, then they are closed
// unanswered.
constexpr size_t kMaxRefusing = 64;

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

using HeaderList = std::vector<std::pair<std::string, std::string>>;

bool has_line_break(const std::string& text) {
  return text.find_first_of("\r\n") != std::string::npos;
}

// The status line and headers of an answer, appended to the connection's
// output buffer (reused from request to request: no allocation once warm).
void append_head(std::string& out, int status, const char* content_type, size_t length, bool keep_alive, bool http10,
                 const HeaderList& extra = {}) {
  std::array<char, 320> head;
  const char* connection = !keep_alive ? "Connection: close\r\n" : http10 ? "Connection: keep-alive\r\n" : "";
  const int n = std::snprintf(head.data(), head.size(),
                              "HTTP/1.1 %d %s\r\nServer: kiln\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s",
                              status, reason_phrase(status), content_type, length, connection);
  out.append(head.data(), static_cast<size_t>(std::min<int>(n, static_cast<int>(head.size()) - 1)));
  for (const auto& [name, value] : extra)
    if (!has_line_break(name) && !has_line_break(value)) out.append(name).append(": ").append(value).append("\r\n");
  out += "\r\n";
}

// The head of a streamed answer: no length, so the body ends when the connection closes.
void append_stream_head(std::string& out, const char* content_type) {
  out.append("HTTP/1.1 200 OK\r\nServer: kiln\r\nContent-Type: ")
      .append(content_type)
      .append("\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n");
}

std::string peer_address(const sockaddr_storage& addr) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (addr.ss_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, text.data(), text.size());
  else if (addr.ss_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, text.data(), text.size());
  return text.data();
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [n, value] : headers)
    if (n == name) return &value;
  return nullptr;
}

std::string json_error_body(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// Adds one to `count` unless it is at `limit` already.
bool take_one(std::atomic<size_t>& count, size_t limit) {
  size_t now = count.load();
  do {
    if (now >= limit) return false;
  } while (!count.compare_exchange_weak(now, now + 1));
  return true;
}

// A connection's place in a count of open connections, given back when the
// connection (or the task carrying it to its loop) is destroyed.
class ConnectionSlot {
 public:
  ConnectionSlot() = default;
  explicit ConnectionSlot(std::atomic<size_t>* count) : count_(count) {}
  ConnectionSlot(ConnectionSlot&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
  ConnectionSlot& operator=(ConnectionSlot&& other) noexcept {
    if (this != &other) {
      release();
      count_ = std::exchange(other.count_, nullptr);
    }
    return *this;
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  ~ConnectionSlot() { release(); }

 private:
  void release() {
    if (count_ != nullptr) count_->fetch_sub(1);
    count_ = nullptr;
  }
  std::atomic<size_t>* count_ = nullptr;
};

// The request bytes one connection holds, as its share of the total over
// all connections; given back when the connection is destroyed.
class BufferCharge {
 public:
  BufferCharge() = default;
  explicit BufferCharge(std::atomic<size_t>* total) : total_(total) {}
  BufferCharge(const BufferCharge&) = delete;
  BufferCharge& operator=(const BufferCharge&) = delete;
  ~BufferCharge() { set(0); }

  // Holds `bytes` if the total stays within `limit` (shrinking always does).
  bool grow_to(size_t bytes, size_t limit) {
    if (bytes <= held_) {
      set(bytes);
      return true;
    }
    const size_t more = bytes - held_;
    size_t now = total_->load();
    do {
      if (now + more > limit) return false;
    } while (!total_->compare_exchange_weak(now, now + more));
    held_ = bytes;
    return true;
  }
  // Holds `bytes`, whatever the total (to keep the count exact).
  void set(size_t bytes) {
    if (total_ == nullptr || bytes == held_) return;
    if (bytes >= held_)
      total_->fetch_add(bytes - held_);
    else
      total_->fetch_sub(held_ - bytes);
    held_ = bytes;
  }

 private:
  std::atomic<size_t>* total_ = nullptr;
  size_t held_ = 0;
};

}  // namespace

struct Loop;

// An answer from another thread, for request `sequence` of connection `connection`.
struct PostedAnswer {
  uint64_t connection;
  uint64_t sequence;
  HttpResponse response;
};

// What other threads hand a loop: answers (typed, so posting one allocates
// nothing once the queues have grown), other tasks (new connections, stop),
// and the eventfd that wakes it. Responders share it, so a late answer after
// the loop is gone is dropped rather than touching freed memory.
struct Mailbox {
  std::mutex mutex;
  std::vector<PostedAnswer> answers;
  std::vector<std::function<void(Loop&)>> tasks;
  bool closed = false;
  UniqueFd wake = checked(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd");
  std::atomic<std::thread::id> owner{};
  Loop* loop = nullptr;  // used on the owner thread only, while not closed

  // False when the loop has ended.
  bool post(std::function<void(Loop&)> task) {
    return deliver([&] { tasks.push_back(std::move(task)); });
  }
  bool post(PostedAnswer answer) {
    return deliver([&] { answers.push_back(std::move(answer)); });
  }

 private:
  template <class Push>
  bool deliver(Push push) {
    bool was_empty = false;
    {
      const std::lock_guard<std::mutex> lock(mutex);
      if (closed) return false;
      was_empty = tasks.empty() && answers.empty();
      push();
    }
    if (was_empty) {  // else the loop is already woken and will take this too
      const uint64_t one = 1;
      [[maybe_unused]] const auto n = ::write(wake.get(), &one, sizeof one);
    }
    return true;
  }
};

struct Responder::Target {
  std::shared_ptr<Mailbox> mailbox;
  uint64_t connection;
  uint64_t sequence;
};

struct Stream::Target {
  Target(std::shared_ptr<Mailbox> m, uint64_t c) : mailbox(std::move(m)), connection(c) {}
  const std::shared_ptr<Mailbox> mailbox;
  const uint64_t connection;
  std::atomic<bool> closed{false};  // set by the loop (or by close()); never cleared
};

// One client connection, owned by its loop; everything here runs on that loop's thread.
// Its request parsing (the parser, the request being received, `out`) is
// the HttpRequestParsing it derives from.
struct Connection : HttpRequestParsing {
  explicit Connection(std::atomic<size_t>* buffered_total) : charge(buffered_total) {}
  ~Connection() {
    if (stream) stream->closed = true;  // its producer stops writing
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  uint64_t id = 0;
  UniqueFd fd;
  std::string peer;

  std::string in;  // received bytes; [parsed, size) not yet parsed
  size_t parsed = 0;
  size_t written = 0;  // of `out`

  // The request being answered (one at a time: pipelined ones wait in `in`).
  std::unique_ptr<HttpRequest> answering;
  bool answer_keep_alive = true;
  uint64_t sequence = 0;  // of the current request; a Responder of an older one is stale
  bool dispatching = false;
  Clock::time_point answer_deadline;
  // A streamed answer in progress (after the request that opened it; no
  // further request is read). What the client sends meanwhile is dropped.
  std::shared_ptr<Stream::Target> stream;

  bool close_after_write = false, discarding = false, peer_closed = false, shut_down = false, dead = false;
  bool over_budget = false;  // its bytes would pass max_buffered_bytes: answered 503 once nothing is in progress
  ConnectionSlot slot;
  BufferCharge charge;
  size_t discarded = 0;
  Clock::time_point last_activity, discard_until, deadline;
  uint32_t events = 0;  // registered with epoll

  bool output_pending() const { return written < out.size(); }
  size_t unparsed() const { return in.size() - parsed; }
};

struct HttpFront::Impl {
  HttpFrontOptions options;
  Handler handler;
  Completed completed;
  AfterPass after_pass;
  Poco::Net::ServerSocket listener;
  uint16_t bound_port = 0;
  std::vector<std::unique_ptr<Loop>> loops;
  bool started = false, stopped = false;
  // Shared by the loops: connections open (admitted, and being refused) and the request bytes they hold.
  std::atomic<size_t> connections{0}, refusing{0}, buffered{0};

  Impl(HttpFrontOptions o, Handler h, Completed c, AfterPass a)
      : options(std::move(o)), handler(std::move(h)), completed(std::move(c)), after_pass(std::move(a)) {
    if (options.io_threads <= 0)
      options.io_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
};

struct Loop {
  HttpFront::Impl& front;
  const size_t index;
  UniqueFd epoll = checked(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
  std::shared_ptr<Mailbox> mailbox = std::make_shared<Mailbox>();
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections;
  uint64_t next_id = 2;
  size_t next_loop = 0;  // round-robin target of accepted connections (loop 0)
  bool listening = false, paused_listening = false, stopping = false;
  Clock::time_point drain_until, last_sweep;
  std::vector<char> read_buffer = std::vector<char>(kReadChunk);
  std::vector<PostedAnswer> taken_answers;  // from the mailbox, being run
  std::vector<std::function<void(Loop&)>> taken_tasks;
  std::thread thread;

  Loop(HttpFront::Impl& f, size_t i) : front(f), index(i) {
    mailbox->loop = this;
    watch(mailbox->wake.get(), kWakeId, EPOLLIN);
    if (index == 0) {
      watch(front.listener.impl()->sockfd(), kListenId, EPOLLIN);
      listening = true;
    }
  }

  void watch(int fd, uint64_t id, uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.u64 = id;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) != 0)
      throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }

  // ------------------------------------------------------------- the loop

  void run() {
    mailbox->owner = std::this_thread::get_id();
    std::array<epoll_event, 128> events;
    last_sweep = Clock::now();
    bool work_left = false;  // the after-pass hook has more to do: poll, do not sleep
    for (;;) {
      const int n = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()),
                                 work_left ? 0 : static_cast<int>(kSweepEvery.count()));
      for (int i = 0; i < n; ++i) {
        const auto& event = events[static_cast<size_t>(i)];
        if (event.data.u64 == kListenId) {
          accept_all();
        } else if (event.data.u64 == kWakeId) {
          run_tasks();
        } else {
          const auto it = connections.find(event.data.u64);
          if (it != connections.end()) on_event(*it->second, event.events);
        }
      }
      const auto now = Clock::now();
      if (now - last_sweep >= kSweepEvery) sweep(now);  // may dispatch pipelined requests too
      work_left = front.after_pass && front.after_pass(index);
      if (stopping && (connections.empty() || now >= drain_until)) break;
    }
    {
      const std::lock_guard<std::mutex> lock(mailbox->mutex);
      mailbox->closed = true;
      mailbox->tasks.clear();
      mailbox->answers.clear();
    }
    connections.clear();
  }

  void run_tasks() {
    uint64_t count = 0;
    [[maybe_unused]] const auto n = ::read(mailbox->wake.get(), &count, sizeof count);
    {
      const std::lock_guard<std::mutex> lock(mailbox->mutex);
      taken_answers.swap(mailbox->answers);  // the mailbox gets back the emptied vectors, capacity kept
      taken_tasks.swap(mailbox->tasks);
    }
    for (auto& a : taken_answers) answer(a.connection, a.sequence, std::move(a.response));
    for (auto& task : taken_tasks) task(*this);
    taken_answers.clear();
    taken_tasks.clear();
  }

  void accept_all() {
    const int listen_fd = front.listener.impl()->sockfd();
    for (int i = 0; i < 64; ++i) {
      sockaddr_storage addr{};
      socklen_t length = sizeof addr;
      const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        const int error = errno;
        if (error == EAGAIN || error == EWOULDBLOCK) return;
        stop_listening();
        // Out of descriptors: the socket stays readable, so polling it
        // again now would spin; the sweep listens again in a moment.
        // Anything else (EINVAL: stop() shut the socket down) is final.
        paused_listening = error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
        return;
      }
      UniqueFd owned(fd);
      // Past the limit a connection is still accepted (the backlog drains,
      // nothing spins) and answered 503 here; past the few being refused, closed.
      if (!take_one(front.connections, front.options.max_connections)) {
        if (take_one(front.refusing, kMaxRefusing))
          adopt(std::move(owned), peer_address(addr), ConnectionSlot(&front.refusing), true);
        continue;
      }
      ConnectionSlot slot(&front.connections);
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      // One acceptor hands connections out in turn: every loop gets its
      // share (with one listening socket per loop, SO_REUSEPORT, a second
      // server could bind the same port and silently take half the traffic).
      Loop& target = *front.loops[next_loop++ % front.loops.size()];
      if (&target == this) {
        adopt(std::move(owned), peer_address(addr), std::move(slot), false);
      } else {
        auto shared = std::make_shared<std::pair<UniqueFd, ConnectionSlot>>(std::move(owned), std::move(slot));
        target.mailbox->post([shared, peer = peer_address(addr)](Loop& loop) {
          loop.adopt(std::move(shared->first), peer, std::move(shared->second), false);
        });
      }
    }
  }

  void stop_listening() {
    if (!listening) return;
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, front.listener.impl()->sockfd(), nullptr);
    listening = false;
  }

  // Takes a new connection; `refuse`: answer it 503 (over max_connections) and close.
  void adopt(UniqueFd fd, std::string peer, ConnectionSlot slot, bool refuse) {
    if (stopping) return;
    auto c = std::make_unique<Connection>(&front.buffered);
    c->id = next_id++;
    c->fd = std::move(fd);
    c->peer = std::move(peer);
    c->slot = std::move(slot);
    c->start(front.options.max_body_bytes, &front.options.kept_headers);
    c->last_activity = Clock::now();
    c->events = EPOLLIN;
    watch(c->fd.get(), c->id, c->events);
    Connection& connection = *c;
    connections.emplace(c->id, std::move(c));
    if (refuse) {
      connection.request.started = Clock::now();
      reject(connection, 503,
             "the server has " + std::to_string(front.options.max_connections) +
                 " connections open, its limit (--max-connections); retry later");
      flush(connection);
    }
    settle(connection);
  }

  void begin_stop(Clock::time_point until) {
    stopping = true;
    drain_until = until;
    paused_listening = false;
    stop_listening();
    std::vector<uint64_t> ids;
    for (const auto& [id, c] : connections) ids.push_back(id);
    for (const auto id : ids) {
      Connection& c = *connections.at(id);
      c.close_after_write = true;  // no new request is started
      if (c.stream) {  // a stream ends with the server: what it wrote is still sent
        c.stream->closed = true;
        c.stream.reset();
      }
      if (!c.answering && !c.output_pending()) c.dead = true;
      settle(c);
    }
  }

  // Timeouts, checked every kSweepEvery.
  void sweep(Clock::time_point now) {
    last_sweep = now;
    if (paused_listening && !stopping) {
      paused_listening = false;
      watch(front.listener.impl()->sockfd(), kListenId, EPOLLIN);
      listening = true;
    }
    std::vector<uint64_t> due;
    for (const auto& [id, c] : connections)
      if (c->deadline <= now) due.push_back(id);
    for (const auto id : due) {
      Connection& c = *connections.at(id);
      if (c.answering) {
        complete(c, HttpResponse{504, json_error_body("no answer within the request timeout"), "application/json"});
        advance(c);
      } else if (c.receiving && !c.output_pending() && !c.close_after_write) {
        reject(c, 408, "the request was not received within the request timeout");
        flush(c);
      } else {
        c.dead = true;  // idle past the keep-alive timeout, a client not reading, or done discarding
      }
      settle(c);
    }
  }

  // ------------------------------------------------------------ one socket

  void on_event(Connection& c, uint32_t events) {
    if ((events & EPOLLERR) || ((events & EPOLLHUP) && c.over_budget && !c.discarding)) {
      c.dead = true;  // an error, or gone while its input is not read (over budget)
    } else {
      if (events & (EPOLLIN | EPOLLHUP)) receive(c);
      if (events & EPOLLOUT) flush(c);
      advance(c);
    }
    settle(c);
  }

  void receive(Connection& c) {
    if (c.over_budget && !c.discarding) return;  // read again once it is answered 503
    for (;;) {
      const ssize_t n = ::recv(c.fd.get(), read_buffer.data(), read_buffer.size(), 0);
      if (n > 0) {
        c.last_activity = Clock::now();
        if (c.stream) {
          // a streamed answer is in progress: nothing the client sends now is read
        } else if (c.discarding) {
          c.discarded += static_cast<size_t>(n);
          if (c.discarded > kDiscardAtMost) c.dead = true;
        } else {
          c.in.append(read_buffer.data(), static_cast<size_t>(n));
          if (!c.charge.grow_to(held_bytes(c), front.options.max_buffered_bytes)) {
            c.over_budget = true;  // parse() answers 503; nothing more is read
            return;
          }
        }
        if (static_cast<size_t>(n) < read_buffer.size() || c.unparsed() >= kMaxBacklog) return;
      } else if (n == 0) {
        c.peer_closed = true;
        return;
      } else if (errno == EINTR) {
        continue;
      } else {
        if (errno != EAGAIN && errno != EWOULDBLOCK) c.dead = true;
        return;
      }
    }
  }

  // Parses and answers what can be, sends what is ready; again while that frees room.
  void advance(Connection& c) {
    for (int round = 0; round < 4 && !c.dead; ++round) {
      parse(c);
      flush(c);
      if (c.output_pending() || c.answering || c.close_after_write || c.unparsed() == 0) break;
    }
  }

  // The request bytes `c` holds (counted against max_buffered_bytes).
  static size_t held_bytes(const Connection& c) {
    return c.in.size() + c.request.body.size() + (c.answering ? c.answering->body.size() : 0);
  }

  void parse(Connection& c) {
    if (c.over_budget && !c.answering && !c.close_after_write && !c.discarding) {
      reject(c, 503,
             "the server holds " + std::to_string(front.buffered.load()) + " bytes of requests, near its limit of " +
                 std::to_string(front.options.max_buffered_bytes) + " (--max-buffered-bytes); retry later");
      return;
    }
    while (!c.dead && !c.answering && !c.close_after_write && c.unparsed() > 0 &&
           c.out.size() - c.written < kMaxBacklog) {
      const size_t n = c.feed(c.in.data() + c.parsed, c.unparsed());
      c.parsed += n;
      if (c.reject_status != 0) {  // malformed (400) or too large (413)
        reject(c, c.reject_status, c.reject_message);
        break;
      }
      if (c.message_done) {
        c.message_done = false;
        dispatch(c);
      } else if (n == 0) {
        break;  // nothing consumed and nothing finished: wait for more bytes
      }
    }
    if (c.parsed == c.in.size()) {
      if (c.in.capacity() > 4 * kReadChunk)
        std::string().swap(c.in);  // a large body went through: give its memory back
      else
        c.in.clear();
      c.parsed = 0;
    } else if (c.parsed >= kReadChunk) {
      c.in.erase(0, c.parsed);
      c.parsed = 0;
    }
  }

  void dispatch(Connection& c) {
    c.answering = std::make_unique<HttpRequest>(std::move(c.request));
    c.request = HttpRequest{};
    c.answering->peer = c.peer;
    c.answering->loop = index;
    c.answer_keep_alive = c.keep_alive;
    c.answer_deadline = Clock::now() + front.options.request_timeout;
    const uint64_t sequence = ++c.sequence;
    const Responder responder(std::make_shared<Responder::Target>(Responder::Target{mailbox, c.id, sequence}));
    c.dispatching = true;
    try {
      front.handler(*c.answering, responder);
    } catch (const std::exception& e) {
      answer(c.id, sequence, HttpResponse{500, json_error_body(std::string("internal error: ") + e.what())});
    }
    c.dispatching = false;
  }

  // An answer for request `sequence` of connection `id` (from a Responder).
  void answer(uint64_t id, uint64_t sequence, HttpResponse response) {
    const auto it = connections.find(id);
    if (it == connections.end()) return;  // the connection is gone
    Connection& c = *it->second;
    if (!c.answering || c.sequence != sequence) return;  // timed out already
    complete(c, std::move(response));
    if (c.dispatching) return;  // parse() goes on with the next request
    advance(c);
    settle(c);
  }

  // Request `sequence` of connection `id` is answered with a stream.
  void open_stream(uint64_t id, uint64_t sequence, const std::shared_ptr<Stream::Target>& stream,
                   const char* content_type) {
    const auto it = connections.find(id);
    if (it == connections.end() || !it->second->answering || it->second->sequence != sequence || stopping) {
      stream->closed = true;  // gone, timed out already, or the server is stopping
      return;
    }
    Connection& c = *it->second;
    append_stream_head(c.out, content_type);
    if (front.completed) front.completed(*c.answering, 200, 0);
    c.answering.reset();
    ++c.sequence;
    c.close_after_write = true;  // no further request on this connection
    c.stream = stream;
    c.last_activity = Clock::now();
    if (c.dispatching) return;  // parse() stops at close_after_write; the caller flushes and settles
    flush(c);
    settle(c);
  }

  // Bytes for the stream of connection `id`, or (`end`) its end.
  void stream_write(uint64_t id, const std::shared_ptr<Stream::Target>& stream, const std::string& bytes, bool end) {
    const auto it = connections.find(id);
    if (it == connections.end() || it->second->stream != stream) {
      stream->closed = true;
      return;
    }
    Connection& c = *it->second;
    if (end) {
      stream->closed = true;
      c.stream.reset();  // the connection closes once what was written is sent
    } else if (c.out.size() - c.written + bytes.size() > kMaxBacklog) {
      c.dead = true;  // the client does not read what it asked for
    } else {
      c.out += bytes;
      flush(c);
    }
    if (c.dispatching) return;
    settle(c);
  }

  void complete(Connection& c, HttpResponse response) {
    const bool keep_alive = c.answer_keep_alive && !response.close && !stopping;
    append_head(c.out, response.status, response.content_type, response.body.size(), keep_alive,
                c.answering->version_minor == 0, response.headers);
    if (!response.head_only) c.out += response.body;
    if (front.completed) front.completed(*c.answering, response.status, response.head_only ? 0 : response.body.size());
    c.answering.reset();
    ++c.sequence;
    if (!keep_alive) c.close_after_write = true;
    c.last_activity = Clock::now();
  }

  // Answers a request that was not dispatched (malformed, too large, too
  // slow) and closes the connection after it, dropping the rest of the input.
  void reject(Connection& c, int status, const std::string& message) {
    const std::string body = json_error_body(message);
    append_head(c.out, status, "application/json", body.size(), false, false);
    c.out += body;
    c.request.peer = c.peer;
    if (front.completed) front.completed(c.request, status, body.size());
    c.reject_status = 0;
    c.receiving = false;
    c.close_after_write = true;
    c.discarding = true;
    c.discarded = c.unparsed();
    std::string().swap(c.in);
    std::string().swap(c.request.body);
    c.parsed = 0;
    c.discard_until = Clock::now() + kDiscardFor;
  }

  void flush(Connection& c) {
    while (c.output_pending()) {
      const ssize_t n = ::send(c.fd.get(), c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
      if (n > 0) {
        c.written += static_cast<size_t>(n);
        c.last_activity = Clock::now();
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) c.dead = true;
        return;
      }
    }
    c.out.clear();
    c.written = 0;
  }

  // Closes the connection when it is finished, else brings its epoll
  // interest and its deadline up to date. `c` may be freed on return.
  void settle(Connection& c) {
    const bool idle = !c.answering && !c.output_pending() && !c.stream;
    if (!c.dead && c.stream && c.peer_closed) c.dead = true;  // the client of a stream went away
    if (!c.dead && idle && c.close_after_write) {
      if (!c.discarding || c.peer_closed) {
        c.dead = true;
      } else if (!c.shut_down) {  // the answer is out: tell the client, read what it still sends
        ::shutdown(c.fd.get(), SHUT_WR);
        c.shut_down = true;
      }
    }
    if (!c.dead && idle && c.peer_closed) c.dead = true;
    if (c.dead) {
      connections.erase(c.id);  // closes the socket, which leaves the epoll set (and gives back its counts)
      return;
    }
    c.charge.set(held_bytes(c));
    uint32_t want = 0;
    if (!c.peer_closed && (c.discarding || c.stream || (c.unparsed() < kMaxBacklog && !c.over_budget)))
      want |= EPOLLIN;
    if (c.output_pending()) want |= EPOLLOUT;
    if (want != c.events) {
      epoll_event event{};
      event.events = want;
      event.data.u64 = c.id;
      ::epoll_ctl(epoll.get(), EPOLL_CTL_MOD, c.fd.get(), &event);
      c.events = want;
    }
    const auto& o = front.options;
    if (c.stream)  // no idle timeout; a client that does not read is cut off
      c.deadline = c.output_pending() ? c.last_activity + o.request_timeout : Clock::time_point::max();
    else if (c.answering)
      c.deadline = c.answer_deadline;
    else if (c.output_pending())
      c.deadline = c.last_activity + o.request_timeout;  // a client that does not read
    else if (c.discarding)
      c.deadline = c.discard_until;
    else if (c.receiving)
      c.deadline = c.request.started + o.request_timeout;
    else
      c.deadline = c.last_activity + o.keep_alive_timeout;
  }
};

// -------------------------------------------------------------- Responder

void Responder::send(HttpResponse response) const {
  Mailbox& mailbox = *target_->mailbox;
  if (std::this_thread::get_id() == mailbox.owner.load()) {
    // `closed` is written by this very thread (as the loop ends): no lock.
    if (!mailbox.closed) mailbox.loop->answer(target_->connection, target_->sequence, std::move(response));
    return;
  }
  mailbox.post(PostedAnswer{target_->connection, target_->sequence, std::move(response)});
}

// Runs `task` on the loop of `mailbox`: at once when called on that loop's
// thread, else posted. False when the loop has ended.
template <class Task>
bool on_loop(Mailbox& mailbox, Task task) {
  if (std::this_thread::get_id() == mailbox.owner.load()) {
    if (mailbox.closed) return false;  // written by this very thread (as the loop ends): no lock
    task(*mailbox.loop);
    return true;
  }
  return mailbox.post(std::function<void(Loop&)>(std::move(task)));
}

Stream Responder::stream(const char* content_type) const {
  auto stream = std::make_shared<Stream::Target>(target_->mailbox, target_->connection);
  const bool posted = on_loop(*target_->mailbox, [target = target_, stream, content_type](Loop& loop) {
    loop.open_stream(target->connection, target->sequence, stream, content_type);
  });
  if (!posted) stream->closed = true;
  return Stream(stream);
}

bool Stream::write(std::string bytes) const {
  if (closed()) return false;
  const bool posted = on_loop(*target_->mailbox, [stream = target_, bytes = std::move(bytes)](Loop& loop) {
    loop.stream_write(stream->connection, stream, bytes, false);
  });
  if (!posted) target_->closed = true;
  return !closed();
}

void Stream::close() const {
  if (closed()) return;
  on_loop(*target_->mailbox, [stream = target_](Loop& loop) {
    loop.stream_write(stream->connection, stream, std::string(), true);
  });
  target_->closed = true;  // what was written before is still sent
}

bool Stream::closed() const {
  return !target_ || target_->closed.load();
}

// --------------------------------------------------------------- HttpFront

HttpFront::HttpFront(HttpFrontOptions options, Handler handler, Completed completed, AfterPass after_pass)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), std::move(completed),
                                   std::move(after_pass))) {}

HttpFront::~HttpFront() {
  stop(std::chrono::milliseconds(0));
}

void HttpFront::start() {
  auto& o = impl_->options;
  // Not Poco's (address, backlog) constructor: it sets SO_REUSEPORT, which
  // lets a second server bind the same port and silently split the traffic.
  try {
    impl_->listener.bind(Poco::Net::SocketAddress(o.host, o.port), true, false);
    impl_->listener.listen(o.backlog);
    impl_->listener.setBlocking(false);
    impl_->bound_port = impl_->listener.address().port();
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " + e.displayText());
  }
  for (int i = 0; i < o.io_threads; ++i) impl_->loops.push_back(std::make_unique<Loop>(*impl_, static_cast<size_t>(i)));
  for (auto& loop : impl_->loops) loop->thread = std::thread([&loop = *loop] { loop.run(); });
  impl_->started = true;
}

uint16_t HttpFront::port() const {
  return impl_->bound_port;
}

size_t HttpFront::loop_count() const {
  return static_cast<size_t>(impl_->options.io_threads);
}

size_t HttpFront::open_connections() const {
  return impl_->connections.load();
}

size_t HttpFront::buffered_bytes() const {
  return impl_->buffered.load();
}

void HttpFront::stop(std::chrono::milliseconds drain) {
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  // New connections are refused from here on; loop 0's accept fails and it stops listening.
  ::shutdown(impl_->listener.impl()->sockfd(), SHUT_RD);
  const auto until = Clock::now() + drain;
  for (auto& loop : impl_->loops) loop->mailbox->post([until](Loop& l) { l.begin_stop(until); });
  for (auto& loop : impl_->loops)
    if (loop->thread.joinable()) loop->thread.join();
  impl_->loops.clear();
  impl_->listener.close();
}

}  // namespace kiln::http

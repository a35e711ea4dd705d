// Deadlines for the registry server's connections. Poco's per-read socket
// timeout lets a client that sends one byte every few seconds hold a worker
// thread for ever (slow loris); here every connection gets a deadline for its
// request line and headers, then one for its body and answer, and a reaper
// thread shuts the socket down when a deadline passes.
#pragma once

#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServerConnectionFactory.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace kiln::registry {

class ConnectionDeadlines {
 public:
  using Clock = std::chrono::steady_clock;
  ConnectionDeadlines();
  ~ConnectionDeadlines();
  ConnectionDeadlines(const ConnectionDeadlines&) = delete;
  ConnectionDeadlines& operator=(const ConnectionDeadlines&) = delete;

  // Registers a running connection; false once stop_and_wait began (the
  // connection must then not serve anything).
  bool enter(const Poco::Net::StreamSocket& socket, Clock::time_point deadline, uint64_t& id);
  void set_deadline(uint64_t id, Clock::time_point deadline);
  void leave(uint64_t id);
  // Refuses new connections, shuts every registered socket down and waits
  // until each connection has left.
  void stop_and_wait();

 private:
  struct Entry {
    Poco::Net::StreamSocket socket;  // keeps the descriptor open while registered
    Clock::time_point deadline;
    bool shut = false;
  };
  void reap();
  static void shut_down(Entry& entry);

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_id_ = 0;
  bool stopping_ = false, quit_ = false;
  std::thread reaper_;
};

// Moves the deadline of the connection the calling thread serves (no-op on
// other threads): handlers call it once the headers are read.
void set_current_deadline(std::chrono::steady_clock::time_point deadline);

// Creates HTTP connections that register with `deadlines`, with
// `header_timeout` for the request line and headers.
class DeadlineConnectionFactory : public Poco::Net::TCPServerConnectionFactory {
 public:
  DeadlineConnectionFactory(std::shared_ptr<ConnectionDeadlines> deadlines, std::chrono::seconds header_timeout,
                            Poco::Net::HTTPServerParams::Ptr params, Poco::Net::HTTPRequestHandlerFactory::Ptr factory)
      : deadlines_(std::move(deadlines)),
        header_timeout_(header_timeout),
        params_(std::move(params)),
        factory_(std::move(factory)) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override;

 private:
  std::shared_ptr<ConnectionDeadlines> deadlines_;
  std::chrono::seconds header_timeout_;
  Poco::Net::HTTPServerParams::Ptr params_;
  Poco::Net::HTTPRequestHandlerFactory::Ptr factory_;
};

}  // namespace kiln::registry

#include "deadlines.hpp"

#include <Poco/Net/HTTPServerConnection.h>
#include <sys/socket.h>

namespace kiln::registry {
namespace {

struct Current {
  ConnectionDeadlines* deadlines = nullptr;
  uint64_t id = 0;
};
thread_local Current current;

class DeadlineConnection : public Poco::Net::HTTPServerConnection {
 public:
  DeadlineConnection(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params,
                     Poco::Net::HTTPRequestHandlerFactory::Ptr factory, std::shared_ptr<ConnectionDeadlines> deadlines,
                     std::chrono::seconds header_timeout)
      : HTTPServerConnection(socket, std::move(params), std::move(factory)),
        deadlines_(std::move(deadlines)),
        header_timeout_(header_timeout) {}

  void run() override {
    uint64_t id = 0;
    if (!deadlines_->enter(socket(), ConnectionDeadlines::Clock::now() + header_timeout_, id)) return;
    current = {deadlines_.get(), id};
    try {
      HTTPServerConnection::run();
    } catch (...) {  // a connection's failure ends that connection only
    }
    current = {};
    deadlines_->leave(id);
  }

 private:
  std::shared_ptr<ConnectionDeadlines> deadlines_;
  std::chrono::seconds header_timeout_;
};

}  // namespace

ConnectionDeadlines::ConnectionDeadlines() : reaper_([this] { reap(); }) {}

ConnectionDeadlines::~ConnectionDeadlines() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    quit_ = true;
  }
  changed_.notify_all();
  reaper_.join();
}

bool ConnectionDeadlines::enter(const Poco::Net::StreamSocket& socket, Clock::time_point deadline, uint64_t& id) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return false;
    id = next_id_++;
    entries_.emplace(id, Entry{socket, deadline});
  }
  changed_.notify_all();
  return true;
}

void ConnectionDeadlines::set_deadline(uint64_t id, Clock::time_point deadline) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto it = entries_.find(id);
    if (it == entries_.end() || it->second.shut) return;
    it->second.deadline = deadline;
  }
  changed_.notify_all();
}

void ConnectionDeadlines::leave(uint64_t id) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    entries_.erase(id);
  }
  changed_.notify_all();
}

void ConnectionDeadlines::stop_and_wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  stopping_ = true;
  for (auto& [id, entry] : entries_) shut_down(entry);
  changed_.wait(lock, [this] { return entries_.empty(); });
}

// Shuts the descriptor down (not the TLS layer, which belongs to the
// connection's thread): its blocked read or write returns at once.
void ConnectionDeadlines::shut_down(Entry& entry) {
  if (entry.shut) return;
  entry.shut = true;
  ::shutdown(entry.socket.impl()->sockfd(), SHUT_RDWR);
}

void ConnectionDeadlines::reap() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!quit_) {
    const auto now = Clock::now();
    auto next = Clock::time_point::max();
    for (auto& [id, entry] : entries_) {
      if (entry.shut) continue;
      if (entry.deadline <= now)
        shut_down(entry);
      else
        next = std::min(next, entry.deadline);
    }
    if (next == Clock::time_point::max())
      changed_.wait(lock);
    else
      changed_.wait_until(lock, next);
  }
}

void set_current_deadline(std::chrono::steady_clock::time_point deadline) {
  if (current.deadlines != nullptr) current.deadlines->set_deadline(current.id, deadline);
}

Poco::Net::TCPServerConnection* DeadlineConnectionFactory::createConnection(const Poco::Net::StreamSocket& socket) {
  return new DeadlineConnection(socket, params_, factory_, deadlines_, header_timeout_);  // Poco takes ownership
}

}  // namespace kiln::registry

#include "event_streams.hpp"

namespace kiln::ui {

using host::Json;
using Clock = std::chrono::steady_clock;

std::string sse_message(const Json& event) {
  // dump() escapes every line break, so the data is one line.
  return "id: " + std::to_string(event.value("seq", uint64_t{0})) +
         "\ndata: " + event.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
}

std::string sse_end(const std::string& reason) {
  return "event: end\ndata: " + Json{{"reason", reason}}.dump(-1, ' ', false, Json::error_handler_t::replace) +
         "\n\n";
}

EventStreams::EventStreams(std::chrono::milliseconds poll, std::chrono::milliseconds heartbeat)
    : poll_(poll), heartbeat_(heartbeat), thread_([this] { run(); }) {}

EventStreams::~EventStreams() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  for (auto& f : followers_) f.stream.close();
  for (auto& f : added_) f.stream.close();
}

void EventStreams::follow(http::Stream stream, host::EventLogReader reader) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    added_.push_back(Follower{std::move(stream), std::move(reader), Clock::now()});
  }
  wake_.notify_all();
}

size_t EventStreams::open() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return followers_.size() + added_.size() + advancing_;
}

bool EventStreams::advance(Follower& f, Clock::time_point now) const {
  if (f.stream.closed()) return false;
  std::vector<Json> events;
  try {
    events = f.reader.poll();
  } catch (const std::exception& e) {
    f.stream.write(sse_end(std::string("the event log cannot be read: ") + e.what()));
    f.stream.close();
    return false;
  }
  if (!events.empty()) {
    std::string batch;
    for (const auto& event : events) batch += sse_message(event);
    if (!f.stream.write(std::move(batch))) return false;
    f.last_sent = now;
  }
  if (f.reader.run_finished()) {
    f.stream.write(sse_end("run_finished"));
    f.stream.close();
    return false;
  }
  if (now - f.last_sent >= heartbeat_) {
    if (!f.stream.write(": heartbeat\n\n")) return false;
    f.last_sent = now;
  }
  return true;
}

void EventStreams::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    for (auto& f : added_) followers_.push_back(std::move(f));
    added_.clear();
    std::vector<Follower> working;
    working.swap(followers_);
    advancing_ = working.size();
    lock.unlock();  // files are read without the lock: follow() never waits on them
    const auto now = Clock::now();
    std::vector<Follower> kept;
    for (auto& f : working)
      if (advance(f, now)) kept.push_back(std::move(f));
    lock.lock();
    advancing_ = 0;
    for (auto& f : kept) followers_.push_back(std::move(f));
    if (added_.empty()) wake_.wait_for(lock, poll_, [this] { return stopping_ || !added_.empty(); });
  }
}

}  // namespace kiln::ui

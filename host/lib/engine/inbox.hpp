// The engine thread's inbox: what attempts report (events, their end) and
// cancellation, posted from any thread, read by the one thread that owns the
// run. Internal to host/lib/engine.
#pragma once

#include <kiln/host/executor.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace kiln::host {

// A message from an attempt to the scheduler thread.
struct Message {
  int unit = -1;
  int attempt = 0;
  std::optional<RunnerEvent> event;
  std::optional<AttemptResult> result;
  bool cancel = false;
};

// The scheduler's inbox: many writers, one reader.
class Inbox {
 public:
  void post(Message m) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back(std::move(m));
    }
    ready_.notify_one();
  }
  // What arrived, without waiting (virtual time: the clock posts while it advances).
  std::deque<Message> take() {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::deque<Message> out;
    out.swap(messages_);
    return out;
  }
  bool empty() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return messages_.empty();
  }
  // Waits until a message arrives or `until` passes; returns what arrived.
  std::deque<Message> wait(std::optional<std::chrono::steady_clock::time_point> until) {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto has = [&] { return !messages_.empty(); };
    if (until)
      ready_.wait_until(lock, *until, has);
    else
      ready_.wait(lock, has);
    std::deque<Message> out;
    out.swap(messages_);
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Message> messages_;
};

}  // namespace kiln::host

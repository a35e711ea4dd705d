// Runs' event logs (runs/<id>/events.jsonl) followed as Server-Sent Events.
// One thread tails every open stream's log: it polls each file every
// `poll` (the writer is another process, a `kiln run`; the browser never
// polls), sends each new event as "id: <seq>" + "data: <event JSON>", a
// comment line when nothing was sent for `heartbeat`, and after the
// run_finished event an "end" event, then closes the stream. A stream whose
// client left is dropped at the next tick.
#pragma once

#include "http_front.hpp"

#include <kiln/host/event_log.hpp>
#include <kiln/host/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::ui {

// One event as an SSE message: "id: <seq>\ndata: <json>\n\n".
std::string sse_message(const host::Json& event);
// The message that ends a stream: "event: end\ndata: {...}\n\n".
std::string sse_end(const std::string& reason);

class EventStreams {
 public:
  EventStreams(std::chrono::milliseconds poll, std::chrono::milliseconds heartbeat);
  ~EventStreams();  // closes the streams still open
  EventStreams(const EventStreams&) = delete;
  EventStreams& operator=(const EventStreams&) = delete;

  // Follows `reader` (already read up to where `stream` has been sent) on `stream`.
  void follow(http::Stream stream, host::EventLogReader reader);
  // Streams followed now.
  size_t open() const;

 private:
  struct Follower {
    http::Stream stream;
    host::EventLogReader reader;
    std::chrono::steady_clock::time_point last_sent;
  };
  void run();
  // Sends what is new; false when the follower is done (run finished, client gone, unreadable log).
  bool advance(Follower& follower, std::chrono::steady_clock::time_point now) const;

  const std::chrono::milliseconds poll_, heartbeat_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Follower> followers_, added_;
  size_t advancing_ = 0;  // followers the thread holds outside the lock
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kiln::ui

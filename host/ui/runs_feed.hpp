// GET /api/v1/events: the workspace's run-level changes as Server-Sent
// Events, for the runs list (a run started, a run's status changed). One
// thread watches the metadata database that every `kiln run` process writes
// to: every `poll` it asks SQLite whether another connection committed
// (PRAGMA data_version, no table read), and only then reads the runs that
// are running, were running, or are new. Each change is one message
// "id: N" + "data: {"type": "run_changed", "run": ID, "status": S}"; a comment
// when nothing was sent for `heartbeat`. A client that reconnects refetches
// its page of runs (the events carry no history).
//
// A run whose process died changes nothing in the database: while any
// watched run is running, the runs are read again every kLivenessEvery even
// without a commit, and a running run whose recorded process is gone
// (host::liveness_of: dead, the rule of `kiln runs list`) is sent as
// "interrupted". A finished run is not watched until it runs again
// (`kiln resume` marks it running).
#pragma once

#include "http_front.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::host {
class MetadataDb;
}

namespace kiln::ui {

class RunsFeed {
 public:
  // How often running runs' processes are looked at when nothing was committed.
  static constexpr std::chrono::milliseconds kLivenessEvery{1000};

  RunsFeed(std::filesystem::path workspace, std::chrono::milliseconds poll, std::chrono::milliseconds heartbeat);
  ~RunsFeed();  // closes the streams still open
  RunsFeed(const RunsFeed&) = delete;
  RunsFeed& operator=(const RunsFeed&) = delete;

  // Sends the changes from now on to `stream` (its retry: line already written).
  void add(http::Stream stream);
  size_t open() const;

 private:
  void run();
  // The messages for what changed since the last look ("" when nothing did).
  std::string changes();
  // changes(), with a database that cannot be read yet reported once and looked at again next tick.
  std::string look();

  const std::filesystem::path workspace_;
  const std::chrono::milliseconds poll_, heartbeat_;
  std::unique_ptr<host::MetadataDb> db_;  // the thread's own connection (data_version is per connection)
  int64_t data_version_ = -1;
  std::map<std::string, std::string> known_;  // run id → status, for the runs a later look must compare
  std::string newest_;                        // the latest started_at seen
  uint64_t next_id_ = 1;
  std::string last_error_;  // printed once, not at every tick
  std::chrono::steady_clock::time_point liveness_checked_{};  // when running runs' processes were last looked at
  bool primed_ = false;  // the first look at an existing database records what exists and sends nothing

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<http::Stream> streams_;
  std::chrono::steady_clock::time_point last_sent_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kiln::ui

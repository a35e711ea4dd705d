#include "runs_feed.hpp"

#include <kiln/host/host_identity.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/metadata_db.hpp>

#include <algorithm>
#include <iostream>

namespace kiln::ui {

namespace fs = std::filesystem;
using host::Json;
using Clock = std::chrono::steady_clock;

RunsFeed::RunsFeed(fs::path workspace, std::chrono::milliseconds poll, std::chrono::milliseconds heartbeat)
    : workspace_(std::move(workspace)), poll_(poll), heartbeat_(heartbeat), last_sent_(Clock::now()) {
  // The first look records what exists before the server answers anyone: a
  // change made right after the server started is a change, not the state a
  // late first look would take as given (seen under load in CI).
  look();
  thread_ = std::thread([this] { run(); });
}

RunsFeed::~RunsFeed() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  for (auto& s : streams_) s.close();
}

void RunsFeed::add(http::Stream stream) {
  const std::lock_guard<std::mutex> lock(mutex_);
  streams_.push_back(std::move(stream));
}

size_t RunsFeed::open() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return streams_.size();
}

std::string RunsFeed::changes() {
  if (!db_) {
    std::error_code ec;
    if (!fs::exists(workspace_ / "kiln.db", ec)) {  // no run yet: every run will be new
      primed_ = true;
      return "";
    }
    db_ = std::make_unique<host::MetadataDb>(workspace_ / "kiln.db");
  }
  const auto version = db_->query("PRAGMA data_version");
  const int64_t now = version.empty() ? 0 : host::MetadataDb::integer(version.front()["data_version"]);
  const bool watching_running =
      std::any_of(known_.begin(), known_.end(), [](const auto& entry) { return entry.second == "running"; });
  const bool look_at_processes = watching_running && Clock::now() - liveness_checked_ >= kLivenessEvery;
  if (now == data_version_ && !look_at_processes) return "";
  data_version_ = now;
  liveness_checked_ = Clock::now();
  Json watched = Json::array();
  for (const auto& [id, status] : known_) watched.push_back(id);
  const auto rows = db_->query(
      "SELECT id, status, started_at, host, pid, boot_id, process_start FROM runs WHERE status = 'running' OR started_at >= ?"
      " OR id IN (SELECT value FROM json_each(?))",
      {newest_, watched.dump()});
  std::string messages;
  std::map<std::string, std::pair<std::string, std::string>> seen;  // id → (status, started_at)
  std::string newest = newest_;
  for (const auto& row : rows) {
    const std::string id = row.value("id", "");
    std::string status = row.value("status", "");
    if (status == "running" && host::liveness_of(row) == host::HostState::dead) status = "interrupted";
    const std::string started = row["started_at"].is_string() ? row["started_at"].get<std::string>() : "";
    newest = std::max(newest, started);
    const auto before = known_.find(id);
    if (primed_ && (before == known_.end() || before->second != status)) {
      const Json event{{"type", "run_changed"}, {"run", id}, {"status", status}};
      messages += "id: " + std::to_string(next_id_++) +
                  "\ndata: " + event.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
    }
    seen[id] = {status, started};
  }
  // Keep what the next look compares against: running runs (interrupted ones
  // are still stored as running, so they are read again) and the newest second's.
  known_.clear();
  for (const auto& entry : seen)
    if (entry.second.first == "running" || entry.second.first == "interrupted" || entry.second.second == newest)
      known_[entry.first] = entry.second.first;
  newest_ = newest;
  primed_ = true;
  return messages;
}

std::string RunsFeed::look() {
  try {
    return changes();
  } catch (const std::exception& e) {  // a database being created or migrated: look again next tick
    if (e.what() != last_error_) std::cerr << "kiln ui: the runs feed cannot read the database: " << e.what() << std::endl;
    last_error_ = e.what();
    db_.reset();
    data_version_ = -1;
    return "";
  }
}

void RunsFeed::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    std::string messages = look();
    lock.lock();
    const auto now = Clock::now();
    if (messages.empty() && now - last_sent_ >= heartbeat_) messages = ": heartbeat\n\n";
    if (!messages.empty()) {
      last_sent_ = now;
      std::vector<http::Stream> kept;
      for (auto& s : streams_)
        if (s.write(messages)) kept.push_back(std::move(s));
      streams_.swap(kept);
    } else {
      streams_.erase(std::remove_if(streams_.begin(), streams_.end(), [](const http::Stream& s) { return s.closed(); }),
                     streams_.end());
    }
    wake_.wait_for(lock, poll_, [this] { return stopping_; });
  }
}

}  // namespace kiln::ui

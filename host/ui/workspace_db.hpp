// The workspace's metadata database as the API's readers share it: opened
// on first need once it exists (a server never creates one), one connection
// used under a lock.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/metadata_db.hpp>

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kiln::ui {

class WorkspaceDb {
 public:
  explicit WorkspaceDb(std::filesystem::path workspace) : file_(std::move(workspace) / "kiln.db") {}

  // The rows of `sql`; none when there is no database yet.
  std::vector<host::Json> query(const std::string& sql, const std::vector<host::Json>& params = {}) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!open()) return {};
    return db_->query(sql, params);
  }
  std::optional<host::Json> query_one(const std::string& sql, const std::vector<host::Json>& params = {}) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!open()) return std::nullopt;
    return db_->query_one(sql, params);
  }

 private:
  bool open() {
    if (db_) return true;
    std::error_code ec;
    if (!std::filesystem::exists(file_, ec)) return false;
    db_ = std::make_unique<host::MetadataDb>(file_);
    return true;
  }

  const std::filesystem::path file_;
  std::mutex mutex_;
  std::unique_ptr<host::MetadataDb> db_;
};

// A JSON text column as a value (an object or array); `fallback` when empty or not JSON.
inline host::Json json_column(const host::Json& column, host::Json fallback = host::Json::object()) {
  if (!column.is_string() || column.get<std::string>().empty()) return fallback;
  host::Json value = host::Json::parse(column.get<std::string>(), nullptr, false);
  return value.is_discarded() ? fallback : value;
}

}  // namespace kiln::ui

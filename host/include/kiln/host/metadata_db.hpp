// The metadata database: <workspace>/kiln.db, SQLite through Poco::Data.
// Runs, steps and attempts, metrics, artifacts, lineage and cache entries.
// WAL mode with a 10 s busy timeout and write transactions that take the
// write lock up front (BEGIN IMMEDIATE), so several kiln processes can share
// one workspace: readers never block, writers queue instead of failing.
#pragma once

#include <kiln/host/json.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

class MetadataDb {
 public:
  // Opens (creating if needed) and migrates the database to the newest schema.
  explicit MetadataDb(const std::filesystem::path& file);
  ~MetadataDb();
  MetadataDb(const MetadataDb&) = delete;
  MetadataDb& operator=(const MetadataDb&) = delete;

  static int latest_schema_version();
  int schema_version();

  // How a commit must survive. Both survive the process being killed (WAL);
  // only `power_loss` also fsyncs the log, so it survives the machine losing
  // power, and with it everything committed before. It costs a few ms.
  enum class Durability { power_loss, process_crash };

  // Runs `work` in one write transaction (BEGIN IMMEDIATE … COMMIT); rolls
  // back and rethrows when it throws. Nested calls join the outer one.
  void transaction(const std::function<void()>& work, Durability durability = Durability::power_loss);

  // Runs one statement; `params` bind to its '?' in order (strings, integers,
  // floating point numbers, booleans; null binds SQL NULL).
  void execute(const std::string& sql, const std::vector<Json>& params = {});
  // Runs a query: one JSON object per row, keyed by column name.
  std::vector<Json> query(const std::string& sql, const std::vector<Json>& params = {});
  std::optional<Json> query_one(const std::string& sql, const std::vector<Json>& params = {});

  const std::filesystem::path& file() const { return file_; }

  // An integer column of a query row. Expressions (MAX(x)) have no declared
  // type, and Poco then returns them as text.
  static int64_t integer(const Json& value);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::filesystem::path file_;
  int depth_ = 0;
};

}  // namespace kiln::host

// The runs of a workspace as the API shows them: the list (one SQL query
// over the metadata database, host/include/kiln/host/run_query.hpp), one
// run's detail (its run.json, as `kiln runs show` reads it, with the cache
// producers from the database), and a step's log files read by byte range,
// confined to the run's directory. Thread-safe: one database connection,
// used under a lock.
#pragma once

#include "file_answer.hpp"
#include "query_string.hpp"

#include <kiln/host/json.hpp>

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

namespace kiln::host {
class MetadataDb;
class RunReader;
}  // namespace kiln::host

namespace kiln::ui {

// Log reads: the last 64 KiB unless asked otherwise, at most 1 MiB at once.
inline constexpr int64_t kDefaultLogBytes = 64 << 10;
inline constexpr int64_t kMaxLogBytes = 1 << 20;

class RunsApi {
 public:
  explicit RunsApi(std::filesystem::path workspace);
  ~RunsApi();
  RunsApi(const RunsApi&) = delete;
  RunsApi& operator=(const RunsApi&) = delete;

  // GET /api/v1/runs: {"total", "limit", "offset", "runs": [...]}.
  host::Json list(const QueryParams& query);
  // GET /api/v1/runs/{id}: the run with its steps in plan order.
  host::Json detail(const std::string& id);
  // GET /api/v1/runs/{id}/steps/{step}/logs.
  host::Json step_log(const std::string& id, const std::string& step, const QueryParams& query);
  // GET /api/v1/runs/{id}/steps/{step}/logs/raw: the log file's bytes, whole
  // or the one range `range` (a Range header; null: none) asks for; a log
  // not written yet is empty.
  FileAnswer raw_log(const std::string& id, const std::string& step, const QueryParams& query,
                     const std::string* range);

  // The directory of run `id` (an exact id: no prefix, no "latest");
  // ApiError 400 for an id that cannot be one, 404 for none.
  std::filesystem::path run_dir(const std::string& id) const;

 private:
  // One attempt's log file (?stream=, ?attempt=; default the last attempt),
  // the attempt's directory checked to lie inside the run's.
  struct LogFile {
    std::filesystem::path run_dir, file;
    std::string stream;
    int attempt = 0;
    bool finished = false;
  };
  LogFile log_file(const std::string& id, const std::string& step, const QueryParams& query);
  // The database, opened on first need once it exists (a server never creates one); null before.
  host::MetadataDb* database();
  host::Json record(const std::filesystem::path& run_dir);

  const std::filesystem::path workspace_;
  std::mutex mutex_;
  std::unique_ptr<host::MetadataDb> db_;
  std::unique_ptr<host::RunReader> reader_;
};

}  // namespace kiln::ui

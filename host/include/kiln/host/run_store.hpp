// The workspace on disk: where runs live and how to find them again.
// <workdir>/runs/<run-id>/run.json is the record the engine keeps current;
// steps/<step>[/<item>]/attempt-<n>/ hold logs, events and outputs.
#pragma once

#include <kiln/host/json.hpp>

#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// --workdir when given, else $KILN_HOME, else ./.kiln
std::filesystem::path workspace_dir(const std::string& option);

std::filesystem::path runs_dir(const std::filesystem::path& workspace);

// A new run id, "<UTC yyyymmdd-hhmmss>-<pipeline name>-<16 hex digits>": the
// time prefix sorts ids by start second, and the 64 random bits (getrandom)
// keep ids made in the same second distinct. Characters of the name other
// than letters, digits and '-' become '-'.
std::string new_run_id(const std::string& pipeline_name);
// The same at a given time (seconds since the epoch).
std::string new_run_id(const std::string& pipeline_name, std::time_t now);

// Whether `id` can name a run's directory: 1 to 200 letters, digits, '-',
// '_' or '.', not starting with '.' (what `kiln run --run-id` and kiln ui accept).
bool is_run_id(const std::string& id);

class MetadataDb;

// Reads runs' records (run.json). A run still marked running whose host
// process is gone (liveness_of: dead) is reported with status "interrupted".
// The host's identity comes from run.json when it holds all of it (host, pid,
// boot_id, process_start), else from the run's row in the workspace
// database, which a reader opens on first need and then keeps open (so
// `kiln logs --follow` can poll). No full identity anywhere: unknown, and the
// run stays "running".
class RunReader {
 public:
  explicit RunReader(std::filesystem::path workspace);
  ~RunReader();
  RunReader(const RunReader&) = delete;
  RunReader& operator=(const RunReader&) = delete;

  Json read(const std::filesystem::path& run_dir);

 private:
  std::optional<Json> recorded_row(const std::string& run_id);

  std::filesystem::path workspace_;
  bool opened_ = false;
  std::unique_ptr<MetadataDb> db_;
};

// Every run's record, oldest first, as RunReader reads them.
std::vector<Json> list_runs(const std::filesystem::path& workspace);

// The run directory for an id, a unique prefix of one, or "latest".
// Throws std::runtime_error naming the candidates when ambiguous or unknown.
std::filesystem::path find_run(const std::filesystem::path& workspace, const std::string& id);

// One run's record, as RunReader reads it (<workspace>/runs/<id>/).
Json read_run(const std::filesystem::path& run_dir);

}  // namespace kiln::host

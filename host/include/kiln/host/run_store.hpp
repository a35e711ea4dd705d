// The workspace on disk: where runs live and how to find them again.
// <workdir>/runs/<run-id>/run.json is the record the engine keeps current;
// steps/<step>[/<item>]/attempt-<n>/ hold logs, events and outputs.
#pragma once

#include <kiln/host/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// --workdir when given, else $KILN_HOME, else ./.kiln
std::filesystem::path workspace_dir(const std::string& option);

std::filesystem::path runs_dir(const std::filesystem::path& workspace);

// Every run's record, oldest first. A run still marked running whose host
// process is gone is reported with status "interrupted".
std::vector<Json> list_runs(const std::filesystem::path& workspace);

// The run directory for an id, a unique prefix of one, or "latest".
// Throws std::runtime_error naming the candidates when ambiguous or unknown.
std::filesystem::path find_run(const std::filesystem::path& workspace, const std::string& id);

// Reads a run's record, applying the "interrupted" rule above.
Json read_run(const std::filesystem::path& run_dir);

}  // namespace kiln::host

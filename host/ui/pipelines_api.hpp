// The pipeline files kiln ui offers to start runs from (--pipelines DIR):
// GET /api/v1/pipelines and /api/v1/pipelines/{name}. Each file is read by
// the spec parser (host::parse_pipeline_file) and its typed parameters
// shown as declared (type, default, bounds, choices, description); the
// detail also plans it against the plugin catalog, so a file that would not
// run shows its problems at file:line:col before anyone presses start.
#pragma once

#include "query_string.hpp"

#include <kiln/host/json.hpp>
#include <kiln/host/spec.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace kiln::host {
class PluginCatalog;
}

namespace kiln::ui {

// Bounds on the directory walk: files looked at, and depth below the directory.
inline constexpr size_t kMaxPipelineFiles = 500;
inline constexpr int kMaxPipelineDepth = 3;

// Every problem of a SpecError as [{"file", "line", "column", "message", "text": "file:line:col: message"}].
host::Json problems_json(const host::SpecError& error);
// A pipeline's declared parameters as the API shows them, in declaration order.
host::Json parameters_json(const host::PipelineSpec& spec);

class PipelinesApi {
 public:
  // `dir` empty: no pipelines offered (the list is empty, a name is 404).
  explicit PipelinesApi(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // GET /api/v1/pipelines: {"directory", "pipelines": [{name, description, file, parameters, steps} | {file, problems}]}.
  host::Json list() const;
  // GET /api/v1/pipelines/{name}: the entry, its text, its steps and whether it plans with its defaults.
  host::Json detail(const std::string& name, const host::PluginCatalog& catalog) const;
  // The file of pipeline `name` (its metadata.name; the first file in path
  // order when several share it); ApiError 404 when none.
  std::filesystem::path file_of(const std::string& name) const;

 private:
  struct Found {
    std::filesystem::path file;
    std::string relative;
  };
  // Every pipeline file under the directory (kind: Pipeline), in path order.
  std::vector<Found> files() const;

  const std::filesystem::path dir_;
};

}  // namespace kiln::ui

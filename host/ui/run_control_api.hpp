// Starting and stopping runs from the API: POST /api/v1/runs (a pipeline
// from --pipelines or an uploaded YAML text, with parameters), and a run's
// cancel, resume and rerun. Everything is validated here first, by the same
// parser and planner `kiln run` uses, and refused with a 400 carrying every
// problem at file:line:col; then `kiln run --run-id ID` (or `kiln resume`)
// is started detached (run_launcher.hpp), its output going to
// <workspace>/ui/launches/<id>.log, and the answer (202) names the run id
// before the run has written anything.
#pragma once

#include "pipelines_api.hpp"
#include "plugins_api.hpp"
#include "run_request.hpp"

#include <kiln/host/json.hpp>

#include <filesystem>
#include <string>

namespace kiln::ui {

class RunControlApi {
 public:
  RunControlApi(std::filesystem::path workspace, std::filesystem::path kiln, const PipelinesApi& pipelines,
                PluginsApi& plugins);

  // POST /api/v1/runs {"pipeline": NAME | "yaml": TEXT, "file_name"?, "params"?, "no_cache"?}.
  host::Json start(const std::string& body);
  // POST /api/v1/runs/{id}/cancel: SIGTERM to the run's kiln process (what Ctrl-C does).
  host::Json cancel(const std::string& id);
  // POST /api/v1/runs/{id}/resume: `kiln resume ID`, for a run whose process is gone.
  host::Json resume(const std::string& id);
  // POST /api/v1/runs/{id}/rerun {"params"?}: the run's pipeline again, edited parameters over its own.
  host::Json rerun(const std::string& id, const std::string& body);
  // GET /api/v1/launches/{id}: the output of the kiln process started for run
  // `id` (its last 64 KiB), and whether the run has a record yet: why a run
  // that never appears did not start.
  host::Json launch_log(const std::string& id) const;

 private:
  struct Launch;
  host::Json launch(const Launch& launch);
  // The run's row in the metadata database; ApiError 404 when it has none.
  host::Json run_row(const std::string& id) const;
  std::filesystem::path launches_dir() const;

  const std::filesystem::path workspace_;
  const std::filesystem::path kiln_;
  const PipelinesApi& pipelines_;
  PluginsApi& plugins_;
};

}  // namespace kiln::ui

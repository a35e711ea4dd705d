// Numbers of runs as the API shows them: a step's metric series (per epoch,
// from the metadata database's metrics table, which the run fills as it
// goes), a tuning step's trials table (from trials.json once the step has
// finished, from the run's record of its trials before that, so the table
// is there from the first trial on), and the comparison of runs (the
// parameters that differ, the metrics side by side).
#pragma once

#include "query_string.hpp"
#include "workspace_db.hpp"

#include <kiln/host/json.hpp>

#include <filesystem>
#include <functional>
#include <string>

namespace kiln::ui {

inline constexpr int64_t kMaxMetricPoints = 100'000;  // points of one metrics answer
inline constexpr size_t kMaxCompareRuns = 10;

class MetricsApi {
 public:
  // `run_dir`: a run id's directory, or ApiError (RunsApi::run_dir).
  MetricsApi(std::filesystem::path workspace, WorkspaceDb& db,
             std::function<std::filesystem::path(const std::string&)> run_dir);

  // GET /api/v1/runs/{id}/steps/{step}/metrics: {"units": {UNIT: {METRIC: [[step, value], ...]}}}.
  host::Json metrics(const std::string& id, const std::string& step, const QueryParams& query);
  // GET /api/v1/runs/{id}/steps/{step}/trials.
  host::Json trials(const std::string& id, const std::string& step);
  // GET /api/v1/compare?runs=a,b,...
  host::Json compare(const QueryParams& query);

 private:
  const std::filesystem::path workspace_;
  WorkspaceDb& db_;
  const std::function<std::filesystem::path(const std::string&)> run_dir_;
};

}  // namespace kiln::ui

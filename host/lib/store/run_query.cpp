// One statement filters, sorts, pages and counts (COUNT(*) OVER ()); the
// interrupted runs are found first, among the few rows still marked running.
#include <kiln/host/host_identity.hpp>
#include <kiln/host/metadata_db.hpp>
#include <kiln/host/run_query.hpp>

#include <algorithm>

namespace kiln::host {

namespace {

const char* column_of(RunSortKey key) {
  switch (key) {
    case RunSortKey::started_at:
      return "started_at";
    case RunSortKey::finished_at:
      return "finished_at";
    case RunSortKey::duration:
      return "duration_seconds";
    case RunSortKey::pipeline:
      return "pipeline";
    case RunSortKey::status:
      return "shown_status";
    case RunSortKey::id:
      return "id";
  }
  return "started_at";
}

// LIKE's wildcards in `text` taken literally (ESCAPE '\').
std::string like_pattern(const std::string& text) {
  std::string out = "%";
  for (const char c : text) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out + "%";
}

// The runs with the status they show (shown_status); its one parameter is
// the JSON array of the interrupted runs' ids.
constexpr const char* kShownRuns =
    "(SELECT *, CASE WHEN status='running' AND id IN (SELECT value FROM json_each(?)) THEN 'interrupted'"
    " ELSE status END AS shown_status FROM runs)";

}  // namespace

const std::vector<std::string>& run_sort_key_names() {
  static const std::vector<std::string> names{"started_at", "finished_at", "duration", "pipeline", "status", "id"};
  return names;
}

std::optional<RunSortKey> parse_run_sort_key(const std::string& name) {
  const auto& names = run_sort_key_names();
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) return std::nullopt;
  return static_cast<RunSortKey>(it - names.begin());
}

const std::vector<std::string>& run_filter_statuses() {
  static const std::vector<std::string> names{"running", "succeeded", "failed", "cancelled", "interrupted"};
  return names;
}

RunPage query_runs(MetadataDb& db, const RunQuery& query) {
  // Runs marked running whose host is gone show as interrupted (the rule of
  // kiln runs list); they are few, and their ids go in as one JSON array.
  Json dead = Json::array();
  for (const auto& row : db.query("SELECT id, host, pid, boot_id, process_start FROM runs WHERE status='running'"))
    if (liveness_of(row) == HostState::dead) dead.push_back(row["id"]);

  std::string where = " WHERE 1";
  std::vector<Json> params{dead.dump()};
  if (!query.statuses.empty()) {
    where += " AND shown_status IN (";
    for (size_t i = 0; i < query.statuses.size(); ++i) {
      where += i == 0 ? "?" : ",?";
      params.emplace_back(query.statuses[i]);
    }
    where += ")";
  }
  if (!query.pipeline.empty()) {
    where += " AND pipeline = ?";
    params.emplace_back(query.pipeline);
  }
  if (!query.text.empty()) {
    where += " AND (id LIKE ? ESCAPE '\\' OR pipeline LIKE ? ESCAPE '\\' OR IFNULL(message, '') LIKE ? ESCAPE '\\')";
    const std::string pattern = like_pattern(query.text);
    params.insert(params.end(), {pattern, pattern, pattern});
  }
  if (!query.since.empty()) {
    where += " AND started_at >= ?";
    params.emplace_back(query.since);
  }
  if (!query.until.empty()) {
    where += " AND started_at < ?";
    params.emplace_back(query.until);
  }
  const char* direction = query.order == SortOrder::ascending ? "ASC" : "DESC";
  // NULLs (a run not finished has no finished_at or duration) sort last either way; id breaks ties.
  const std::string column = column_of(query.sort);
  const std::string sql =
      std::string("SELECT id, pipeline, shown_status AS status, message, started_at, finished_at, duration_seconds,"
                  " executor, COUNT(*) OVER () AS total FROM ") +
      kShownRuns + where + " ORDER BY " + column + " IS NULL, " + column + " " + direction + ", id " + direction +
      " LIMIT ? OFFSET ?";
  params.emplace_back(query.limit);
  params.emplace_back(query.offset);

  RunPage page;
  page.runs = db.query(sql, params);
  if (!page.runs.empty()) {
    page.total = MetadataDb::integer(page.runs.front()["total"]);
  } else if (query.offset > 0) {  // past the end: the count needs a query of its own
    params.resize(params.size() - 2);
    const auto row = db.query_one(std::string("SELECT COUNT(*) AS total FROM ") + kShownRuns + where, params);
    page.total = row ? MetadataDb::integer((*row)["total"]) : 0;
  }
  for (auto& run : page.runs) run.erase("total");
  return page;
}

}  // namespace kiln::host

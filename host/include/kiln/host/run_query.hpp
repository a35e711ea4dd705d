// The workspace's runs as one page of a list: filtered, sorted and counted
// by SQL over the metadata database's runs table and its indexes (one
// statement for the page, one for the count; no run.json is read), for
// `kiln ui`'s runs list. A run still marked running whose host is gone
// (liveness_of: dead) counts and filters as "interrupted", as in
// `kiln runs list`.
#pragma once

#include <kiln/host/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

class MetadataDb;

enum class RunSortKey { started_at, finished_at, duration, pipeline, status, id };
enum class SortOrder { ascending, descending };

// The names of the sort keys as the API spells them, and back.
const std::vector<std::string>& run_sort_key_names();
std::optional<RunSortKey> parse_run_sort_key(const std::string& name);
// Run statuses a filter may name: RunStatus's and "interrupted".
const std::vector<std::string>& run_filter_statuses();

struct RunQuery {
  int64_t limit = 50;
  int64_t offset = 0;
  RunSortKey sort = RunSortKey::started_at;
  SortOrder order = SortOrder::descending;
  std::vector<std::string> statuses;  // any of these (run_filter_statuses); empty: all
  std::string pipeline;               // exact name; empty: all
  std::string text;                   // a substring of the id, pipeline or message; empty: all
  std::string since, until;           // started_at >= since, < until (UTC, "2026-01-31T12:00:00Z"); empty: open
};

struct RunPage {
  int64_t total = 0;       // runs that pass the filter
  std::vector<Json> runs;  // id, pipeline, status, message, started_at, finished_at, duration_seconds, executor
};

RunPage query_runs(MetadataDb& db, const RunQuery& query);

}  // namespace kiln::host

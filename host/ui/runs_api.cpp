#include "runs_api.hpp"

#include "confined_file.hpp"
#include "path_inside.hpp"

#include <kiln/host/metadata_db.hpp>
#include <kiln/host/run_query.hpp>
#include <kiln/host/run_store.hpp>

#include <cctype>
#include <map>

namespace kiln::ui {

namespace fs = std::filesystem;
using host::Json;

namespace {

// "2026-01-31T12:00:00Z", or a date "2026-01-31" (its midnight, UTC).
std::string utc_time(const QueryParams& query, const std::string& name) {
  const auto value = query.text(name, 32);
  if (!value) return "";
  const std::string& t = *value;
  const auto digits = [&](size_t from, size_t count) {
    for (size_t i = from; i < from + count; ++i)
      if (i >= t.size() || !std::isdigit(static_cast<unsigned char>(t[i]))) return false;
    return true;
  };
  const bool date = t.size() >= 10 && digits(0, 4) && t[4] == '-' && digits(5, 2) && t[7] == '-' && digits(8, 2);
  if (date && t.size() == 10) return t + "T00:00:00Z";
  if (date && t.size() == 20 && t[10] == 'T' && digits(11, 2) && t[13] == ':' && digits(14, 2) && t[16] == ':' &&
      digits(17, 2) && t[19] == 'Z')
    return t;
  throw ApiError(400, "query parameter '" + name + "' must be a UTC time like 2026-01-31T12:00:00Z or a date like " +
                          "2026-01-31, not '" + t.substr(0, 64) + "'");
}

// A step's attempts and times as the API shows them (a step, or one loop item or trial).
Json unit_view(const Json& record) {
  Json view = Json::object();
  for (const char* field : {"status", "message", "item", "resumed", "outputs", "artifacts", "digests", "metrics",
                            "trials", "items", "parameters", "inputs"})
    if (record.contains(field)) view[field] = record[field];
  double seconds = 0;
  Json attempts = Json::array();
  for (const auto& a : record.value("attempts", Json::array())) {
    seconds += a.value("duration_seconds", 0.0);
    attempts.push_back(a);
  }
  view["attempts"] = std::move(attempts);
  view["duration_seconds"] = seconds;
  if (record.contains("cache")) view["cache"] = record["cache"];
  return view;
}

// The record of "STEP" or of one loop item or trial "STEP[KEY]"; ApiError otherwise.
const Json& step_record(const Json& run, const std::string& step) {
  const size_t bracket = step.find('[');
  const std::string name = step.substr(0, bracket);
  if (!run.contains("steps") || !run["steps"].is_object() || !run["steps"].contains(name))
    throw ApiError(404, "run " + run.value("id", "") + " has no step '" + name.substr(0, 64) + "'");
  const Json& s = run["steps"][name];
  if (bracket == std::string::npos) {
    if (s.contains("units"))
      throw ApiError(400, "step '" + name + "' is a loop or a tuning step: name one item, e.g. '" + name + "[0]'");
    return s;
  }
  if (step.back() != ']') throw ApiError(400, "step '" + step.substr(0, 64) + "' is not NAME or NAME[KEY]");
  const std::string key = step.substr(bracket + 1, step.size() - bracket - 2);
  if (!s.contains("units") || !s["units"].contains(key))
    throw ApiError(404, "step '" + name + "' has no item '" + key.substr(0, 64) + "'");
  return s["units"][key];
}

}  // namespace

RunsApi::RunsApi(fs::path workspace)
    : workspace_(std::move(workspace)), reader_(std::make_unique<host::RunReader>(workspace_)) {}

RunsApi::~RunsApi() = default;

host::MetadataDb* RunsApi::database() {
  if (!db_) {
    const fs::path file = workspace_ / "kiln.db";
    std::error_code ec;
    if (!fs::exists(file, ec)) return nullptr;
    db_ = std::make_unique<host::MetadataDb>(file);
  }
  return db_.get();
}

fs::path RunsApi::run_dir(const std::string& id) const {
  if (!host::is_run_id(id)) throw ApiError(400, "'" + id.substr(0, 64) + "' is not a run id (letters, digits, '-', '_', '.')");
  const fs::path dir = host::runs_dir(workspace_) / id;
  std::error_code ec;
  if (!fs::is_regular_file(dir / "run.json", ec) || !path_inside(dir, host::runs_dir(workspace_)))
    throw ApiError(404, "no run '" + id + "' in " + host::runs_dir(workspace_).string());
  return dir;
}

Json RunsApi::record(const fs::path& run_dir) {
  try {
    return reader_->read(run_dir);
  } catch (const std::exception& e) {
    throw ApiError(500, "cannot read " + (run_dir / "run.json").string() + ": " + e.what());
  }
}

Json RunsApi::list(const QueryParams& query) {
  query.allow_only({"limit", "offset", "sort", "order", "status", "pipeline", "q", "since", "until"});
  host::RunQuery q;
  q.limit = query.integer("limit", 50, 1, 500);
  q.offset = query.integer("offset", 0, 0, 1'000'000'000);
  q.sort = *host::parse_run_sort_key(query.choice("sort", host::run_sort_key_names(), "started_at"));
  q.order = query.choice("order", {"asc", "desc"}, "desc") == "asc" ? host::SortOrder::ascending
                                                                      : host::SortOrder::descending;
  if (const auto status = query.text("status", 256)) {
    for (const auto& s : split_nonempty(*status, ',')) {
      const auto& known = host::run_filter_statuses();
      if (std::find(known.begin(), known.end(), s) == known.end()) {
        std::string all;
        for (const auto& k : known) all += (all.empty() ? "" : ", ") + k;
        throw ApiError(400, "query parameter 'status' names '" + s.substr(0, 64) + "', not a run status (" + all + ")");
      }
      q.statuses.push_back(s);
    }
  }
  q.pipeline = query.text("pipeline", 256).value_or("");
  q.text = query.text("q", 256).value_or("");
  q.since = utc_time(query, "since");
  q.until = utc_time(query, "until");

  const std::lock_guard<std::mutex> lock(mutex_);
  host::RunPage page;
  if (host::MetadataDb* db = database()) page = host::query_runs(*db, q);
  return Json{{"total", page.total}, {"limit", q.limit}, {"offset", q.offset}, {"runs", std::move(page.runs)}};
}

Json RunsApi::detail(const std::string& id) {
  const fs::path dir = run_dir(id);
  const std::lock_guard<std::mutex> lock(mutex_);
  const Json run = record(dir);
  // Who produced what a cache hit reused: the first producer of its output
  // artifacts, else the run that wrote the cache entry.
  std::map<std::string, Json> producers;
  if (host::MetadataDb* db = database()) {
    for (auto& row : db->query(
             "SELECT s.unit, COALESCE((SELECT a.producer_run FROM lineage l JOIN artifacts a ON a.digest = l.digest"
             " WHERE l.run_id = s.run_id AND l.unit = s.unit AND l.role = 'output' LIMIT 1), c.run_id) AS run,"
             " COALESCE((SELECT a.producer_unit FROM lineage l JOIN artifacts a ON a.digest = l.digest"
             " WHERE l.run_id = s.run_id AND l.unit = s.unit AND l.role = 'output' LIMIT 1), c.unit) AS unit"
             " FROM steps s LEFT JOIN cache_entries c ON c.key = s.cache_key"
             " WHERE s.run_id = ? AND s.cache_status = 'hit'",
             {id}))
      producers[row["unit"].get<std::string>()] = Json{{"run", row["run"]}, {"unit", row["unit"]}};
  }
  const auto with_producer = [&](Json view, const std::string& unit) {
    if (view.contains("cache") && producers.count(unit)) view["cache"]["producer"] = producers[unit];
    return view;
  };

  Json out = Json::object();
  for (const char* field : {"id", "status", "message", "started_at", "finished_at", "duration_seconds", "executor",
                            "parameters", "resumed", "plan"})
    if (run.contains(field)) out[field] = run[field];
  out["pipeline"] = run.value("pipeline", Json::object()).value("name", "");
  out["file"] = run.value("pipeline", Json::object()).value("file", "");
  out["steps"] = Json::array();
  const Json steps = run.value("steps", Json::object());
  for (const auto& [name, step] : steps.items()) {
    Json view{{"name", name}};
    view.update(with_producer(unit_view(step), name));
    if (step.contains("units")) {
      Json units = Json::array();
      for (const auto& [key, unit] : step["units"].items()) {
        Json u{{"key", key}};
        u.update(with_producer(unit_view(unit), name + "[" + key + "]"));
        units.push_back(std::move(u));
      }
      view["units"] = std::move(units);
    }
    out["steps"].push_back(std::move(view));
  }
  return out;
}

RunsApi::LogFile RunsApi::log_file(const std::string& id, const std::string& step, const QueryParams& query) {
  const std::string stream = query.choice("stream", {"stdout", "stderr", "events"}, "stdout");
  const auto wanted_attempt = query.optional_integer("attempt", 1, 1'000'000);

  const fs::path dir = run_dir(id);
  Json run;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    run = record(dir);
  }
  const Json& unit = step_record(run, step);
  const Json attempts = unit.value("attempts", Json::array());
  if (attempts.empty()) throw ApiError(404, "step '" + step + "' of run " + id + " has no attempt yet");
  Json attempt = attempts.back();
  if (wanted_attempt) {
    attempt = nullptr;
    for (const auto& a : attempts)
      if (a.value("attempt", 0) == *wanted_attempt) attempt = a;
    if (attempt.is_null())
      throw ApiError(404, "step '" + step + "' of run " + id + " has no attempt " + std::to_string(*wanted_attempt));
  }
  // The attempt's directory as run.json names it: relative, inside the run.
  const fs::path relative = attempt.value("dir", "");
  for (const auto& part : relative)
    if (part == ".." || part == ".")
      throw ApiError(403, "the attempt directory '" + relative.string() + "' leaves the run directory");
  if (relative.empty() || relative.is_absolute())
    throw ApiError(404, "step '" + step + "' attempt " + std::to_string(attempt.value("attempt", 0)) +
                            " has no log directory (a cache hit runs nothing)");
  const fs::path attempt_dir = dir / relative;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(attempt_dir, ec)) && !path_inside(attempt_dir, dir))
    throw ApiError(403, "the attempt directory " + attempt_dir.string() + " leads out of the run directory");
  return LogFile{dir, attempt_dir / (stream == "events" ? "events.jsonl" : stream + ".log"), stream,
                 attempt.value("attempt", 0), attempt.contains("finished_at")};
}

Json RunsApi::step_log(const std::string& id, const std::string& step, const QueryParams& query) {
  query.allow_only({"attempt", "stream", "offset", "limit"});
  const int64_t limit = query.integer("limit", kDefaultLogBytes, 1, kMaxLogBytes);
  const auto wanted_offset = query.optional_integer("offset", 0, INT64_MAX / 2);
  const LogFile found = log_file(id, step, query);

  Json out{{"run", id}, {"step", step}, {"attempt", found.attempt}, {"stream", found.stream},
           {"finished", found.finished}};
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(found.file, ec))) {  // not written yet
    out.update(Json{{"size", 0}, {"offset", 0}, {"next_offset", 0}, {"text", ""}});
    return out;
  }
  const ConfinedFile log(found.file, found.run_dir);
  const int64_t size = log.size();
  const int64_t offset = wanted_offset.value_or(std::max<int64_t>(0, size - limit));
  if (offset > size)
    throw ApiError(416, "offset " + std::to_string(offset) + " is past the end of the log (" + std::to_string(size) +
                            " bytes)");
  std::string text = log.read(offset, limit);
  const size_t got = text.size();
  out.update(Json{{"size", size},
                  {"offset", offset},
                  {"next_offset", offset + static_cast<int64_t>(got)},
                  {"text", std::move(text)}});
  return out;
}

FileAnswer RunsApi::raw_log(const std::string& id, const std::string& step, const QueryParams& query,
                            const std::string* range) {
  query.allow_only({"attempt", "stream"});
  const LogFile found = log_file(id, step, query);
  std::string name = id + "-" + step + "-" + found.file.filename().string();
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(found.file, ec))) {  // not written yet: an empty log
    const http::ByteRange none = range ? http::parse_byte_range(*range, 0) : http::ByteRange{};
    return FileAnswer{"", "text/plain; charset=utf-8", std::move(name), none, 0};
  }
  return file_answer(ConfinedFile(found.file, found.run_dir), std::move(name), "text/plain; charset=utf-8", range,
                     "ask for ranges of it with a Range header, or read it with offset and limit from /logs");
}

}  // namespace kiln::ui

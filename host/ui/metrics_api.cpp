#include "metrics_api.hpp"

#include "confined_file.hpp"

#include <kiln/host/pareto.hpp>
#include <kiln/host/run_store.hpp>
#include <kiln/host/spec.hpp>

#include <cmath>
#include <map>
#include <set>

namespace kiln::ui {

namespace fs = std::filesystem;
using host::Json;

namespace {

Json read_record(const fs::path& dir) {
  try {
    return host::read_run(dir);
  } catch (const std::exception& e) {
    throw ApiError(500, "cannot read " + (dir / "run.json").string() + ": " + e.what());
  }
}

const Json& step_of(const Json& run, const std::string& step, const std::string& id) {
  if (!run.contains("steps") || !run["steps"].contains(step))
    throw ApiError(404, "run " + id + " has no step '" + step.substr(0, 64) + "'");
  return run["steps"][step];
}

Json goal_of(const std::string& metric, bool maximize) {
  return Json{{"metric", metric}, {"goal", maximize ? "maximize" : "minimize"}};
}

// The tuning objectives of `step` as the run's recorded pipeline declares
// them: [{metric, goal}, ...], the first being `objective`; null when none.
Json objectives_of(WorkspaceDb& db, const std::string& id, const std::string& step) {
  const auto row = db.query_one("SELECT spec_text, spec_file FROM runs WHERE id=?", {id});
  if (!row) return nullptr;
  try {
    const auto spec = host::parse_pipeline_text((*row)["spec_text"].get<std::string>(),
                                                 (*row)["spec_file"].get<std::string>());
    const auto* s = spec.find_step(step);
    if (s == nullptr || !s->tune) return nullptr;
    Json out = Json::array();
    for (const auto& o : s->tune->objectives) out.push_back(goal_of(o.metric, o.maximize));
    if (out.empty()) out.push_back(goal_of(s->tune->metric, s->tune->maximize));
    return out;
  } catch (const std::exception&) {
    return nullptr;
  }
}

// A trial's value of `metric` while its step runs: its record's metrics,
// else its last metric event, else its output parameter; null when none yet.
Json running_value(const Json& last, const std::string& db_unit, const Json& unit, const std::string& metric) {
  if (unit.contains("metrics") && unit["metrics"].contains(metric)) return unit["metrics"][metric];
  if (last.contains(db_unit) && last[db_unit].contains(metric)) return last[db_unit][metric];
  const Json outputs = unit.value("outputs", Json::object());
  if (outputs.contains(metric) && outputs[metric].is_number()) return outputs[metric];
  return nullptr;
}

// The last value of every metric of each run, by unit: {UNIT: {NAME: value}}.
Json last_metrics(WorkspaceDb& db, const std::string& id) {
  Json out = Json::object();
  for (const auto& row : db.query(
           "SELECT m.unit, m.name, m.value FROM metrics m JOIN (SELECT unit, name, MAX(rowid) AS last FROM metrics"
           " WHERE run_id=? GROUP BY unit, name) l ON m.rowid = l.last ORDER BY m.unit, m.name LIMIT 10000",
           {id}))
    out[row["unit"].get<std::string>()][row["name"].get<std::string>()] = row["value"];
  return out;
}

}  // namespace

MetricsApi::MetricsApi(fs::path workspace, WorkspaceDb& db, std::function<fs::path(const std::string&)> run_dir)
    : workspace_(std::move(workspace)), db_(db), run_dir_(std::move(run_dir)) {}

Json MetricsApi::metrics(const std::string& id, const std::string& step, const QueryParams& query) {
  query.allow_only({"name", "after"});
  const auto name = query.text("name", 256);
  const auto after = query.optional_integer("after", 0, INT64_MAX / 2);  // rows after this cursor (live)
  run_dir_(id);
  std::string sql =
      "SELECT rowid, unit, name, step, value, time FROM metrics WHERE run_id=? AND (unit=? OR unit LIKE ? ESCAPE '\\')";
  std::string pattern;
  for (const char c : step) {
    if (c == '%' || c == '_' || c == '\\') pattern += '\\';
    pattern += c;
  }
  std::vector<Json> params{id, step, pattern + "[%"};
  if (name) {
    sql += " AND name=?";
    params.emplace_back(*name);
  }
  if (after) {
    sql += " AND rowid>?";
    params.emplace_back(*after);
  }
  sql += " ORDER BY rowid LIMIT " + std::to_string(kMaxMetricPoints + 1);
  const auto rows = db_.query(sql, params);
  Json units = Json::object();
  int64_t cursor = after.value_or(0);
  const size_t shown = std::min<size_t>(rows.size(), kMaxMetricPoints);
  for (size_t i = 0; i < shown; ++i) {
    const Json& r = rows[i];
    units[r["unit"].get<std::string>()][r["name"].get<std::string>()].push_back(
        Json::array({r["step"], r["value"], r["time"]}));
    cursor = r["rowid"].get<int64_t>();
  }
  return Json{{"run", id}, {"step", step}, {"units", std::move(units)}, {"cursor", cursor},
              {"truncated", rows.size() > shown}, {"columns", Json::array({"step", "value", "time"})}};
}

namespace {

// A multi-objective step still running: "pareto" on the succeeded trials
// no other succeeded trial dominates, as the engine marks the finished
// table (docs/tuning.md), so the page shows the front as it forms.
void mark_front_so_far(const Json& objectives, Json& rows) {
  if (!objectives.is_array() || objectives.size() < 2) return;
  std::vector<size_t> candidates;
  std::vector<std::vector<double>> scores;
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i]["pareto"] = false;
    if (rows[i].value("status", "") != "succeeded") continue;
    std::vector<double> score;
    for (const Json& o : objectives) {
      const Json& v = rows[i].value(o.value("metric", ""), Json());
      if (!v.is_number() || !std::isfinite(v.get<double>())) break;
      score.push_back(o.value("goal", "maximize") == "maximize" ? -v.get<double>() : v.get<double>());
    }
    if (score.size() != objectives.size()) continue;
    candidates.push_back(i);
    scores.push_back(std::move(score));
  }
  for (const size_t i : host::pareto_front(scores)) rows[candidates[i]]["pareto"] = true;
}

}  // namespace

Json MetricsApi::trials(const std::string& id, const std::string& step) {
  const fs::path dir = run_dir_(id);
  const Json run = read_record(dir);
  const Json& s = step_of(run, step, id);
  Json objectives = objectives_of(db_, id, step);
  Json objective = objectives.is_array() ? objectives[0] : Json();
  Json rows = Json::array();
  std::string source;
  if (s.contains("trials") && s["trials"].is_string()) {
    // The finished table: in the artifact store, or the step's directory without one.
    const fs::path file = dir / s["trials"].get<std::string>();
    const ConfinedFile opened(file, workspace_);
    if (opened.size() > (16 << 20)) throw ApiError(413, file.string() + " is larger than 16 MiB");
    const Json table = Json::parse(opened.read(0, opened.size()), nullptr, false);
    if (!table.is_object() || !table.contains("trials")) throw ApiError(500, file.string() + " is not a trials table");
    objective = table.value("objective", objective);
    objectives = table.value("objectives", objective.is_null() ? objectives : Json::array({objective}));
    for (Json row : table["trials"]) {
      row["epochs"] = row.value("curve", Json::object()).size();
      rows.push_back(std::move(row));
    }
    source = "trials.json";
  } else {
    if (objective.is_null()) throw ApiError(404, "step '" + step + "' of run " + id + " is not a tuning step");
    // Still running: each trial as the run's record has it so far (a trial
    // template's parts are units KEY.PART; the trial is KEY).
    const std::string metric = objective["metric"];
    const Json last = last_metrics(db_, id);
    std::map<int64_t, Json> by_trial;
    const Json units = s.value("units", Json::object());
    for (const auto& [key, unit] : units.items()) {
      const std::string trial_key = key.substr(0, key.find('.'));
      const auto trial = parse_integer(trial_key, 0, INT64_MAX);
      if (!trial) continue;
      Json& row = by_trial[*trial];
      if (row.is_null()) {
        // A PBT trial's directive is its lineage, not a parameter (as trials.json has it).
        Json parameters = unit.value("item", Json::object());
        row = Json{{"trial", *trial}};
        if (parameters.is_object() && parameters.contains("kiln.pbt")) {
          row["pbt"] = parameters["kiln.pbt"];
          parameters.erase("kiln.pbt");
        }
        row["parameters"] = std::move(parameters);
      }
      row["status"] = unit.value("status", "pending");
      Json curve = unit.value("outputs", Json::object()).value("kiln.curve", Json::object());
      const std::string db_unit = step + "[" + key + "]";
      for (const Json& o : objectives) {
        const std::string name = o["metric"];
        if (Json v = running_value(last, db_unit, unit, name); !v.is_null() || !row.contains(name)) row[name] = v;
      }
      if (curve.empty())
        for (const auto& r : db_.query("SELECT step, value FROM metrics WHERE run_id=? AND unit=? AND name=? ORDER BY "
                                       "rowid LIMIT 100000",
                                       {id, db_unit, metric}))
          curve[std::to_string(r["step"].get<int64_t>())] = r["value"];
      row["curve"] = curve;
      row["epochs"] = curve.size();
    }
    for (auto& [trial, row] : by_trial) rows.push_back(std::move(row));
    mark_front_so_far(objectives, rows);
    source = "run record";
  }
  // The best: the step's own choice once it has one, else the best value so far.
  Json best = s.value("outputs", Json::object()).value("best_trial", Json());
  if (best.is_null() && objective.is_object()) {
    const std::string metric = objective["metric"];
    const bool maximize = objective.value("goal", "maximize") == "maximize";
    double best_value = 0;
    for (const auto& row : rows) {
      if (!row.contains(metric) || !row[metric].is_number()) continue;
      const double v = row[metric].get<double>();
      if (best.is_null() || (maximize ? v > best_value : v < best_value)) {
        best = row["trial"];
        best_value = v;
      }
    }
  }
  for (auto& row : rows) {
    row["early_stopped"] = row.value("status", "") == "early-stopped";
    row["best"] = !best.is_null() && row["trial"] == best;
  }
  return Json{{"run", id},         {"step", step},          {"status", s.value("status", "")},
              {"objective", objective}, {"objectives", objectives.is_array() ? objectives : Json::array()},
              {"best_trial", best},     {"source", source},
              {"trials", std::move(rows)}};
}

Json MetricsApi::compare(const QueryParams& query) {
  query.allow_only({"runs"});
  const auto list = query.text("runs", 4096);
  if (!list) throw ApiError(400, "query parameter 'runs' is required: runs=ID,ID,...");
  const std::vector<std::string> ids = split_nonempty(*list, ',');
  if (ids.size() < 2 || ids.size() > kMaxCompareRuns)
    throw ApiError(400, "compare 2 to " + std::to_string(kMaxCompareRuns) + " runs, not " + std::to_string(ids.size()));
  if (std::set<std::string>(ids.begin(), ids.end()).size() != ids.size())
    throw ApiError(400, "query parameter 'runs' names a run twice");
  Json runs = Json::array();
  std::vector<Json> parameters;
  std::set<std::string> names;
  for (const auto& id : ids) {
    const Json run = read_record(run_dir_(id));
    const Json p = run.value("parameters", Json::object());
    for (const auto& [name, value] : p.items()) names.insert(name);
    parameters.push_back(p);
    Json steps = Json::object();
    const Json recorded_steps = run.value("steps", Json::object());
    for (const auto& [name, step] : recorded_steps.items()) steps[name] = step.value("status", "");
    runs.push_back(Json{{"id", id},
                        {"pipeline", run.value("pipeline", Json::object()).value("name", "")},
                        {"status", run.value("status", "")},
                        {"started_at", run.value("started_at", "")},
                        {"duration_seconds", run.value("duration_seconds", Json())},
                        {"steps", std::move(steps)}});
  }
  // Only the parameters that differ: by name, each run's value (null: not set).
  Json differing = Json::object();
  for (const auto& name : names) {
    Json values = Json::array();
    bool same = true;
    for (const auto& p : parameters) {
      values.push_back(p.contains(name) ? p[name] : Json());
      same = same && values.back() == values.front();
    }
    if (!same) differing[name] = std::move(values);
  }
  // Metrics side by side: each (unit, metric) any run has, with each run's last value (null: none).
  std::vector<Json> last;
  std::set<std::pair<std::string, std::string>> keys;
  for (const auto& id : ids) {
    last.push_back(last_metrics(db_, id));
    for (const auto& [unit, values] : last.back().items())
      for (const auto& [name, value] : values.items()) keys.emplace(unit, name);
  }
  Json metrics = Json::array();
  for (const auto& [unit, name] : keys) {
    Json values = Json::array();
    for (const auto& l : last) values.push_back(l.contains(unit) && l[unit].contains(name) ? l[unit][name] : Json());
    metrics.push_back(Json{{"step", unit}, {"metric", name}, {"values", std::move(values)}});
  }
  return Json{{"runs", std::move(runs)}, {"parameters", std::move(differing)}, {"metrics", std::move(metrics)},
              {"parameters_compared", names.size()}};
}

}  // namespace kiln::ui

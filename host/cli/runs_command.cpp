// `kiln runs list`, `kiln runs show`, `kiln runs events`, `kiln logs` and
// `kiln trials`: reading runs after the fact, or following them live.
#include <kiln/host/event_log.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/run_store.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <thread>

#include "cli.hpp"

namespace kiln::cli {
namespace {

using host::Json;
namespace fs = std::filesystem;

fs::path run_dir_of(const std::string& workdir, const std::string& run) {
  try {
    return host::find_run(host::workspace_dir(workdir), run);
  } catch (const std::runtime_error& e) {
    throw CommandError(e.what());
  }
}

int list_runs(const std::string& workdir, bool json) {
  const auto runs = host::list_runs(host::workspace_dir(workdir));
  if (json) {
    Json out = Json::array();
    for (const auto& r : runs)
      out.push_back({{"id", r["id"]},
                     {"pipeline", r["pipeline"]["name"]},
                     {"status", r["status"]},
                     {"started_at", r.value("started_at", "")},
                     {"duration_seconds", r.value("duration_seconds", 0.0)}});
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (runs.empty()) std::cout << "no runs in " << host::runs_dir(host::workspace_dir(workdir)).string() << "\n";
  for (const auto& r : runs)
    std::cout << std::left << std::setw(48) << r["id"].get<std::string>() << std::setw(13)
              << r["status"].get<std::string>() << r.value("started_at", "") << "\n";
  return kExitOk;
}

void print_step(const std::string& name, const Json& step, const std::string& indent) {
  std::cout << indent << name << ": " << step.value("status", "");
  if (step.contains("message")) std::cout << " (" << step["message"].get<std::string>() << ")";
  std::cout << "\n";
  for (const auto& a : step.value("attempts", Json::array())) {
    char duration[32];
    std::snprintf(duration, sizeof duration, "%.3f s", a.value("duration_seconds", 0.0));
    std::cout << indent << "  attempt " << a.value("attempt", 0) << ": " << a.value("status", "") << ", " << duration
              << ", " << a.value("executor", "");
    if (a.contains("failure")) std::cout << ", " << a["failure"].get<std::string>() << ": " << a.value("message", "");
    std::cout << "\n";
  }
  if (step.contains("cache")) {
    const Json& c = step["cache"];
    std::cout << indent << "  cache: " << c.value("status", "");
    if (c.contains("reason") && !c["reason"].get<std::string>().empty())
      std::cout << " (" << c["reason"].get<std::string>() << ")";
    std::cout << "\n";
  }
  if (step.contains("resumed")) std::cout << indent << "  " << step["resumed"].get<std::string>() << "\n";
  if (step.contains("metrics")) std::cout << indent << "  metrics: " << step["metrics"].dump() << "\n";
  if (step.contains("outputs") && !step["outputs"].empty())
    std::cout << indent << "  outputs: " << step["outputs"].dump() << "\n";
  if (step.contains("artifacts")) std::cout << indent << "  artifacts: " << step["artifacts"].dump() << "\n";
  if (step.contains("units"))
    for (const auto& unit : step["units"].items())
      print_step(name + "[" + unit.key() + "]", unit.value(), indent + "  ");
}

int show_run(const std::string& workdir, const std::string& run, bool json) {
  const auto dir = run_dir_of(workdir, run);
  const Json record = host::read_run(dir);
  if (json) {
    std::cout << record.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "run " << record["id"].get<std::string>() << " (" << record["pipeline"]["name"].get<std::string>()
            << ", " << record["pipeline"]["file"].get<std::string>() << ")\n";
  std::cout << "status: " << record["status"].get<std::string>();
  if (record.contains("message")) std::cout << " (" << record["message"].get<std::string>() << ")";
  std::cout << "\nstarted: " << record.value("started_at", "") << "  finished: " << record.value("finished_at", "-")
            << "\nparameters: " << record["parameters"].dump() << "\ndirectory: " << dir.string() << "\nsteps:\n";
  for (const auto& item : record["steps"].items()) print_step(item.key(), item.value(), "  ");
  return kExitOk;
}

// The record of STEP or of one loop item "STEP[2]".
const Json& step_record(const Json& record, const std::string& step) {
  const auto bracket = step.find('[');
  const std::string name = step.substr(0, bracket);
  if (!record["steps"].contains(name)) {
    std::vector<std::string> names;
    for (const auto& item : record["steps"].items()) names.push_back(item.key());
    std::string all;
    for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
    throw CommandError("run " + record["id"].get<std::string>() + " has no step '" + name + "' (steps: " + all + ")");
  }
  const Json& s = record["steps"][name];
  if (bracket == std::string::npos) {
    if (s.contains("units")) throw CommandError("'" + name + "' is a loop: name an item, e.g. '" + name + "[0]'");
    return s;
  }
  const std::string index = step.substr(bracket + 1, step.find(']') - bracket - 1);
  if (!s.contains("units") || !s["units"].contains(index)) throw CommandError("no item " + step);
  return s["units"][index];
}

// Prints what was appended to `path` since `offset`; returns the new offset.
std::streamoff print_from(const fs::path& path, std::streamoff offset, bool events) {
  std::ifstream in(path);
  if (!in) return offset;
  in.seekg(offset);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) {  // a partial line: wait for the rest
      break;
    }
    offset = in.tellg();
    if (!events) {
      std::cout << line << "\n";
      continue;
    }
    try {
      const Json e = Json::parse(line);
      const std::string kind = e.value("event", "");
      if (kind == "log")
        std::cout << "[" << e.value("level", "") << "] " << e.value("message", "") << "\n";
      else if (kind == "metric")
        std::cout << "[metric] " << e.value("name", "") << " = " << e["value"].dump() << " (step "
                  << e.value("step", -1) << ")\n";
    } catch (const std::exception&) {
      std::cout << line << "\n";
    }
  }
  std::cout.flush();
  return offset;
}

int show_logs(const std::string& workdir, const std::string& run, const std::string& step, bool follow) {
  const auto dir = run_dir_of(workdir, run);
  std::map<fs::path, std::streamoff> offsets;
  host::RunReader reader(dir.parent_path().parent_path());  // one database connection for every poll
  for (;;) {
    const Json record = reader.read(dir);
    const Json& s = step_record(record, step);
    const auto attempts = s.value("attempts", Json::array());
    const bool done = s.value("status", "") != "running" && s.value("status", "") != "pending";
    for (const auto& a : attempts) {
      const fs::path attempt_dir = dir / a.value("dir", "");
      const bool first = !offsets.count(attempt_dir / "events.jsonl");
      if (first) std::cout << "== " << step << " attempt " << a.value("attempt", 0) << " ==\n";
      offsets[attempt_dir / "events.jsonl"] =
          print_from(attempt_dir / "events.jsonl", offsets[attempt_dir / "events.jsonl"], true);
      offsets[attempt_dir / "stdout.log"] =
          print_from(attempt_dir / "stdout.log", offsets[attempt_dir / "stdout.log"], false);
      offsets[attempt_dir / "stderr.log"] =
          print_from(attempt_dir / "stderr.log", offsets[attempt_dir / "stderr.log"], false);
    }
    if (!follow || done || record.value("status", "") != "running") return kExitOk;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a tail of files the run is writing
  }
}

// `kiln runs events RUN`: the run's event log (docs/events.md), one JSON
// object per line, from sequence number `from`; with `follow`, until the run ends.
int show_events(const std::string& workdir, const std::string& run, uint64_t from, bool follow) {
  const auto dir = run_dir_of(workdir, run);
  host::EventLogReader reader(dir / host::kEventLogName, from);
  for (;;) {
    try {
      for (const Json& event : reader.poll()) std::cout << event.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    } catch (const std::runtime_error& e) {
      throw CommandError(e.what());
    }
    std::cout.flush();
    if (!follow || reader.run_finished()) return kExitOk;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// A population-based training trial's lineage: "m1 r3 <- 9 exploit" (member
// 1, round 3, started from trial 9's checkpoint, copied from another member).
std::string pbt_lineage(const Json& row) {
  const Json pbt = row.value("pbt", Json::object());
  if (!pbt.is_object() || !pbt.contains("member")) return "-";
  std::string out = "m" + pbt["member"].dump() + " r" + pbt.value("round", Json(0)).dump();
  if (pbt.contains("from") && !pbt["from"].is_null()) out += " <- " + pbt["from"].dump();
  if (pbt.value("exploited", false)) out += " exploit";
  return out;
}

// `kiln trials RUN STEP`: a tuning step's trials, best objective first.
int show_trials(const std::string& workdir, const std::string& run, const std::string& step, bool json) {
  const auto dir = run_dir_of(workdir, run);
  const Json record = host::read_run(dir);
  if (!record["steps"].contains(step)) step_record(record, step);  // throws, listing the steps
  const Json& s = record["steps"][step];
  if (!s.contains("trials"))
    throw CommandError("step '" + step + "' has no trials table" +
                       (s.value("status", "") == "running" ? " yet (it is still running)" : " (is it a tuning step?)"));
  const Json table = Json::parse(host::read_file(dir / s["trials"].get<std::string>()));
  const std::string metric = table["objective"].value("metric", "");
  const bool maximize = table["objective"].value("goal", "maximize") == "maximize";
  // Several objectives (issue 23): a column each, and the Pareto front
  // (rows marked "pareto") first, marked with a '*'.
  std::vector<std::string> metrics{metric};
  const bool multi = table.contains("objectives") && table["objectives"].is_array();
  if (multi) {
    metrics.clear();
    for (const Json& o : table["objectives"]) metrics.push_back(o.value("metric", ""));
  }
  std::vector<Json> rows(table["trials"].begin(), table["trials"].end());
  // The front first; trials with a value first, best first; then the rest in trial order.
  std::stable_sort(rows.begin(), rows.end(), [&](const Json& a, const Json& b) {
    const bool fa = a.value("pareto", false), fb = b.value("pareto", false);
    if (fa != fb) return fa;
    const bool va = a[metric].is_number(), vb = b[metric].is_number();
    if (va != vb) return va;
    if (!va) return a["trial"].get<int64_t>() < b["trial"].get<int64_t>();
    return maximize ? a[metric].get<double>() > b[metric].get<double>()
                    : a[metric].get<double>() < b[metric].get<double>();
  });
  if (json) {
    std::cout << Json(rows).dump(2) << "\n";
    return kExitOk;
  }
  const bool pbt = std::any_of(rows.begin(), rows.end(), [](const Json& row) { return row.contains("pbt"); });
  std::cout << std::left << std::setw(7) << "trial" << std::setw(15) << "status";
  if (multi) std::cout << std::setw(7) << "front";
  for (const std::string& m : metrics) std::cout << std::setw(14) << m;
  std::cout << std::setw(8) << "steps" << std::setw(11) << "seconds" << (pbt ? "lineage                 " : "")
            << "parameters\n";
  for (const Json& row : rows) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f", row.value("duration_seconds", 0.0));
    std::cout << std::setw(7) << row["trial"].get<int64_t>() << std::setw(15) << row["status"].get<std::string>();
    if (multi) std::cout << std::setw(7) << (row.value("pareto", false) ? "*" : "");
    for (const std::string& m : metrics) {
      char value[32] = "-";
      if (row.contains(m) && row[m].is_number()) std::snprintf(value, sizeof value, "%.6g", row[m].get<double>());
      std::cout << std::setw(14) << value;
    }
    std::cout << std::setw(8) << row.value("curve", Json::object()).size() << std::setw(11) << seconds;
    if (pbt) std::cout << std::setw(24) << pbt_lineage(row);
    std::cout << row["parameters"].dump() << "\n";
  }
  return kExitOk;
}

}  // namespace

void add_runs_commands(CLI::App& app, Commands& commands) {
  CLI::App* group = Commands::add_group(app, "runs", "List and inspect runs");
  static std::string workdir, run;
  static bool json = false, follow = false;
  auto* list = commands.add(*group, "list", "List the runs of the workspace", [] { return list_runs(workdir, json); });
  list->add_option("--workdir", workdir, "Workspace (default: $KILN_HOME or ./.kiln)");
  list->add_flag("--json", json, "Print JSON");
  auto* show = commands.add(*group, "show", "Show a run: status, steps, attempts, outputs",
                            [] { return show_run(workdir, run, json); });
  show->add_option("RUN", run, "Run id, a unique prefix of one, or 'latest'")->required();
  show->add_option("--workdir", workdir, "Workspace (default: $KILN_HOME or ./.kiln)");
  show->add_flag("--json", json, "Print the run record as JSON");

  static uint64_t from = 1;
  auto* events = commands.add(*group, "events", "Print a run's event log (docs/events.md), one JSON object a line",
                              [] { return show_events(workdir, run, from, follow); });
  events->add_option("RUN", run, "Run id, a unique prefix of one, or 'latest'")->required();
  events->add_option("--workdir", workdir, "Workspace (default: $KILN_HOME or ./.kiln)");
  events->add_option("--from", from, "Start at this sequence number (default 1)")->check(CLI::PositiveNumber);
  events->add_flag("--follow,-f", follow, "Keep printing new events until the run finishes");

  static std::string step;
  auto* logs = commands.add(app, "logs", "Print a step's logs (structured logs, stdout, stderr)",
                            [] { return show_logs(workdir, run, step, follow); });
  logs->add_option("RUN", run, "Run id, a unique prefix of one, or 'latest'")->required();
  logs->add_option("STEP", step, "Step name; a loop item as NAME[INDEX]")->required();
  logs->add_option("--workdir", workdir, "Workspace (default: $KILN_HOME or ./.kiln)");
  logs->add_flag("--follow,-f", follow, "Keep printing until the step ends");

  auto* trials = commands.add(app, "trials", "Print a tuning step's trials, best objective first",
                              [] { return show_trials(workdir, run, step, json); });
  trials->add_option("RUN", run, "Run id, a unique prefix of one, or 'latest'")->required();
  trials->add_option("STEP", step, "The tuning step")->required();
  trials->add_option("--workdir", workdir, "Workspace (default: $KILN_HOME or ./.kiln)");
  trials->add_flag("--json", json, "Print the sorted trials as JSON");
}

}  // namespace kiln::cli

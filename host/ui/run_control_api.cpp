#include "run_control_api.hpp"

#include "confined_file.hpp"
#include "run_launcher.hpp"

#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/json_bounded.hpp>
#include <kiln/host/metadata_db.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/run_status.hpp>
#include <kiln/host/run_store.hpp>
#include <kiln/host/yaml_json.hpp>

#include <signal.h>

#include <algorithm>
#include <functional>
#include <map>

namespace kiln::ui {

namespace fs = std::filesystem;
using host::Json;

struct RunControlApi::Launch {
  std::string id;
  std::vector<std::string> args;  // after the kiln executable
};

namespace {

// What plan_pipeline calls the request's parameters in its problems.
constexpr const char* kParamsOrigin = "params";

// The given parameters, each text value of a declared non-string parameter
// read as `--param` reads it (a form sends "0.5" for a float).
Json typed_params(Json params, const host::PipelineSpec& spec) {
  for (auto& [name, value] : params.items()) {
    const auto* declared = spec.find_parameter(name);
    if (declared == nullptr || !value.is_string() || declared->spec.type == host::ValueType::String) continue;
    try {
      value = host::parse_parameter_text(declared->spec, value.get<std::string>());
    } catch (const std::invalid_argument& e) {
      throw ApiError(400, "parameter '" + name + "': " + e.what(),
                     Json::array({Json{{"file", spec.file}, {"line", declared->pos.line}, {"column", declared->pos.column},
                                       {"field", "params." + name}, {"message", e.what()}}}));
    }
  }
  return params;
}

host::PipelineSpec parse_or_400(const std::function<host::PipelineSpec()>& parse, const std::string& shown_as) {
  try {
    return parse();
  } catch (const host::SpecError& e) {
    const size_t n = e.diagnostics().size();
    throw ApiError(400, std::to_string(n) + (n == 1 ? " problem" : " problems") + " in " + shown_as,
                   problems_json(e));
  }
}

// Plans `spec` with `params` (what `kiln run` will do first): a 400 with every
// problem otherwise. A problem with a given value is placed at the parameter's
// declaration, with its field (params.NAME).
void plan_or_400(host::PipelineSpec spec, const host::PluginCatalog& catalog, const Json& params,
                 const std::string& shown_as) {
  std::map<std::string, host::SourcePos> declared;
  for (const auto& p : spec.parameters) declared[p.spec.name] = p.pos;
  const std::string file = spec.file;
  try {
    host::plan_pipeline(std::move(spec), catalog, params, kParamsOrigin);
  } catch (const host::SpecError& e) {
    Json problems = problems_json(e);
    for (auto& problem : problems) {
      if (problem["file"] != kParamsOrigin) continue;
      const std::string message = problem["message"];
      const std::string prefix = "parameter '";
      if (message.rfind(prefix, 0) != 0) continue;
      const std::string name = message.substr(prefix.size(), message.find('\'', prefix.size()) - prefix.size());
      problem["field"] = "params." + name;
      const auto at = declared.find(name);
      problem["file"] = file;
      problem["line"] = at == declared.end() ? 0 : at->second.line;
      problem["column"] = at == declared.end() ? 0 : at->second.column;
      problem["text"] = file + ":" + std::to_string(problem["line"].get<int>()) + ":" +
                        std::to_string(problem["column"].get<int>()) + ": " + message + " (params." + name + ")";
    }
    const size_t n = problems.size();
    throw ApiError(400, std::to_string(n) + (n == 1 ? " problem" : " problems") + " in " + shown_as,
                   std::move(problems));
  }
}

}  // namespace

RunControlApi::RunControlApi(fs::path workspace, fs::path kiln, const PipelinesApi& pipelines, PluginsApi& plugins)
    : workspace_(std::move(workspace)),
      kiln_(kiln.empty() ? host::executable_path() : std::move(kiln)),
      pipelines_(pipelines),
      plugins_(plugins) {}

fs::path RunControlApi::launches_dir() const {
  const fs::path dir = workspace_ / "ui" / "launches";
  fs::create_directories(dir);
  return dir;
}

Json RunControlApi::launch(const Launch& launch) {
  const fs::path log = launches_dir() / (launch.id + ".log");
  std::vector<std::string> argv{kiln_.string()};
  argv.insert(argv.end(), launch.args.begin(), launch.args.end());
  int pid = 0;
  try {
    pid = launch_detached(argv, log);
  } catch (const std::runtime_error& e) {
    throw ApiError(500, e.what());
  }
  return Json{{"id", launch.id}, {"pid", pid}, {"log", fs::relative(log, workspace_).generic_string()},
              {"events", "/api/v1/runs/" + launch.id + "/events"}};
}

Json RunControlApi::start(const std::string& body_text) {
  const StartRequest request = parse_start_request(body_text);
  host::PipelineSpec spec;
  fs::path file;
  std::string shown_as;
  if (!request.pipeline.empty()) {
    file = pipelines_.file_of(request.pipeline);
    shown_as = file.string();
    spec = parse_or_400([&] { return host::parse_pipeline_file(file.string()); }, shown_as);
  } else {
    shown_as = request.file_name;
    // An uploaded pipeline imports nothing: its imports would be files of this server.
    Json doc;
    try {
      doc = host::parse_yaml_value(request.yaml);
    } catch (const std::invalid_argument& e) {
      // The spec parser reports the problem at its line, unless the text
      // could hold an `imports` key (plainly, or through an escape) that the
      // parser might follow before it finds the problem.
      if (request.yaml.find("imports") != std::string::npos || request.yaml.find('\\') != std::string::npos)
        throw ApiError(400, shown_as + ": " + e.what());
    }
    if (doc.is_object() && doc.contains("imports"))
      throw ApiError(400, shown_as + ": an uploaded pipeline cannot import files (imports); inline its templates");
    spec = parse_or_400([&] { return host::parse_pipeline_text(request.yaml, request.file_name); }, shown_as);
  }
  const Json params = typed_params(request.params, spec);
  const std::string pipeline_name = spec.name;
  plan_or_400(std::move(spec), plugins_.catalog(), params, shown_as);

  Launch l;
  l.id = host::new_run_id(pipeline_name);
  const fs::path dir = launches_dir();
  if (file.empty()) {
    file = dir / (l.id + ".yaml");
    host::write_file_atomic(file, request.yaml);
  }
  const fs::path params_file = dir / (l.id + ".params.json");
  host::write_file_atomic(params_file, params.dump() + "\n");
  l.args = {"run", file.string(), "--params-file", params_file.string(), "--run-id", l.id,
            "--workdir", workspace_.string()};
  if (request.no_cache) l.args.push_back("--no-cache");
  Json out = launch(l);
  out["pipeline"] = pipeline_name;
  return out;
}

Json RunControlApi::launch_log(const std::string& id) const {
  if (!host::is_run_id(id)) throw ApiError(400, "'" + host::excerpt_text(id) + "' is not a run id");
  const fs::path dir = workspace_ / "ui" / "launches";
  const fs::path file = dir / (id + ".log");
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) throw ApiError(404, "kiln ui started no run '" + id + "'");
  const ConfinedFile log(file, dir);
  constexpr int64_t kTail = 64 << 10;
  const int64_t offset = std::max<int64_t>(0, log.size() - kTail);
  return Json{{"id", id},
              {"recorded", fs::is_regular_file(host::runs_dir(workspace_) / id / "run.json", ec)},
              {"size", log.size()},
              {"offset", offset},
              {"text", log.read(offset, kTail)}};
}

Json RunControlApi::run_row(const std::string& id) const {
  if (!host::is_run_id(id)) throw ApiError(400, "'" + host::excerpt_text(id) + "' is not a run id");
  const fs::path db_file = workspace_ / "kiln.db";
  std::error_code ec;
  if (!fs::exists(db_file, ec)) throw ApiError(404, "no run '" + id + "': the workspace has no runs yet");
  host::MetadataDb db(db_file);
  const auto row = db.query_one("SELECT * FROM runs WHERE id=?", {id});
  if (!row) throw ApiError(404, "no run '" + id + "' in " + db_file.string());
  return *row;
}

Json RunControlApi::cancel(const std::string& id) {
  const Json row = run_row(id);
  std::string status = row.value("status", "");
  // The run's record says it ended a moment before its database row does: either is enough.
  try {
    if (status == "running") status = host::read_run(host::runs_dir(workspace_) / id).value("status", status);
  } catch (const std::exception&) {  // no record yet: the row decides
  }
  if (status != "running") throw ApiError(409, "run " + id + " is " + status + ": there is nothing to cancel");
  const auto recorded = host::recorded_identity(row);
  if (!recorded) throw ApiError(409, "run " + id + " recorded no host process to signal");
  SignalResult result;
  try {
    result = signal_recorded_process(*recorded, SIGTERM);
  } catch (const std::runtime_error& e) {
    throw ApiError(500, e.what());
  }
  if (result == SignalResult::elsewhere)
    throw ApiError(409, "run " + id + " runs on " + recorded->host + ", not on this machine: cancel it there");
  if (result == SignalResult::gone)
    throw ApiError(409, "run " + id + "'s process (pid " + std::to_string(recorded->pid) +
                            ") is gone: the run was interrupted; resume it (POST /api/v1/runs/" + id + "/resume)");
  return Json{{"id", id}, {"signalled", recorded->pid}, {"signal", "SIGTERM"}};
}

Json RunControlApi::resume(const std::string& id) {
  const Json row = run_row(id);
  const auto status = host::parse_run_status(row.value("status", ""));
  if (status == host::RunStatus::succeeded) throw ApiError(409, "run " + id + " already succeeded: nothing to resume");
  if (row.value("status", "") == "running") {
    const auto state = host::liveness_of(row);
    if (state == host::HostState::alive) throw ApiError(409, "run " + id + " is still running");
    if (state == host::HostState::unknown)
      throw ApiError(409, "run " + id + " was started on another machine; resume it there (or kiln resume --force)");
  }
  Launch l;
  l.id = id;
  l.args = {"resume", id, "--workdir", workspace_.string()};
  // A resumed run's output follows its first launch's in the same log.
  return launch(l);
}

Json RunControlApi::rerun(const std::string& id, const std::string& body_text) {
  const RerunRequest request = parse_rerun_request(body_text);
  const Json row = run_row(id);
  const std::string spec_text = row.value("spec_text", "");
  const std::string spec_file = row.value("spec_file", "");
  // The recorded file when it still holds the recorded text (its imports
  // resolve beside it), else the recorded text in the launches directory.
  std::error_code ec;
  bool same_file = false;
  try {
    same_file = fs::is_regular_file(spec_file, ec) && host::read_file(spec_file) == spec_text;
  } catch (const std::exception&) {
  }
  Launch l;
  host::PipelineSpec spec = parse_or_400([&] { return host::parse_pipeline_text(spec_text, spec_file); }, spec_file);
  l.id = host::new_run_id(spec.name);
  const fs::path dir = launches_dir();
  fs::path file = spec_file;
  if (!same_file) {
    file = dir / (l.id + ".yaml");
    host::write_file_atomic(file, spec_text);
  }
  Json params = Json::parse(row.value("parameters", "{}"), nullptr, false);
  if (!params.is_object()) params = Json::object();
  const Json edited = typed_params(request.params, spec);
  for (const auto& [name, value] : edited.items()) params[name] = value;
  const std::string pipeline_name = spec.name;
  plan_or_400(std::move(spec), plugins_.catalog(), params, spec_file);
  const fs::path params_file = dir / (l.id + ".params.json");
  host::write_file_atomic(params_file, params.dump() + "\n");
  const Json options = Json::parse(row.value("options", "{}"), nullptr, false);
  l.args = {"run", file.string(), "--params-file", params_file.string(), "--run-id", l.id,
            "--workdir", workspace_.string()};
  if (options.is_object()) {
    if (options.value("executor", "") != "") l.args.insert(l.args.end(), {"--executor", options["executor"].get<std::string>()});
    if (options.value("no_cache", false) || request.no_cache) l.args.push_back("--no-cache");
  }
  Json out = launch(l);
  out["pipeline"] = pipeline_name;
  out["rerun_of"] = id;
  out["params"] = params;
  return out;
}

}  // namespace kiln::ui

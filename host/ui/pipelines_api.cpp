#include "pipelines_api.hpp"
#include "path_inside.hpp"

#include "confined_file.hpp"

#include <kiln/host/catalog.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/manifest.hpp>
#include <kiln/host/plan.hpp>
#include <kiln/host/yaml_json.hpp>

#include <algorithm>

namespace kiln::ui {

namespace fs = std::filesystem;
using host::Json;

Json problems_json(const host::SpecError& error) {
  Json out = Json::array();
  for (const auto& d : error.diagnostics())
    out.push_back(Json{{"file", d.pos.file},
                       {"line", d.pos.line},
                       {"column", d.pos.column},
                       {"message", d.message},
                       {"text", d.str()}});
  return out;
}

Json parameters_json(const host::PipelineSpec& spec) {
  Json out = Json::array();
  for (const auto& p : spec.parameters) {
    Json entry = host::param_spec_json(p.spec);
    entry["required"] = p.spec.required();
    out.push_back(std::move(entry));
  }
  return out;
}

namespace {

// Whether `file` is a pipeline (not a template file, not some other YAML).
bool is_pipeline_file(const fs::path& file) {
  try {
    const Json doc = host::parse_yaml_value(host::read_file(file));
    return doc.is_object() && doc.value("kind", Json()) == "Pipeline";
  } catch (const std::exception&) {
    return true;  // unreadable or not YAML: listed with the parser's problems
  }
}

Json entry_of(const fs::path& file, const std::string& relative, host::PipelineSpec* parsed) {
  Json entry{{"file", relative}};
  try {
    host::PipelineSpec spec = host::parse_pipeline_file(file.string());
    entry["name"] = spec.name;
    entry["description"] = spec.description;
    entry["parameters"] = parameters_json(spec);
    entry["steps"] = spec.steps.size() + spec.finally_steps.size();
    if (parsed) *parsed = std::move(spec);
  } catch (const host::SpecError& e) {
    entry["problems"] = problems_json(e);
  }
  return entry;
}

}  // namespace

std::vector<PipelinesApi::Found> PipelinesApi::files() const {
  std::vector<Found> found;
  if (dir_.empty()) return found;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir_, fs::directory_options::skip_permission_denied, ec), end;
  size_t seen = 0;
  for (; !ec && it != end; it.increment(ec)) {
    if (++seen > kMaxPipelineFiles * 4) break;
    if (it.depth() >= kMaxPipelineDepth) it.disable_recursion_pending();
    const fs::path& path = it->path();
    const std::string ext = path.extension().string();
    if (ext != ".yaml" && ext != ".yml") continue;
    if (!it->is_regular_file(ec) || !path_inside(path, dir_)) continue;  // a link out of the directory is not offered
    if (fs::file_size(path, ec) > host::kMaxSpecFileBytes) continue;
    if (!is_pipeline_file(path)) continue;
    found.push_back(Found{path, fs::relative(path, dir_, ec).generic_string()});
    if (found.size() >= kMaxPipelineFiles) break;
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.relative < b.relative; });
  return found;
}

Json PipelinesApi::list() const {
  Json pipelines = Json::array();
  for (const auto& f : files()) pipelines.push_back(entry_of(f.file, f.relative, nullptr));
  return Json{{"directory", dir_.string()}, {"pipelines", std::move(pipelines)}};
}

fs::path PipelinesApi::file_of(const std::string& name) const {
  if (dir_.empty()) throw ApiError(404, "no pipelines are offered: start kiln ui with --pipelines DIR");
  for (const auto& f : files()) {
    try {
      if (host::parse_pipeline_file(f.file.string()).name == name) return f.file;
    } catch (const host::SpecError&) {
    }
  }
  throw ApiError(404, "no pipeline '" + name.substr(0, 64) + "' in " + dir_.string() + " (GET /api/v1/pipelines lists them)");
}

Json PipelinesApi::detail(const std::string& name, const host::PluginCatalog& catalog) const {
  const fs::path file = file_of(name);
  std::error_code ec;
  host::PipelineSpec spec;
  Json entry = entry_of(file, fs::relative(file, dir_, ec).generic_string(), &spec);
  entry["text"] = host::read_file(file);
  if (entry.contains("problems")) {
    entry["valid"] = false;
    return entry;
  }
  Json steps = Json::array();
  for (const auto* list : {&spec.steps, &spec.finally_steps})
    for (const auto& s : *list)
      steps.push_back(Json{{"name", s.name}, {"component", s.component}, {"finally", s.is_finally},
                           {"loop", s.for_each.has_value()}, {"tuning", s.tune.has_value()}});
  entry["step_list"] = std::move(steps);
  try {
    host::plan_pipeline(std::move(spec), catalog, Json::object());
    entry["valid"] = true;
  } catch (const host::SpecError& e) {
    entry["valid"] = false;
    entry["problems"] = problems_json(e);
  }
  return entry;
}

}  // namespace kiln::ui

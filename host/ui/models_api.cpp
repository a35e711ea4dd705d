#include "models_api.hpp"

#include "confined_file.hpp"

#include <kiln/host/artifact_store.hpp>

#include <algorithm>
#include <map>

namespace kiln::ui {

namespace fs = std::filesystem;
using host::Json;

namespace {

bool is_version_name(const std::string& name) {
  return !name.empty() && name.size() < 18 && name.find_first_not_of("0123456789") == std::string::npos &&
         name != "0" && name.front() != '0';
}

// A small JSON file of the repository; null when absent, {"error"} when unreadable.
Json json_file(const fs::path& file, const fs::path& repository) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) return nullptr;
  try {
    const ConfinedFile opened(file, repository);
    if (opened.size() > kMaxModelJsonBytes) return Json{{"error", file.filename().string() + " is larger than 1 MiB"}};
    const Json value = Json::parse(opened.read(0, opened.size()), nullptr, false);
    return value.is_discarded() ? Json{{"error", file.filename().string() + " is not JSON"}} : value;
  } catch (const ApiError& e) {
    return Json{{"error", e.what()}};
  }
}

std::string canonical_text(const fs::path& path) {
  std::error_code ec;
  return fs::weakly_canonical(path, ec).string();
}

}  // namespace

Json ModelsApi::list(const QueryParams& query) {
  query.allow_only({});
  if (repository_.empty()) return Json{{"repository", nullptr}, {"models", Json::array()}};
  // Which run published which version: serve.publish's "path" output, and its "model" input.
  std::map<std::string, Json> sources;
  for (const auto& row : db_.query("SELECT s.run_id, s.unit, s.outputs, (SELECT digest FROM lineage l WHERE l.run_id ="
                                   " s.run_id AND l.unit = s.unit AND l.role = 'input' AND l.name = 'model') AS model"
                                   " FROM steps s WHERE s.component LIKE 'serve.publish%' AND s.status = 'succeeded'"
                                   " LIMIT 100000")) {
    const Json outputs = json_column(row["outputs"]);
    if (!outputs.contains("path") || !outputs["path"].is_string() || outputs["path"].get<std::string>().empty())
      continue;
    sources[canonical_text(outputs["path"].get<std::string>())] =
        Json{{"run", row["run_id"]}, {"step", row["unit"]}, {"artifact", row["model"]}};
  }
  std::vector<fs::path> model_dirs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(repository_, ec))
    if (entry.is_directory(ec) && !entry.is_symlink(ec) && entry.path().filename().string().front() != '.')
      model_dirs.push_back(entry.path());
  std::sort(model_dirs.begin(), model_dirs.end());
  Json models = Json::array();
  const bool truncated = model_dirs.size() > kMaxModels;
  model_dirs.resize(std::min(model_dirs.size(), kMaxModels));
  for (const auto& dir : model_dirs) {
    std::vector<std::pair<int64_t, fs::path>> versions;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory(ec) && !entry.is_symlink(ec) && is_version_name(name))
        versions.emplace_back(std::stoll(name), entry.path());
    }
    std::sort(versions.rbegin(), versions.rend());  // newest first
    Json list = Json::array();
    for (size_t i = 0; i < versions.size() && i < kMaxModelVersions; ++i) {
      const auto& [number, path] = versions[i];
      Json version{{"version", number}, {"size", host::directory_size(path)}};
      if (const Json model = json_file(path / "model.json", repository_); !model.is_null()) version["model"] = model;
      const auto source = sources.find(canonical_text(path));
      version["source"] = source == sources.end() ? Json() : source->second;
      list.push_back(std::move(version));
    }
    models.push_back(Json{{"name", dir.filename().string()},
                          {"config", json_file(dir / "config.json", repository_)},
                          {"versions", std::move(list)},
                          {"version_count", versions.size()}});
  }
  return Json{{"repository", repository_.string()}, {"models", std::move(models)}, {"truncated", truncated}};
}

}  // namespace kiln::ui

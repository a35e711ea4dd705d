#include <kiln/host/cache_key.hpp>
#include <kiln/host/files.hpp>

#include <vector>

namespace kiln::host {

std::string canonical_json(const Json& value) {
  // nlohmann::json (not ordered_json) keeps object keys sorted.
  return nlohmann::json::parse(value.dump()).dump();
}

Json cache_key_parts(const CacheKeyInput& input) {
  Json parameters = Json::object();
  const auto sorted = nlohmann::json::parse(canonical_json(input.parameters));
  for (const auto& [name, value] : sorted.items()) parameters[name] = sha256_hex(value.dump());
  Json inputs = Json::object();
  for (const auto& [name, digest] : input.inputs) inputs[name] = digest;
  Json parts{{"component", input.component},     {"version", input.version}, {"library", input.library_digest},
             {"environment", input.environment}, {"parameters", parameters}, {"inputs", inputs}};
  if (!input.files.empty()) {
    parts["files"] = Json(input.files);
    parts["component_file"] = input.component_file;
  }
  return parts;
}

std::string cache_key(const Json& parts) {
  Json keyed = parts;
  keyed.erase("files");
  keyed.erase("component_file");
  return sha256_hex("kiln-cache-key-v1\n" + canonical_json(keyed));
}

namespace {

// Names whose values differ between two {name: digest} objects, sorted.
std::vector<std::string> changed_names(const Json& now, const Json& before) {
  std::vector<std::string> names;
  const auto sorted = nlohmann::json::parse(canonical_json(now));
  for (const auto& [name, value] : sorted.items())
    if (!before.contains(name) || before[name].dump() != value.dump()) names.push_back(name);
  for (const auto& [name, value] : before.items())
    if (!now.contains(name)) names.push_back(name);
  return names;
}

std::string join(const std::vector<std::string>& names, const std::string& quote) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + quote + n + quote;
  return out;
}

// Why a component file's digest changed, file by file: "component file
// 'count.yaml' changed; file 'count.py' changed". Empty when either entry
// has no file digests (a plugin, or an entry written before they were kept).
std::vector<std::string> changed_files(const Json& now, const Json& before) {
  const Json none = Json::object();
  const Json& files_now = now.contains("files") ? now["files"] : none;
  const Json& files_before = before.contains("files") ? before["files"] : none;
  if (files_now.empty() || files_before.empty()) return {};
  const std::string own = now.value("component_file", "");
  std::vector<std::string> reasons, others;
  for (const auto& name : changed_names(files_now, files_before)) {
    if (name == own)
      reasons.push_back("component file '" + name + "' changed");
    else
      others.push_back(name);
  }
  if (others.size() == 1) reasons.push_back("file '" + others.front() + "' changed");
  if (others.size() > 1) reasons.push_back("files " + join(others, "'") + " changed");
  return reasons;
}

}  // namespace

std::string explain_cache_miss(const Json& now, const Json& before) {
  std::vector<std::string> reasons;
  if (now.value("version", "") != before.value("version", ""))
    reasons.push_back("component version changed (" + before.value("version", "?") + " -> " +
                      now.value("version", "?") + ")");
  if (now.value("library", "") != before.value("library", "")) {
    const auto files = changed_files(now, before);
    if (files.empty()) reasons.push_back(now.contains("files") ? "component file changed" : "plugin library changed");
    reasons.insert(reasons.end(), files.begin(), files.end());
  }
  if (now.value("environment", "") != before.value("environment", "")) reasons.push_back("environment changed");
  const auto params =
      changed_names(now.value("parameters", Json::object()), before.value("parameters", Json::object()));
  if (!params.empty()) reasons.push_back("parameters changed (" + join(params, "") + ")");
  const auto inputs = changed_names(now.value("inputs", Json::object()), before.value("inputs", Json::object()));
  if (inputs.size() == 1) reasons.push_back("input '" + inputs.front() + "' changed");
  if (inputs.size() > 1) reasons.push_back("inputs " + join(inputs, "'") + " changed");
  std::string out;
  for (const auto& r : reasons) out += (out.empty() ? "" : "; ") + r;
  return out;
}

}  // namespace kiln::host

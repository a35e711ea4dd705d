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
  return Json{{"component", input.component},     {"version", input.version}, {"library", input.library_digest},
              {"environment", input.environment}, {"parameters", parameters}, {"inputs", inputs}};
}

std::string cache_key(const Json& parts) {
  return sha256_hex("kiln-cache-key-v1\n" + canonical_json(parts));
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

}  // namespace

std::string explain_cache_miss(const Json& now, const Json& before) {
  std::vector<std::string> reasons;
  if (now.value("version", "") != before.value("version", ""))
    reasons.push_back("component version changed (" + before.value("version", "?") + " -> " +
                      now.value("version", "?") + ")");
  if (now.value("library", "") != before.value("library", "")) reasons.push_back("plugin library changed");
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

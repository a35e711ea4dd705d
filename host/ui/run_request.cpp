#include "run_request.hpp"

#include <kiln/host/json_bounded.hpp>

#include <algorithm>
#include <vector>

namespace kiln::ui {

using host::Json;

namespace {

// The body as a JSON object with only `known` keys; 400 otherwise.
Json body_object(const std::string& body, const std::vector<std::string>& known) {
  if (body.empty()) return Json::object();
  Json json = Json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) throw ApiError(400, "the body must be a JSON object");
  if (host::nested_deeper_than(json, host::kMaxOutputValueDepth))
    throw ApiError(400, "the body nests deeper than " + std::to_string(host::kMaxOutputValueDepth) + " levels");
  for (const auto& [key, value] : json.items())
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string all;
      for (const auto& k : known) all += (all.empty() ? "" : ", ") + k;
      throw ApiError(400, "unknown field '" + host::excerpt_text(key) + "' in the body (known: " + all + ")");
    }
  return json;
}

std::string text_field(const Json& body, const char* name, size_t max) {
  if (!body.contains(name)) return "";
  if (!body[name].is_string()) throw ApiError(400, std::string("field '") + name + "' must be a string");
  std::string value = body[name].get<std::string>();
  if (value.size() > max)
    throw ApiError(413, std::string("field '") + name + "' has " + std::to_string(value.size()) +
                            " bytes; at most " + std::to_string(max) + " are accepted");
  return value;
}

Json params_field(const Json& body) {
  if (!body.contains("params") || body["params"].is_null()) return Json::object();
  if (!body["params"].is_object()) throw ApiError(400, "field 'params' must be an object of name: value");
  return body["params"];
}

bool flag_field(const Json& body, const char* name) {
  if (!body.contains(name)) return false;
  if (!body[name].is_boolean()) throw ApiError(400, std::string("field '") + name + "' must be true or false");
  return body[name].get<bool>();
}

}  // namespace

StartRequest parse_start_request(const std::string& body_text) {
  const Json body = body_object(body_text, {"pipeline", "yaml", "file_name", "params", "no_cache"});
  StartRequest request;
  request.pipeline = text_field(body, "pipeline", 256);
  request.yaml = text_field(body, "yaml", kMaxUploadBytes);
  if (request.pipeline.empty() == request.yaml.empty())
    throw ApiError(400, "give either 'pipeline' (a name from GET /api/v1/pipelines) or 'yaml' (a pipeline's text)");
  request.file_name = text_field(body, "file_name", 128);
  if (request.file_name.empty()) request.file_name = "uploaded.yaml";
  if (request.file_name.find('/') != std::string::npos || request.file_name == "." || request.file_name == "..")
    throw ApiError(400, "field 'file_name' must be a name, not a path");
  request.params = params_field(body);
  request.no_cache = flag_field(body, "no_cache");
  return request;
}

RerunRequest parse_rerun_request(const std::string& body_text) {
  const Json body = body_object(body_text, {"params", "no_cache"});
  RerunRequest request;
  request.params = params_field(body);
  request.no_cache = flag_field(body, "no_cache");
  return request;
}

}  // namespace kiln::ui

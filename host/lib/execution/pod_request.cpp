// The pod step's inputs, read and checked before anything runs: the request
// `kiln compile` wrote and the engine's NAME=VALUE arguments (pod_step.hpp).
// Untrusted text: bounded sizes and depths, every problem a PodRequestError.
#include <kiln/host/json_bounded.hpp>
#include <kiln/host/pod_step.hpp>

#include <algorithm>
#include <cctype>
#include <set>

namespace kiln::host {
namespace {

[[noreturn]] void fail_request(const std::string& message) {
  throw PodRequestError(message);
}

Json parse_json_text(std::string_view text, size_t limit, const std::string& what) {
  if (text.size() > limit)
    fail_request(what + ": " + std::to_string(text.size()) + " bytes, more than the limit of " + std::to_string(limit));
  if (json_text_nested_deeper_than(text, kMaxOutputValueDepth))
    fail_request(what + ": nested deeper than " + std::to_string(kMaxOutputValueDepth) + " levels");
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    fail_request(what + ": not JSON (" + excerpt_text(e.what(), 120) + ")");
  }
}

std::optional<Json> try_json(std::string_view text) {
  if (json_text_nested_deeper_than(text, kMaxOutputValueDepth)) return std::nullopt;
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

std::string string_field(const Json& object, const char* key, bool required) {
  const auto it = object.find(key);
  if (it == object.end()) {
    if (required) fail_request(std::string("request: '") + key + "' is missing");
    return "";
  }
  if (!it->is_string()) fail_request(std::string("request: '") + key + "' must be a string");
  if (required && it->get_ref<const std::string&>().empty())
    fail_request(std::string("request: '") + key + "' must not be empty");
  return it->get<std::string>();
}

std::vector<std::string> names_field(const Json& object, const char* key) {
  std::vector<std::string> names;
  const auto it = object.find(key);
  if (it == object.end()) return names;
  if (!it->is_array()) fail_request(std::string("request: '") + key + "' must be a list of names");
  for (const auto& n : *it) {
    if (!n.is_string() || n.get<std::string>().empty())
      fail_request(std::string("request: '") + key + "' must be a list of names");
    names.push_back(n.get<std::string>());
  }
  return names;
}

std::optional<double> seconds_field(const Json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 1e9)
    fail_request(where + "'" + key + "' must be a number of seconds");
  return it->get<double>();
}

RetryPolicy retries_field(const Json& r) {
  if (!r.is_object()) fail_request("request: 'retries' must be an object");
  RetryPolicy policy;
  const auto limit = r.find("limit");
  if (limit == r.end() || !limit->is_number_integer() || limit->get<int64_t>() < 0 || limit->get<int64_t>() > 1000)
    fail_request("request: 'retries.limit' must be a whole number from 0 to 1000");
  policy.limit = limit->get<int>();
  policy.backoff_seconds = seconds_field(r, "backoff_seconds", "request: retries.").value_or(1.0);
  policy.max_backoff_seconds = seconds_field(r, "max_backoff_seconds", "request: retries.").value_or(60.0);
  policy.factor = seconds_field(r, "factor", "request: retries.").value_or(2.0);
  if (r.contains("on")) {
    policy.on.clear();
    for (const auto& c : names_field(r, "on")) {
      const auto& known = failure_classes();
      if (std::find(known.begin(), known.end(), c) == known.end())
        fail_request("request: 'retries.on' names an unknown failure class '" + excerpt_text(c) + "'");
      policy.on.insert(c);
    }
  }
  return policy;
}

// "NAME=VALUE" of `flag`.
std::pair<std::string, std::string> split(const std::string& text, const char* flag) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) fail_request(std::string(flag) + " " + excerpt_text(text) + ": write it as NAME=VALUE");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

// Each NAME=VALUE of `flag` once, NAME among `allowed`.
std::map<std::string, std::string> assignments(const std::vector<std::string>& texts, const char* flag,
                                               const std::set<std::string>& allowed) {
  std::map<std::string, std::string> out;
  for (const auto& text : texts) {
    auto [name, value] = split(text, flag);
    if (!allowed.count(name)) fail_request(std::string(flag) + " " + excerpt_text(name) + ": the request has no such name");
    if (value.size() > kMaxPodValueBytes)
      fail_request(std::string(flag) + " " + name + ": more than " + std::to_string(kMaxPodValueBytes) + " bytes");
    if (!out.emplace(name, std::move(value)).second) fail_request(std::string(flag) + " " + name + ": given twice");
  }
  return out;
}

void require_all(const std::map<std::string, std::string>& given, const std::set<std::string>& names,
                 const char* flag) {
  for (const auto& n : names)
    if (!given.count(n)) fail_request(std::string(flag) + " " + n + "=…: missing (the request needs it)");
}

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

}  // namespace

static PodRequest parse_request(std::string_view text) {
  const Json r = parse_json_text(text, kMaxPodRequestBytes, "--request-json");
  if (!r.is_object()) fail_request("request: must be a JSON object");
  const auto version = r.find("kiln_pod");
  if (version == r.end() || !version->is_number_integer() || version->get<int64_t>() != 1) fail_request("request: 'kiln_pod' must be 1 (compiled by another kiln?)");
  PodRequest request;
  request.pipeline = string_field(r, "pipeline", true);
  request.step = string_field(r, "step", true);
  // One kind of work per pod: a request naming two would silently run one.
  if (r.contains("condition") + r.contains("tuning") + r.contains("component") > 1)
    fail_request("request: holds more than one of 'condition', 'tuning' and 'component' (a pod runs one)");
  if (r.contains("condition")) {
    request.condition = string_field(r, "condition", true);
  } else if (const auto t = r.find("tuning"); t != r.end()) {
    if (!t->is_object()) fail_request("request: 'tuning' must be an object");
    request.tuning = *t;
  } else {
    request.component = string_field(r, "component", true);
    request.version = string_field(r, "version", false);
  }
  if (const auto p = r.find("parameters"); p != r.end()) {
    if (!p->is_object()) fail_request("request: 'parameters' must be an object");
    request.parameters = *p;
  }
  request.outputs = names_field(r, "outputs");
  request.output_parameters = names_field(r, "output_parameters");
  if (const auto v = r.find("values"); v != r.end()) {
    if (!v->is_object()) fail_request("request: 'values' must be an object");
    for (const auto& [ref, kind] : v->items()) {
      const auto k = kind.is_string() ? parse_pod_value_kind(kind.get<std::string>()) : std::nullopt;
      if (!k) fail_request("request: values." + excerpt_text(ref) + " has an unknown kind");
      request.value_kinds[ref] = *k;
    }
  }
  if (const auto c = r.find("constants"); c != r.end()) {
    if (!c->is_object()) fail_request("request: 'constants' must be an object");
    for (const auto& [name, value] : c->items()) {
      if (!value.is_string()) fail_request("request: constants." + excerpt_text(name) + " must be a string");
      request.constants[name] = value.get<std::string>();
    }
  }
  request.timeout_seconds = seconds_field(r, "timeout_seconds", "request: ");
  if (const auto rt = r.find("retries"); rt != r.end()) request.retries = retries_field(*rt);
  return request;
}

namespace {
Json decode_value(PodValueKind kind, std::string_view text) {
  if (text.size() > kMaxPodValueBytes) fail_request("a value of " + std::to_string(text.size()) + " bytes");
  switch (kind) {
    case PodValueKind::String:
      return std::string(text);
    case PodValueKind::Json:
      return try_json(text).value_or(Json(std::string(text)));
    case PodValueKind::JsonList: {
      Json list = parse_json_text(text, kMaxPodValueBytes, "a collected output");
      if (!list.is_array()) fail_request("a collected output must be a JSON list");
      for (auto& element : list)
        if (element.is_string())
          if (auto parsed = try_json(element.get<std::string>())) element = std::move(*parsed);
      return list;
    }
    case PodValueKind::RunStatus: {
      const std::string status = lower(std::string(text));
      return status == "error" ? "failed" : status;
    }
    case PodValueKind::KfpStatus: {
      const Json status = parse_json_text(text, kMaxPodValueBytes, "a final status");
      if (!status.is_object() || !status.contains("state") || !status["state"].is_string())
        fail_request("a final status must be an object with a 'state'");
      const std::string state = lower(status["state"].get<std::string>());
      return state == "canceled" ? "cancelled" : state;
    }
    case PodValueKind::ArgoFailures: {
      Json names = Json::array();
      if (text.empty() || text == "null") return names;
      const Json failures = parse_json_text(text, kMaxPodValueBytes, "the workflow's failures");
      if (!failures.is_array()) fail_request("the workflow's failures must be a JSON list");
      for (const auto& f : failures)
        if (f.is_object() && f.contains("displayName") && f["displayName"].is_string())
          names.push_back(f["displayName"]);
      return names;
    }
  }
  return Json();
}

PodStep parse_step(const PodStepArguments& arguments) {
  const size_t count = arguments.values.size() + arguments.inputs.size() + arguments.input_metadata.size() +
                       arguments.outputs.size() + arguments.output_metadata.size() +
                       arguments.output_parameters.size();
  if (count > kMaxPodArguments) fail_request(std::to_string(count) + " arguments, more than " + std::to_string(kMaxPodArguments));
  PodStep step;
  step.request = parse_pod_request(arguments.request_json);
  const PodRequest& r = step.request;

  std::set<std::string> value_names;
  for (const auto& [ref, kind] : r.value_kinds) value_names.insert(ref);
  const auto values = assignments(arguments.values, "--value", value_names);
  require_all(values, value_names, "--value");
  for (const auto& [ref, text] : values) {
    try {
      step.values[ref] = decode_pod_value(r.value_kinds.at(ref), text);
    } catch (const PodRequestError& e) {
      fail_request("--value " + ref + ": " + e.what());
    }
  }

  // Inputs: whatever names the engine gives, each with its metadata.
  std::set<std::string> input_names;
  for (const auto& text : arguments.inputs) input_names.insert(split(text, "--input").first);
  step.input_paths = assignments(arguments.inputs, "--input", input_names);
  const auto metadata = assignments(arguments.input_metadata, "--input-metadata", input_names);
  for (const auto& [name, path] : step.input_paths) {
    (void)path;
    const auto m = metadata.find(name);
    Json value = m == metadata.end() || m->second.empty() ? Json::object()
                                                            : parse_json_text(m->second, kMaxPodValueBytes,
                                                                              "--input-metadata " + name);
    if (!value.is_object()) fail_request("--input-metadata " + name + ": must be a JSON object");
    step.input_metadata[name] = std::move(value);
  }

  const std::set<std::string> outputs(r.outputs.begin(), r.outputs.end());
  step.output_paths = assignments(arguments.outputs, "--output", outputs);
  step.metadata_paths = assignments(arguments.output_metadata, "--output-metadata", outputs);
  require_all(step.output_paths, outputs, "--output");
  require_all(step.metadata_paths, outputs, "--output-metadata");
  std::set<std::string> parameters(r.output_parameters.begin(), r.output_parameters.end());
  if (r.condition) parameters.insert("result");
  step.parameter_paths = assignments(arguments.output_parameters, "--output-parameter", parameters);
  if (r.condition) require_all(step.parameter_paths, {"result"}, "--output-parameter");
  return step;
}

}  // namespace

PodRequest parse_pod_request(std::string_view text) {
  try {
    return parse_request(text);
  } catch (const Json::exception& e) {
    fail_request(std::string("request: ") + excerpt_text(e.what(), 120));
  }
}

// A JSON value of the wrong type deep in a request (a string where a number
// belongs, say) is nlohmann's type_error: it is bad input like any other,
// reported as a PodRequestError rather than escaping (found by fuzz_pod_request).
Json decode_pod_value(PodValueKind kind, std::string_view text) {
  try {
    return decode_value(kind, text);
  } catch (const Json::exception& e) {
    fail_request(std::string("a value: ") + excerpt_text(e.what(), 120));
  }
}

PodStep parse_pod_step(const PodStepArguments& arguments) {
  try {
    return parse_step(arguments);
  } catch (const Json::exception& e) {
    fail_request(std::string("request: ") + excerpt_text(e.what(), 120));
  }
}

}  // namespace kiln::host

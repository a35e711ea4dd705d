#include <kiln/host/manifest.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace kiln::host {
namespace {

std::string number_text(double v) {
  return bound_json(v).dump();
}

// A value quoted in a message. A spec's YAML or a --param may hold invalid
// UTF-8, which a plain dump() throws on: it is replaced here.
std::string message_json(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Reads an optional string field; throws naming `where` when it is not one.
std::string string_field(const Json& object, const char* key, const std::string& where, bool required) {
  const auto it = object.find(key);
  if (it == object.end()) {
    if (required) throw ManifestError(where + ": missing field '" + key + "'");
    return {};
  }
  if (!it->is_string()) throw ManifestError(where + "." + key + ": must be a string");
  return it->get<std::string>();
}

void reject_unknown_fields(const Json& object, const std::vector<std::string>& known, const std::string& where) {
  for (const auto& item : object.items())
    if (std::find(known.begin(), known.end(), item.key()) == known.end())
      throw ManifestError(where + ": unknown field '" + item.key() + "'");
}

ParamSpec parse_param(const Json& j, const std::string& where) {
  if (!j.is_object()) throw ManifestError(where + ": must be an object");
  reject_unknown_fields(j, {"name", "type", "description", "default", "min", "max", "choices"}, where);
  ParamSpec p;
  p.name = string_field(j, "name", where, true);
  if (!is_identifier(p.name)) throw ManifestError(where + ".name: '" + p.name + "' is not an identifier");
  const auto type = parse_value_type(string_field(j, "type", where, true));
  if (!type) throw ManifestError(where + ".type: must be one of string, int, float, bool, list, object");
  p.type = *type;
  p.description = string_field(j, "description", where, false);
  for (const char* bound : {"min", "max"}) {
    if (!j.contains(bound)) continue;
    if (!j[bound].is_number()) throw ManifestError(where + "." + bound + ": must be a number");
    if (p.type != ValueType::Int && p.type != ValueType::Float)
      throw ManifestError(where + "." + bound + ": only int and float parameters have bounds");
    (std::string(bound) == "min" ? p.min : p.max) = j[bound].get<double>();
  }
  if (p.min && p.max && *p.min > *p.max) throw ManifestError(where + ": min is above max");
  if (j.contains("choices")) {
    if (!j["choices"].is_array() || p.type != ValueType::String)
      throw ManifestError(where + ".choices: must be a list of strings on a string parameter");
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) throw ManifestError(where + ".choices: must be a list of strings");
      p.choices.push_back(c.get<std::string>());
    }
  }
  if (j.contains("default")) {
    if (const auto problem = check_parameter_value(p, j["default"]))
      throw ManifestError(where + ".default: " + *problem);
    p.default_value = j["default"];
  }
  return p;
}

PortSpec parse_port(const Json& j, const std::string& where, bool value_typed) {
  if (!j.is_object()) throw ManifestError(where + ": must be an object");
  reject_unknown_fields(j, {"name", "type", "description", "optional"}, where);
  PortSpec p;
  p.name = string_field(j, "name", where, true);
  if (!is_identifier(p.name)) throw ManifestError(where + ".name: '" + p.name + "' is not an identifier");
  p.type = string_field(j, "type", where, true);
  if (value_typed && !parse_value_type(p.type))
    throw ManifestError(where + ".type: must be one of string, int, float, bool, list, object");
  if (!value_typed && !is_identifier(p.type))
    throw ManifestError(where + ".type: '" + p.type + "' is not an artifact type name");
  p.description = string_field(j, "description", where, false);
  if (j.contains("optional")) {
    if (!j["optional"].is_boolean()) throw ManifestError(where + ".optional: must be true or false");
    p.optional = j["optional"].get<bool>();
  }
  return p;
}

template <class T, class Parse>
std::vector<T> parse_list(const Json& j, const char* key, const std::string& where, Parse parse) {
  std::vector<T> items;
  if (!j.contains(key)) return items;
  if (!j[key].is_array()) throw ManifestError(where + "." + key + ": must be a list");
  for (size_t i = 0; i < j[key].size(); ++i) {
    T item = parse(j[key][i], where + "." + key + "[" + std::to_string(i) + "]");
    for (const auto& seen : items)
      if (seen.name == item.name) throw ManifestError(where + "." + key + ": duplicate name '" + item.name + "'");
    items.push_back(std::move(item));
  }
  return items;
}

template <class T>
const T* find_named(const std::vector<T>& items, const std::string& name) {
  for (const auto& item : items)
    if (item.name == name) return &item;
  return nullptr;
}

Json port_json(const PortSpec& p, bool with_optional) {
  Json j{{"name", p.name}, {"type", p.type}, {"description", p.description}};
  if (with_optional) j["optional"] = p.optional;
  return j;
}

}  // namespace

bool is_identifier(const std::string& text) {
  if (text.empty() || std::isdigit(static_cast<unsigned char>(text[0]))) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool is_component_name(const std::string& text) {
  // Dot-separated words, each starting with a lower-case letter: data.csv
  bool word_start = true;
  for (const char c : text) {
    if (word_start && !(c >= 'a' && c <= 'z')) return false;
    word_start = c == '.';
    if (!word_start && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return !text.empty() && !word_start;
}

Json bound_json(double value) {
  // Range first: converting a double past int64's range (or NaN) is undefined.
  const bool integral = std::abs(value) < 9e15 && value == std::trunc(value);
  return integral ? Json(static_cast<int64_t>(value)) : Json(value);
}

const char* value_type_name(ValueType type) {
  switch (type) {
    case ValueType::String:
      return "string";
    case ValueType::Int:
      return "int";
    case ValueType::Float:
      return "float";
    case ValueType::Bool:
      return "bool";
    case ValueType::List:
      return "list";
    case ValueType::Object:
      return "object";
  }
  return "string";
}

std::optional<ValueType> parse_value_type(const std::string& name) {
  for (const auto t :
       {ValueType::String, ValueType::Int, ValueType::Float, ValueType::Bool, ValueType::List, ValueType::Object})
    if (name == value_type_name(t)) return t;
  return std::nullopt;
}

bool has_value_type(const Json& value, ValueType type) {
  switch (type) {
    case ValueType::String:
      return value.is_string();
    case ValueType::Int:
      return value.is_number_integer();
    case ValueType::Float:
      return value.is_number();
    case ValueType::Bool:
      return value.is_boolean();
    case ValueType::List:
      return value.is_array();
    case ValueType::Object:
      return value.is_object();
  }
  return false;
}

std::optional<std::string> check_parameter_value(const ParamSpec& spec, const Json& value) {
  if (!has_value_type(value, spec.type))
    return "expected " + std::string(value_type_name(spec.type)) + ", got " + message_json(value);
  if (value.is_number()) {
    const double v = value.get<double>();
    if (spec.min && v < *spec.min) return message_json(value) + " is below the minimum " + number_text(*spec.min);
    if (spec.max && v > *spec.max) return message_json(value) + " is above the maximum " + number_text(*spec.max);
  }
  if (!spec.choices.empty() && value.is_string() &&
      std::find(spec.choices.begin(), spec.choices.end(), value.get<std::string>()) == spec.choices.end()) {
    std::string allowed;
    for (const auto& c : spec.choices) allowed += (allowed.empty() ? "" : ", ") + c;
    return message_json(value) + " is not one of: " + allowed;
  }
  return std::nullopt;
}

ComponentManifest parse_manifest(const std::string& json_text) {
  Json j;
  try {
    j = Json::parse(json_text);
  } catch (const Json::parse_error& e) {
    throw ManifestError(std::string("manifest is not valid JSON: ") + e.what());
  }
  return parse_manifest(j);
}

ComponentManifest parse_manifest(const Json& j) {
  if (!j.is_object()) throw ManifestError("manifest: must be a JSON object");
  ComponentManifest m;
  m.name = string_field(j, "name", "manifest", true);
  const std::string where = "manifest of '" + m.name + "'";
  reject_unknown_fields(
      j, {"name", "version", "kind", "description", "parameters", "inputs", "outputs", "output_parameters"}, where);
  if (!is_component_name(m.name))
    throw ManifestError(where + ".name: must be lower-case dotted words such as 'data.csv'");
  const std::string version = string_field(j, "version", where, true);
  const auto parsed = Version::parse(version);
  if (!parsed) throw ManifestError(where + ".version: '" + version + "' is not a semantic version (MAJOR.MINOR.PATCH)");
  m.version = *parsed;
  m.kind = string_field(j, "kind", where, true);
  const auto& kinds = component_kinds();
  if (std::find(kinds.begin(), kinds.end(), m.kind) == kinds.end())
    throw ManifestError(where + ".kind: '" + m.kind + "' is not one of data, tune, train, evaluate, serve, generic");
  m.description = string_field(j, "description", where, false);
  m.parameters = parse_list<ParamSpec>(j, "parameters", where, parse_param);
  const auto artifact = [](const Json& p, const std::string& w) { return parse_port(p, w, false); };
  const auto value = [](const Json& p, const std::string& w) { return parse_port(p, w, true); };
  m.inputs = parse_list<PortSpec>(j, "inputs", where, artifact);
  m.outputs = parse_list<PortSpec>(j, "outputs", where, artifact);
  m.output_parameters = parse_list<PortSpec>(j, "output_parameters", where, value);
  return m;
}

const ParamSpec* ComponentManifest::find_parameter(const std::string& n) const {
  return find_named(parameters, n);
}
const PortSpec* ComponentManifest::find_input(const std::string& n) const {
  return find_named(inputs, n);
}
const PortSpec* ComponentManifest::find_output(const std::string& n) const {
  return find_named(outputs, n);
}
const PortSpec* ComponentManifest::find_output_parameter(const std::string& n) const {
  return find_named(output_parameters, n);
}

Json param_spec_json(const ParamSpec& p) {
  Json pj{{"name", p.name}, {"type", value_type_name(p.type)}, {"description", p.description}};
  if (p.default_value) pj["default"] = *p.default_value;
  if (p.min) pj["min"] = bound_json(*p.min);
  if (p.max) pj["max"] = bound_json(*p.max);
  if (!p.choices.empty()) pj["choices"] = p.choices;
  return pj;
}

Json ComponentManifest::to_json() const {
  Json params = Json::array();
  for (const auto& p : parameters) params.push_back(param_spec_json(p));
  const auto ports = [](const std::vector<PortSpec>& list, bool with_optional) {
    Json out = Json::array();
    for (const auto& p : list) out.push_back(port_json(p, with_optional));
    return out;
  };
  return Json{{"name", name},
              {"version", version.str()},
              {"kind", kind},
              {"description", description},
              {"parameters", params},
              {"inputs", ports(inputs, true)},
              {"outputs", ports(outputs, false)},
              {"output_parameters", ports(output_parameters, false)}};
}

}  // namespace kiln::host

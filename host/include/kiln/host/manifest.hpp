// Component manifests: the typed description of a component that a plugin
// publishes as JSON, parsed and checked by the host.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/semver.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::host {

enum class ValueType { String, Int, Float, Bool, List, Object };
const char* value_type_name(ValueType type);
std::optional<ValueType> parse_value_type(const std::string& name);

struct ParamSpec {
  std::string name;
  ValueType type = ValueType::String;
  std::string description;
  std::optional<Json> default_value;  // no default: the parameter is required
  std::optional<double> min, max;
  std::vector<std::string> choices;
  bool required() const { return !default_value.has_value(); }
};

struct PortSpec {
  std::string name;
  std::string type;  // artifact type (Dataset, Model, ...) or value type name
  std::string description;
  bool optional = false;
};

inline const std::vector<std::string>& component_kinds() {
  static const std::vector<std::string> kinds{"data", "tune", "train", "evaluate", "serve", "generic"};
  return kinds;
}

struct ComponentManifest {
  std::string name;
  Version version;
  std::string kind;
  std::string description;
  std::vector<ParamSpec> parameters;
  std::vector<PortSpec> inputs, outputs, output_parameters;

  const ParamSpec* find_parameter(const std::string& n) const;
  const PortSpec* find_input(const std::string& n) const;
  const PortSpec* find_output(const std::string& n) const;
  const PortSpec* find_output_parameter(const std::string& n) const;
  Json to_json() const;
};

// A manifest that breaks the rules; the message names the field.
class ManifestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses and checks manifest JSON text. Throws ManifestError.
ComponentManifest parse_manifest(const std::string& json_text);
ComponentManifest parse_manifest(const Json& json);

// Why `value` is not acceptable for `spec`, or nullopt when it is.
std::optional<std::string> check_parameter_value(const ParamSpec& spec, const Json& value);
// [A-Za-z_][A-Za-z0-9_]*: names of parameters, ports and artifact types.
bool is_identifier(const std::string& text);
// Lower-case dotted words such as "data.csv" or "acme.my-scaler".
bool is_component_name(const std::string& text);

// A bound as JSON: an integer when it is whole (so "max 255", not "255.0").
Json bound_json(double value);
// A parameter as manifests and kiln ui show it: name, type, description, and
// default, min, max, choices when set (no default: required).
Json param_spec_json(const ParamSpec& spec);
// Whether `value` has value type `type` (an integer counts as a float).
bool has_value_type(const Json& value, ValueType type);

}  // namespace kiln::host

#include "yaml_reader.hpp"

#include <kiln/host/suggest.hpp>

#include <algorithm>

namespace kiln::host {

YAML::Node load_yaml_document(const std::string& text, const std::string& file, std::size_t max_bytes,
                              const std::string& what) {
  if (text.size() > max_bytes)
    throw SpecError({{SourcePos{file, 1, 1}, what + " is larger than " + std::to_string(max_bytes) + " bytes"}});
  // The limits bound what parsing allocates; should memory run out all the
  // same, that is this document's error, not the process's end.
  const auto too_large = [&] { return SpecError({{SourcePos{file, 1, 1}, what + " is too large to read (out of memory)"}}); };
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw SpecError({{SourcePos{file, e.mark.line + 1, e.mark.column + 1}, "YAML syntax error: " + e.msg}});
  } catch (const std::bad_alloc&) {
    throw too_large();
  } catch (const std::length_error&) {
    throw too_large();
  }
}

SourcePos YamlReader::pos(const YAML::Node& node, const std::string& file) const {
  const YAML::Mark mark = node.Mark();
  return SourcePos{file, mark.line + 1, mark.column + 1};
}

SourcePos YamlReader::value_pos(const YAML::Node& node, const std::string& file) const {
  SourcePos p = pos(node, file);
  if (node.IsScalar() && node.Tag() == "!") ++p.column;
  return p;
}

void YamlReader::error(const YAML::Node& node, const std::string& file, const std::string& message) {
  diagnostics_.push_back({pos(node, file), message});
}

bool YamlReader::expect_map(const YAML::Node& node, const std::string& file, const std::string& what) {
  if (node.IsMap()) return true;
  error(node, file, what + " must be a mapping");
  return false;
}

void YamlReader::check_keys(const YAML::Node& map, const std::string& file, const std::vector<std::string>& allowed,
                            const std::string& where) {
  for (const auto& item : map) {
    const std::string key = item.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      error(item.first, file, "unknown key '" + key + "' in " + where + did_you_mean(key, allowed));
  }
}

void YamlReader::check_header(const YAML::Node& root, const std::string& file, const std::string& kind) {
  const auto api = root["apiVersion"];
  if (!api)
    error(root, file, "missing 'apiVersion: kiln/v1'");
  else if (!api.IsScalar() || api.Scalar() != "kiln/v1")
    error(api, file, "unsupported apiVersion '" + (api.IsScalar() ? api.Scalar() : "?") + "' (expected kiln/v1)");
  const auto k = root["kind"];
  if (!k)
    error(root, file, "missing 'kind: " + kind + "'");
  else if (!k.IsScalar() || k.Scalar() != kind)
    error(k, file, "kind must be '" + kind + "' here, not '" + (k.IsScalar() ? k.Scalar() : "?") + "'");
}

std::optional<std::string> YamlReader::scalar(const YAML::Node& node, const std::string& file,
                                              const std::string& what) {
  if (node.IsScalar()) return node.Scalar();
  error(node, file, what + " must be a single value");
  return std::nullopt;
}

Json YamlReader::to_json(const YAML::Node& node, const std::string& file) {
  try {
    return yaml_to_json(node, budget_);
  } catch (const YamlLimitError& e) {
    over_limit(e, node, file);
  }
}

void YamlReader::over_limit(const YamlLimitError& e, const YAML::Node& node, const std::string& file) {
  diagnostics_.push_back({pos(node, file), e.what()});
  throw SpecError(diagnostics_);
}

std::optional<ParamSpec> YamlReader::read_parameter(const YAML::Node& key, const YAML::Node& decl,
                                                    const std::string& file) {
  const std::string name = key.Scalar();
  if (!is_identifier(name)) {
    error(key, file, "parameter name '" + name + "' is not an identifier");
    return std::nullopt;
  }
  if (!expect_map(decl, file, "parameter '" + name + "'")) return std::nullopt;
  check_keys(decl, file, {"type", "default", "description", "min", "max", "choices"}, "parameter '" + name + "'");
  Json manifest_style{{"name", name}};
  for (const char* field : {"type", "default", "description", "min", "max", "choices"})
    if (decl[field]) manifest_style[field] = to_json(decl[field], file);
  if (!decl["type"]) {
    error(decl, file, "parameter '" + name + "' needs a type: string, int, float, bool, list or object");
    return std::nullopt;
  }
  try {  // one rule set for manifests, pipelines and component files
    return parse_manifest(Json{{"name", "pipeline.params"},
                               {"version", "1.0.0"},
                               {"kind", "generic"},
                               {"parameters", Json::array({manifest_style})}})
        .parameters.at(0);
  } catch (const ManifestError& e) {
    std::string message = e.what();
    const auto at = message.find("parameters[0]");
    message = at == std::string::npos ? message : "parameter '" + name + "'" + message.substr(at + 13);
    error(decl, file, message);
    return std::nullopt;
  }
}

}  // namespace kiln::host

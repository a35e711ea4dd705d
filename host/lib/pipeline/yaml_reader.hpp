// Reading a kiln YAML document (a pipeline, a component file) with the
// position of every value: the shared helpers that record each problem as a
// file:line:col diagnostic and go on, so a user sees every mistake at once.
#pragma once

#include <yaml-cpp/yaml.h>
#include <kiln/host/manifest.hpp>
#include <kiln/host/spec.hpp>
#include <kiln/host/yaml_json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// Parses `text` (at most `max_bytes`) as one YAML document. Throws SpecError
// at file:line:col for a syntax error, a size over the limit, or memory
// running out while parsing.
YAML::Node load_yaml_document(const std::string& text, const std::string& file, std::size_t max_bytes,
                              const std::string& what);

class YamlReader {
 public:
  explicit YamlReader(std::vector<Diagnostic>& diagnostics) : diagnostics_(diagnostics) {}

  SourcePos pos(const YAML::Node& node, const std::string& file) const;
  // Where a value's text starts: after the opening quote of a quoted scalar,
  // so columns inside it (expressions, placeholders) line up.
  SourcePos value_pos(const YAML::Node& node, const std::string& file) const;
  void error(const YAML::Node& node, const std::string& file, const std::string& message);
  bool expect_map(const YAML::Node& node, const std::string& file, const std::string& what);
  void check_keys(const YAML::Node& map, const std::string& file, const std::vector<std::string>& allowed,
                  const std::string& where);
  // `apiVersion: kiln/v1` and `kind: KIND`.
  void check_header(const YAML::Node& root, const std::string& file, const std::string& kind);
  std::optional<std::string> scalar(const YAML::Node& node, const std::string& file, const std::string& what);
  // Every conversion of one document draws on one budget, so aliases cannot
  // expand without bound; past it, throws SpecError with every problem so far.
  Json to_json(const YAML::Node& node, const std::string& file);
  [[noreturn]] void over_limit(const YamlLimitError& e, const YAML::Node& node, const std::string& file);
  // `NAME: {type, default, description, min, max, choices}`: a parameter
  // under the manifests' rules (one rule set for manifests, pipelines and
  // component files), its problems at `decl`.
  std::optional<ParamSpec> read_parameter(const YAML::Node& key, const YAML::Node& decl, const std::string& file);

 protected:
  std::vector<Diagnostic>& diagnostics_;
  YamlBudget budget_;
};

}  // namespace kiln::host

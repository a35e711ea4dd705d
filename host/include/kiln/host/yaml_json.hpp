// YAML values as JSON, typed the way a user reads them.
#pragma once

#include <kiln/host/json.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace YAML {
class Node;
}

namespace kiln::host {

// What converting one YAML document may expand to. An alias repeats its
// anchor's whole subtree each time it is used, so a few hundred bytes can name
// billions of nodes ("billion laughs"); these bound what the conversions of
// one document (a spec with its imports, a parameters file) produce in total.
inline constexpr std::size_t kMaxYamlNodes = 200'000;     // nodes visited, counted after alias expansion
inline constexpr std::size_t kMaxYamlBytes = 16u << 20;   // scalar and key bytes, after alias expansion
inline constexpr int kMaxYamlDepth = 100;                 // nesting; also ends an alias inside its own anchor

// A conversion went over a limit. line and column are 0-based (yaml-cpp's
// marks) and name the node where the budget ran out.
class YamlLimitError : public std::runtime_error {
 public:
  YamlLimitError(const std::string& message, int line, int column)
      : std::runtime_error(message), line_(line), column_(column) {}
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  int line_;
  int column_;
};

// The running count for one document; every visit of a node is charged.
class YamlBudget {
 public:
  // Charges one node (and its scalar or key bytes) at `depth`; throws YamlLimitError past a limit.
  void charge(const YAML::Node& node, std::size_t bytes, int depth);
  std::size_t nodes() const { return nodes_; }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t nodes_ = 0;
  std::size_t bytes_ = 0;
};

// Quoted scalars stay strings; plain ones become booleans, null, integers or
// floats when they read as such; sequences and maps convert recursively.
// Charges `budget` for every node it visits (throws YamlLimitError).
Json yaml_to_json(const YAML::Node& node, YamlBudget& budget);

// As above with a budget of its own.
Json yaml_to_json(const YAML::Node& node);

// Parses `text` as one YAML value (flow style: "[1, 2]", "{a: 1}", "3").
// Throws std::invalid_argument with the parser's message, or the limit's.
Json parse_yaml_value(const std::string& text);

}  // namespace kiln::host

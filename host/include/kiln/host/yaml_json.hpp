// YAML values as JSON, typed the way a user reads them.
#pragma once

#include <kiln/host/json.hpp>

namespace YAML {
class Node;
}

namespace kiln::host {

// Quoted scalars stay strings; plain ones become booleans, null, integers or
// floats when they read as such; sequences and maps convert recursively.
Json yaml_to_json(const YAML::Node& node);

// Parses `text` as one YAML value (flow style: "[1, 2]", "{a: 1}", "3").
// Throws std::invalid_argument with the parser's message.
Json parse_yaml_value(const std::string& text);

}  // namespace kiln::host

#include <yaml-cpp/yaml.h>
#include <kiln/host/yaml_json.hpp>

#include <charconv>
#include <cmath>
#include <new>
#include <stdexcept>

namespace kiln::host {
namespace {

Json plain_scalar(const std::string& s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  const char* begin = s.data();
  const char* end = begin + s.size();
  int64_t i = 0;
  if (const auto r = std::from_chars(begin, end, i); r.ec == std::errc() && r.ptr == end) return i;
  double d = 0;
  if (const auto r = std::from_chars(begin, end, d); r.ec == std::errc() && r.ptr == end && std::isfinite(d)) return d;
  return s;
}

Json convert(const YAML::Node& node, YamlBudget& budget, int depth) {
  if (node.IsSequence()) {
    budget.charge(node, 0, depth);
    Json list = Json::array();
    for (const auto& item : node) list.push_back(convert(item, budget, depth + 1));
    return list;
  }
  if (node.IsMap()) {
    budget.charge(node, 0, depth);
    Json object = Json::object();
    for (const auto& item : node) {
      const std::string& key = item.first.Scalar();
      budget.charge(item.first, key.size(), depth + 1);
      object[key] = convert(item.second, budget, depth + 1);
    }
    return object;
  }
  budget.charge(node, node.Scalar().size(), depth);
  if (!node.IsScalar()) return nullptr;
  return node.Tag() == "!" ? Json(node.Scalar()) : plain_scalar(node.Scalar());
}

}  // namespace

void YamlBudget::charge(const YAML::Node& node, std::size_t bytes, int depth) {
  ++nodes_;
  bytes_ += bytes;
  const char* exceeded = nullptr;
  std::string limit;
  if (nodes_ > kMaxYamlNodes) {
    exceeded = "alias expansion exceeds ";
    limit = std::to_string(kMaxYamlNodes) + " nodes";
  } else if (bytes_ > kMaxYamlBytes) {
    exceeded = "alias expansion exceeds ";
    limit = std::to_string(kMaxYamlBytes) + " bytes";
  } else if (depth > kMaxYamlDepth) {
    exceeded = "YAML nesting exceeds ";
    limit = std::to_string(kMaxYamlDepth) + " levels (or an alias is used inside its own anchor)";
  }
  if (!exceeded) return;
  const YAML::Mark mark = node.Mark();
  throw YamlLimitError(exceeded + limit, mark.line, mark.column);
}

Json yaml_to_json(const YAML::Node& node, YamlBudget& budget) { return convert(node, budget, 0); }

Json yaml_to_json(const YAML::Node& node) {
  YamlBudget budget;
  return yaml_to_json(node, budget);
}

Json parse_yaml_value(const std::string& text) {
  try {
    return yaml_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(e.msg);
  } catch (const YamlLimitError& e) {
    throw std::invalid_argument(std::to_string(e.line() + 1) + ":" + std::to_string(e.column() + 1) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    throw std::invalid_argument("the YAML is too large to read");
  } catch (const std::length_error&) {
    throw std::invalid_argument("the YAML is too large to read");
  }
}

}  // namespace kiln::host

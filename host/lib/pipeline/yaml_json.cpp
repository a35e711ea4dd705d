#include <yaml-cpp/yaml.h>
#include <kiln/host/yaml_json.hpp>

#include <charconv>
#include <cmath>
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

}  // namespace

Json yaml_to_json(const YAML::Node& node) {
  if (node.IsSequence()) {
    Json list = Json::array();
    for (const auto& item : node) list.push_back(yaml_to_json(item));
    return list;
  }
  if (node.IsMap()) {
    Json object = Json::object();
    for (const auto& item : node) object[item.first.Scalar()] = yaml_to_json(item.second);
    return object;
  }
  if (!node.IsScalar()) return nullptr;
  return node.Tag() == "!" ? Json(node.Scalar()) : plain_scalar(node.Scalar());
}

Json parse_yaml_value(const std::string& text) {
  try {
    return yaml_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(e.msg);
  }
}

}  // namespace kiln::host

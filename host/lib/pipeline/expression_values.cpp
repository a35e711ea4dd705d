#include <kiln/host/json_bounded.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

#include "expression_evaluator.hpp"

namespace kiln::host::expr {

namespace {

const char* type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "number";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "object";
    case Json::value_t::binary:
      return "binary";
    case Json::value_t::discarded:
      return "discarded";
  }
  return "value";
}

// "string \"a\"", "number 3", "null".
std::string describe(const Json& value) {
  return value.is_null() ? "null" : type_name(value) + (" " + render(value));
}

template <typename T>
int three_way(const T& a, const T& b) {
  return (b < a) - (a < b);
}

// nlohmann::json stores integers as int64 or uint64 (non-negative numbers parse as unsigned); compare them exactly
// rather than through double, which loses precision above 2^53.
int compare_integers(const Json& a, const Json& b) {
  const auto negative = [](const Json& n) { return !n.is_number_unsigned() && n.get<int64_t>() < 0; };
  const bool a_negative = negative(a), b_negative = negative(b);
  if (a_negative != b_negative) return a_negative ? -1 : 1;
  if (a_negative) return three_way(a.get<int64_t>(), b.get<int64_t>());
  return three_way(a.get<uint64_t>(), b.get<uint64_t>());
}

// -1, 0 or 1; nullopt when unordered (NaN).
std::optional<int> compare_numbers(const Json& a, const Json& b) {
  if (a.is_number_float() || b.is_number_float()) {
    const double x = a.get<double>(), y = b.get<double>();
    if (std::isnan(x) || std::isnan(y)) return std::nullopt;
    return three_way(x, y);
  }
  return compare_integers(a, b);
}

}  // namespace

std::string render(const Json& value) {
  constexpr size_t kMaxLength = 60;
  // `replace`: a resolved string need not be valid UTF-8, and an error message must not throw.
  const std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() <= kMaxLength ? text : excerpt_text(text, kMaxLength - 3);
}

// Objects compare in any order (ordered_json's own == would also compare key order).
bool equal(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.type() != b.type()) return false;
  if (a.is_array()) return std::equal(a.begin(), a.end(), b.begin(), b.end(), equal);
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [key, value] : a.items()) {
      const auto match = b.find(key);
      if (match == b.end() || !equal(value, *match)) return false;
    }
    return true;
  }
  return a == b;
}

bool ordered(CompareOp op, const Json& a, const Json& b, const Operator& where) {
  std::optional<int> order;
  if (a.is_number() && b.is_number()) {
    order = compare_numbers(a, b);
  } else if (a.is_string() && b.is_string()) {
    order = three_way(a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>()), 0);
  } else {
    throw ExpressionError("cannot compare " + describe(a) + " with " + describe(b), where.column);
  }
  if (!order) return false;  // NaN is neither less, equal nor greater
  switch (op) {
    case CompareOp::kLt:
      return *order < 0;
    case CompareOp::kLe:
      return *order <= 0;
    case CompareOp::kGt:
      return *order > 0;
    case CompareOp::kGe:
      return *order >= 0;
    default:
      return false;  // not an ordering; the caller never asks
  }
}

bool contains(const Json& haystack, const Json& needle, const Operator& where) {
  if (haystack.is_array())
    return std::any_of(haystack.begin(), haystack.end(), [&](const Json& item) { return equal(item, needle); });
  if (haystack.is_string() || haystack.is_object()) {
    if (!needle.is_string())
      throw ExpressionError("cannot look for " + describe(needle) + " in " + describe(haystack) +
                                (haystack.is_string() ? " (only a string can be found in a string)"
                                                      : " (only a string can be an object's key)"),
                            where.column);
    const auto& key = needle.get_ref<const std::string&>();
    if (haystack.is_object()) return haystack.contains(key);
    return haystack.get_ref<const std::string&>().find(key) != std::string::npos;
  }
  throw ExpressionError("'" + where.spelling + "' needs a list, string or object on the right, got " + render(haystack),
                        where.column);
}

Json negate(const Json& number) {
  constexpr uint64_t kInt64MinMagnitude = uint64_t{1} << 63;
  if (number.is_number_float()) return -number.get<double>();
  if (number.is_number_unsigned()) {
    const uint64_t magnitude = number.get<uint64_t>();
    if (magnitude == kInt64MinMagnitude) return std::numeric_limits<int64_t>::min();
    if (magnitude < kInt64MinMagnitude) return -static_cast<int64_t>(magnitude);
    return -static_cast<double>(magnitude);
  }
  const int64_t value = number.get<int64_t>();
  if (value == std::numeric_limits<int64_t>::min()) return kInt64MinMagnitude;
  return -value;
}

bool require_boolean(const Json& value, const Operator& where) {
  if (!value.is_boolean())
    throw ExpressionError("'" + where.spelling + "' needs true or false, got " + render(value), where.column);
  return value.get<bool>();
}

}  // namespace kiln::host::expr

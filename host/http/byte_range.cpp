#include "byte_range.hpp"

#include <optional>

namespace kiln::http {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Decimal digits only, at most 19 of them (no overflow); nullopt otherwise.
std::optional<uint64_t> number(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

ByteRange parse_byte_range(std::string_view header, uint64_t size) {
  ByteRange ignored;
  if (header.size() > kMaxRangeHeader) return ignored;
  std::string_view value = trim(header);
  constexpr std::string_view unit = "bytes=";
  if (value.size() < unit.size()) return ignored;
  for (size_t i = 0; i < unit.size(); ++i)  // the unit is case-insensitive
    if ((value[i] | (value[i] >= 'A' && value[i] <= 'Z' ? 0x20 : 0)) != unit[i]) return ignored;
  value = trim(value.substr(unit.size()));
  if (value.find(',') != std::string_view::npos) return ignored;  // several ranges: the whole resource
  const size_t dash = value.find('-');
  if (dash == std::string_view::npos) return ignored;
  const std::string_view from = trim(value.substr(0, dash)), to = trim(value.substr(dash + 1));
  ByteRange range;
  if (from.empty()) {  // the last `to` bytes
    const auto suffix = number(to);
    if (!suffix) return ignored;
    if (*suffix == 0 || size == 0) {
      range.kind = ByteRange::Kind::Unsatisfiable;
      return range;
    }
    range.kind = ByteRange::Kind::Satisfiable;
    range.first = *suffix >= size ? 0 : size - *suffix;
    range.last = size - 1;
    return range;
  }
  const auto first = number(from);
  if (!first) return ignored;
  std::optional<uint64_t> last;
  if (!to.empty()) {
    last = number(to);
    if (!last || *last < *first) return ignored;
  }
  if (*first >= size) {
    range.kind = ByteRange::Kind::Unsatisfiable;
    return range;
  }
  range.kind = ByteRange::Kind::Satisfiable;
  range.first = *first;
  range.last = last && *last < size ? *last : size - 1;
  return range;
}

std::string content_range(const ByteRange& range, uint64_t size) {
  if (range.kind != ByteRange::Kind::Satisfiable) return "bytes */" + std::to_string(size);
  return "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" + std::to_string(size);
}

}  // namespace kiln::http

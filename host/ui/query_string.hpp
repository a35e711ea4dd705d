// A request target split into decoded path segments and query parameters,
// and the parameters read as typed values. Every malformed or out-of-range
// value is an ApiError 400 naming the parameter.
#pragma once

#include "api_error.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::ui {

// Limits on what a target may hold (its length is http-parser's 80 KiB).
inline constexpr size_t kMaxSegments = 16;
inline constexpr size_t kMaxParameters = 32;

// %XX escapes decoded ('+' is a space in a query). A bad escape, or a
// decoded NUL, throws ApiError 400.
std::string percent_decode(std::string_view text, bool plus_is_space);

class QueryParams {
 public:
  QueryParams() = default;
  explicit QueryParams(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  // 400 for a parameter not among `known` ("did you mean" when one is close).
  void allow_only(const std::vector<std::string>& known) const;
  // The value, when given (an empty value counts as not given); 400 when longer than `max_length`.
  std::optional<std::string> text(const std::string& name, size_t max_length = 256) const;
  // An integer in [min, max], or `fallback` when not given; 400 otherwise.
  int64_t integer(const std::string& name, int64_t fallback, int64_t min, int64_t max) const;
  std::optional<int64_t> optional_integer(const std::string& name, int64_t min, int64_t max) const;
  // One of `choices`, or `fallback` when not given.
  std::string choice(const std::string& name, const std::vector<std::string>& choices,
                     const std::string& fallback) const;

 private:
  std::map<std::string, std::string> values_;
};

struct Target {
  std::vector<std::string> segments;  // the path's non-empty segments, decoded
  QueryParams query;
};

// Splits and decodes "/a/b?x=1&y=2". A segment that decodes to "." or "..",
// or holds a '/', is refused (400), as are too many segments or parameters
// and a parameter given twice.
Target parse_target(const std::string& url);

// The non-empty parts of `text` between `separator`s ("a,,b" → a, b).
std::vector<std::string> split_nonempty(std::string_view text, char separator);

// An integer in [min, max] from decimal text, or nullopt.
std::optional<int64_t> parse_integer(std::string_view text, int64_t min, int64_t max);

}  // namespace kiln::ui

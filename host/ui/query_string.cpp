#include "query_string.hpp"

#include <kiln/host/suggest.hpp>

#include <algorithm>
#include <charconv>

namespace kiln::ui {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The text of a client's value quoted in a message: at most 64 characters.
std::string excerpt(const std::string& text) {
  return text.size() <= 64 ? text : text.substr(0, 61) + "...";
}

}  // namespace

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c != '%') {
      out += c;
    } else {
      const int high = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
      const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
      if (high < 0 || low < 0) throw ApiError(400, "bad %-escape in the request target");
      out += static_cast<char>(high * 16 + low);
      i += 2;
    }
  }
  if (out.find('\0') != std::string::npos) throw ApiError(400, "the request target holds a NUL character");
  return out;
}

std::vector<std::string> split_nonempty(std::string_view text, char separator) {
  std::vector<std::string> out;
  size_t from = 0;
  while (from <= text.size()) {
    const size_t end = std::min(text.find(separator, from), text.size());
    if (end > from) out.emplace_back(text.substr(from, end - from));
    from = end + 1;
  }
  return out;
}

std::optional<int64_t> parse_integer(std::string_view text, int64_t min, int64_t max) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty() || value < min || value > max)
    return std::nullopt;
  return value;
}

void QueryParams::allow_only(const std::vector<std::string>& known) const {
  for (const auto& [name, value] : values_) {
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string all;
    for (const auto& k : known) all += (all.empty() ? "" : ", ") + k;
    throw ApiError(400, "unknown query parameter '" + excerpt(name) + "'" + host::did_you_mean(name, known) +
                            (known.empty() ? " (this endpoint takes none)" : " (known: " + all + ")"));
  }
}

std::optional<std::string> QueryParams::text(const std::string& name, size_t max_length) const {
  const auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  if (it->second.size() > max_length)
    throw ApiError(400, "query parameter '" + name + "' is longer than " + std::to_string(max_length) + " bytes");
  return it->second;
}

std::optional<int64_t> QueryParams::optional_integer(const std::string& name, int64_t min, int64_t max) const {
  const auto value = text(name, 32);
  if (!value) return std::nullopt;
  const auto number = parse_integer(*value, min, max);
  if (!number)
    throw ApiError(400, "query parameter '" + name + "' must be an integer from " + std::to_string(min) + " to " +
                            std::to_string(max) + ", not '" + excerpt(*value) + "'");
  return number;
}

int64_t QueryParams::integer(const std::string& name, int64_t fallback, int64_t min, int64_t max) const {
  return optional_integer(name, min, max).value_or(fallback);
}

std::string QueryParams::choice(const std::string& name, const std::vector<std::string>& choices,
                                const std::string& fallback) const {
  const auto value = text(name, 64);
  if (!value) return fallback;
  if (std::find(choices.begin(), choices.end(), *value) != choices.end()) return *value;
  std::string all;
  for (const auto& c : choices) all += (all.empty() ? "" : ", ") + c;
  throw ApiError(400, "query parameter '" + name + "' must be one of " + all + ", not '" + excerpt(*value) + "'" +
                          host::did_you_mean(*value, choices));
}

Target parse_target(const std::string& url) {
  Target target;
  const size_t question = url.find('?');
  const std::string_view whole(url);
  const auto raw_segments = split_nonempty(whole.substr(0, question), '/');
  if (raw_segments.size() > kMaxSegments)
    throw ApiError(400, "the request path has more than " + std::to_string(kMaxSegments) + " segments");
  for (const auto& raw : raw_segments) {
    std::string segment = percent_decode(raw, false);
    if (segment == "." || segment == ".." || segment.find('/') != std::string::npos)
      throw ApiError(400, "the request path segment '" + excerpt(segment) + "' is not allowed ('.', '..' or '/')");
    target.segments.push_back(std::move(segment));
  }
  std::map<std::string, std::string> values;
  if (question != std::string::npos) {
    const auto pairs = split_nonempty(whole.substr(question + 1), '&');
    if (pairs.size() > kMaxParameters)
      throw ApiError(400, "the query has more than " + std::to_string(kMaxParameters) + " parameters");
    for (const std::string& pair : pairs) {
      const size_t equals = pair.find('=');
      std::string name = percent_decode(std::string_view(pair).substr(0, equals), true);
      std::string value = equals == std::string::npos ? "" : percent_decode(std::string_view(pair).substr(equals + 1), true);
      if (values.count(name)) throw ApiError(400, "query parameter '" + excerpt(name) + "' is given twice");
      values.emplace(std::move(name), std::move(value));
    }
  }
  target.query = QueryParams(std::move(values));
  return target;
}

}  // namespace kiln::ui

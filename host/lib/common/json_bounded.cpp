#include <kiln/host/error.hpp>
#include <kiln/host/json_bounded.hpp>
#include <kiln/sdk.hpp>

#include <vector>

namespace kiln::host {

namespace {

bool continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// `text` cut to at most `max_chars` bytes on a character boundary.
std::string_view cut(std::string_view text, size_t max_chars) {
  if (text.size() <= max_chars) return text;
  size_t end = max_chars;
  while (end > 0 && continuation(text[end])) --end;
  return text.substr(0, end);
}

std::string quoted(std::string_view text, size_t max_chars) {
  const auto part = cut(text, max_chars);
  return json_quote(std::string(part)) + (part.size() < text.size() ? "..." : "");
}

}  // namespace

std::string excerpt_text(std::string_view text, size_t max_chars) {
  const auto part = cut(text, max_chars);
  return std::string(part) + (part.size() < text.size() ? "..." : "");
}

std::string json_excerpt(const Json& value, size_t max_chars) {
  std::string out;
  struct Open {
    const Json* container;
    Json::const_iterator next;
  };
  std::vector<Open> open;
  const auto begin = [&](const Json& v) {
    if (v.is_array() || v.is_object()) {
      out += v.is_array() ? '[' : '{';
      open.push_back(Open{&v, v.cbegin()});
    } else if (v.is_string()) {
      out += quoted(v.get_ref<const std::string&>(), max_chars);
    } else {  // a number, boolean or null: a few characters
      out += v.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
  };
  begin(value);
  while (!open.empty() && out.size() < max_chars) {
    Open& top = open.back();
    if (top.next == top.container->cend()) {
      out += top.container->is_array() ? ']' : '}';
      open.pop_back();
      continue;
    }
    if (top.next != top.container->cbegin()) out += ',';
    if (top.container->is_object()) out += quoted(top.next.key(), max_chars) + ":";
    const Json& item = *top.next;
    ++top.next;
    begin(item);  // may grow `open`: `top` is not used after this
  }
  if (!open.empty() || out.size() > max_chars) {
    out = std::string(cut(out, max_chars)) + "...";
  }
  return out;
}

bool nested_deeper_than(const Json& value, int limit) {
  std::vector<std::pair<const Json*, int>> pending{{&value, 0}};
  while (!pending.empty()) {
    const auto [node, depth] = pending.back();
    pending.pop_back();
    if (!node->is_structured()) continue;
    if (depth + 1 > limit) return true;
    for (const auto& child : *node) pending.emplace_back(&child, depth + 1);
  }
  return false;
}

void require_shallow(const Json& value, const std::string& what) {
  if (nested_deeper_than(value, kMaxOutputValueDepth))
    throw HostError(KILN_ERROR_INVALID_ARGUMENT,
                    what + " is nested deeper than " + std::to_string(kMaxOutputValueDepth) + " levels");
}

bool json_text_nested_deeper_than(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace kiln::host

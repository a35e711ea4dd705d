#include <kiln/host/placeholders.hpp>

namespace kiln::host {
namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// Calls `visit(expression_text, column)` for each placeholder of `text`.
template <class Visit>
void scan_string(const std::string& text, Visit visit) {
  size_t at = 0;
  while ((at = text.find("{{", at)) != std::string::npos) {
    const auto close = text.find("}}", at + 2);
    if (close == std::string::npos) throw ExpressionError("'{{' without a closing '}}'", at + 1);
    visit(text.substr(at + 2, close - at - 2), at + 3);
    at = close + 2;
  }
}

std::string as_text(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

}  // namespace

std::optional<std::string> whole_placeholder(const std::string& text) {
  const std::string t = trim(text);
  if (t.size() < 4 || t.compare(0, 2, "{{") != 0 || t.compare(t.size() - 2, 2, "}}") != 0) return std::nullopt;
  const std::string inner = t.substr(2, t.size() - 4);
  if (inner.find("{{") != std::string::npos || inner.find("}}") != std::string::npos) return std::nullopt;
  return inner;
}

std::vector<Placeholder> find_placeholders(const Json& value) {
  std::vector<Placeholder> found;
  if (value.is_string()) {
    scan_string(value.get<std::string>(), [&](const std::string& expression, size_t column) {
      try {
        found.push_back({Expression::parse(expression), column});
      } catch (const ExpressionError& e) {
        throw ExpressionError(e.what(), column - 1 + e.column());
      }
    });
  } else if (value.is_structured()) {
    for (const auto& item : value) {
      auto inner = find_placeholders(item);
      std::move(inner.begin(), inner.end(), std::back_inserter(found));
    }
  }
  return found;
}

namespace {

// render_placeholders() for either kind of resolver.
template <typename Resolve>
Json render(const Json& value, const Resolve& resolve) {
  if (value.is_array()) {
    Json out = Json::array();
    for (const auto& item : value) out.push_back(render(item, resolve));
    return out;
  }
  if (value.is_object()) {
    Json out = Json::object();
    for (const auto& item : value.items()) out[item.key()] = render(item.value(), resolve);
    return out;
  }
  if (!value.is_string()) return value;
  const std::string text = value.get<std::string>();
  if (const auto whole = whole_placeholder(text)) return Expression::parse(*whole).evaluate(resolve);
  std::string out;
  size_t copied = 0;
  scan_string(text, [&](const std::string& expression, size_t column) {
    const size_t open = column - 3;
    out += text.substr(copied, open - copied) + as_text(Expression::parse(expression).evaluate(resolve));
    copied = open + 2 + expression.size() + 2;
  });
  return out + text.substr(copied);
}

}  // namespace

Json render_placeholders(const Json& value, const Expression::ReferenceResolver& resolve) {
  return render(value, resolve);
}

Json render_placeholders(const Json& value, const Expression::Resolver& resolve) {
  return render(value, resolve);
}

}  // namespace kiln::host

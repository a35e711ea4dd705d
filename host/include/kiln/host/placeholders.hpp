// "{{ expression }}" placeholders inside parameter values and loop lists.
// A string that is exactly one placeholder takes the expression's value
// with its type ("{{ params.sizes }}" stays a list); anywhere else the value
// is spliced into the text.
#pragma once

#include <kiln/host/expression.hpp>
#include <kiln/host/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

struct Placeholder {
  Expression expression;
  size_t column;  // 1-based position of the expression text inside its string
};

// Every placeholder in every string of `value`. Throws ExpressionError (its
// column is relative to the string holding the placeholder).
std::vector<Placeholder> find_placeholders(const Json& value);

// `value` with each placeholder replaced by its value under `resolve`: by
// typed reference (as a pipeline runs), or by the names as written.
Json render_placeholders(const Json& value, const Expression::ReferenceResolver& resolve);
Json render_placeholders(const Json& value, const Expression::Resolver& resolve);

// The single expression when `text` is exactly one placeholder.
std::optional<std::string> whole_placeholder(const std::string& text);

}  // namespace kiln::host

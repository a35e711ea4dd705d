// Untrusted JSON values handled without recursion: bounded previews for error
// messages and depth checks. Whatever a step, a spec or a client sent (a value
// nested 100,000 levels, a megabyte string), quoting or checking it costs a
// few dozen characters and no stack. (Copying or dumping a Json recurses.)
#pragma once

#include <kiln/host/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace kiln::host {

// The deepest nesting of an output parameter's value or an output's metadata
// a step may report, on every executor (a scalar is 0, [1] is 1): deeper
// values are refused, never copied or recursed into.
constexpr int kMaxOutputValueDepth = 64;

// Whether `value` nests deeper than `limit` levels (iterative: safe on any depth).
bool nested_deeper_than(const Json& value, int limit);
// Throws HostError (invalid-argument) naming `what` when `value` nests deeper
// than kMaxOutputValueDepth: what a step may report as an output.
void require_shallow(const Json& value, const std::string& what);

// Whether JSON `text` nests brackets deeper than `limit` outside strings
// (counting stops past it): lets a reader refuse a deep value before any
// parser sees it.
bool json_text_nested_deeper_than(std::string_view text, int limit);

// The compact JSON text of `value`, cut after about `max_chars` characters
// ("..." marks the cut), built without recursion. Long strings and keys are
// cut too; what is cut mid-character is replaced, so the result is valid UTF-8.
std::string json_excerpt(const Json& value, size_t max_chars = 64);

// `text` itself when it has at most `max_chars` bytes, else its first ones
// (cut on a character boundary) and "...": for quoting names.
std::string excerpt_text(std::string_view text, size_t max_chars = 64);

}  // namespace kiln::host

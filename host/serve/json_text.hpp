// Untrusted JSON text and values made safe for kiln serve's checks and error
// messages (internal to kiln_serving): nothing here recurses, so no depth of
// nesting a client sends can overflow a stack, and what is quoted is bounded.
#pragma once

#include <kiln/host/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace kiln::serve {

// Whether `text` nests arrays and objects more than `limit` levels deep
// (brackets inside strings do not count). One pass, no recursion, whatever
// the text (malformed JSON is for the parser to name).
bool nests_deeper_than(std::string_view text, size_t limit);

// The compact JSON text of `value`, cut after about `max_chars` characters
// ("..." marks the cut), built without recursion. Long strings and keys are
// cut too; what is cut mid-character is replaced, so the result is valid UTF-8.
std::string json_excerpt(const host::Json& value, size_t max_chars = 64);

// `text` itself when it has at most `max_chars` bytes, else its first ones
// (cut on a character boundary) and "...": for quoting a client's names.
std::string excerpt_text(std::string_view text, size_t max_chars = 64);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code
// points past U+10FFFF).
bool valid_utf8(std::string_view text);

}  // namespace kiln::serve

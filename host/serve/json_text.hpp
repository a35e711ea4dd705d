// Untrusted JSON text and values made safe for kiln serve's checks and error
// messages (internal to kiln_serving): nothing here recurses, so no depth of
// nesting a client sends can overflow a stack, and what is quoted is bounded.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/json_bounded.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace kiln::serve {

// Whether `text` nests arrays and objects more than `limit` levels deep
// (brackets inside strings do not count). One pass, no recursion, whatever
// the text (malformed JSON is for the parser to name).
bool nests_deeper_than(std::string_view text, size_t limit);

// Bounded previews for error messages (kiln/host/json_bounded.hpp).
using host::excerpt_text;
using host::json_excerpt;

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code
// points past U+10FFFF).
bool valid_utf8(std::string_view text);

}  // namespace kiln::serve

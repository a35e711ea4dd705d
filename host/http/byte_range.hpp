// The Range request header (RFC 9110 §14.2) for one byte range of a
// resource of known size: "bytes=FIRST-LAST", "bytes=FIRST-" or
// "bytes=-SUFFIX". Pure and bounded: a value longer than kMaxRangeHeader,
// another unit, several ranges or bad syntax is Ignored (the whole resource
// is sent, as the RFC allows); a well-formed range that starts at or past the
// end is Unsatisfiable (416). Shared by kiln ui's downloads; fuzzed by
// fuzz/http_range_fuzz.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::http {

constexpr size_t kMaxRangeHeader = 200;

struct ByteRange {
  enum class Kind { Ignored, Satisfiable, Unsatisfiable };
  Kind kind = Kind::Ignored;
  uint64_t first = 0, last = 0;  // inclusive; meaningful when Satisfiable (then first <= last < size)

  uint64_t length() const { return last - first + 1; }
};

ByteRange parse_byte_range(std::string_view header, uint64_t size);

// "bytes FIRST-LAST/SIZE" for a Satisfiable range, "bytes */SIZE" otherwise (the 416's Content-Range).
std::string content_range(const ByteRange& range, uint64_t size);

}  // namespace kiln::http

// kiln ui's request targets (host/ui/query_string.cpp): any bytes as a URL.
// The promise: an ApiError 400, or segments that are never ".", ".." or
// hold a '/' or a NUL, within the segment and parameter limits.
#include "query_string.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string url(reinterpret_cast<const char*>(data), size);
  try {
    const kiln::ui::Target target = kiln::ui::parse_target(url);
    if (target.segments.size() > kiln::ui::kMaxSegments) std::abort();
    for (const auto& s : target.segments)
      if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos ||
          s.find('\0') != std::string::npos)
        std::abort();
    (void)target.query.text("q");
  } catch (const kiln::ui::ApiError& e) {
    if (e.status() != 400) std::abort();
  }
  return 0;
}

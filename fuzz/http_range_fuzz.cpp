// The Range header parser (host/http/byte_range.cpp) on any bytes, against a
// size taken from the input's first 8 bytes. The promises: no exception or
// overflow; a satisfiable range lies inside the resource (first <= last <
// size); a value over kMaxRangeHeader is ignored.
#include "byte_range.hpp"

#include <cstdlib>
#include <cstring>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t resource = 0;
  if (size >= sizeof resource) {
    std::memcpy(&resource, data, sizeof resource);
    data += sizeof resource;
    size -= sizeof resource;
  }
  resource %= (uint64_t{1} << 62);
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  const kiln::http::ByteRange range = kiln::http::parse_byte_range(header, resource);
  using Kind = kiln::http::ByteRange::Kind;
  if (range.kind == Kind::Satisfiable && !(range.first <= range.last && range.last < resource)) std::abort();
  if (size > kiln::http::kMaxRangeHeader && range.kind != Kind::Ignored) std::abort();
  if (kiln::http::content_range(range, resource).empty()) std::abort();
  return 0;
}

// kiln serve's request parsing (host/http/http_request_parser.cpp): the
// bytes of one connection, fed in pieces as they might arrive, parsed as the
// front end does: each complete request taken, a refused one ends the connection.
#include "http_request_parser.hpp"

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the size of the pieces (1..256 bytes), the rest is the stream.
  const size_t piece = static_cast<size_t>(data[0]) + 1;
  const std::string in = kiln::fuzz::text_of(data + 1, size - 1);
  kiln::http::HttpRequestParsing parsing;
  parsing.start(4096);
  size_t received = 0, parsed = 0;
  while (parsed < in.size()) {
    received = std::max(received, std::min(in.size(), parsed + piece));
    const size_t n = parsing.feed(in.data() + parsed, received - parsed);
    if (n > received - parsed) kiln::fuzz::fail("the parser took more bytes than it was given");
    parsed += n;
    if (parsing.reject_status != 0) {
      if (parsing.reject_status != 400 && parsing.reject_status != 413)
        kiln::fuzz::fail("refused with status " + std::to_string(parsing.reject_status));
      break;  // the front end answers and closes the connection
    }
    if (parsing.message_done) {
      parsing.message_done = false;
      if (parsing.request.body.size() > parsing.max_body_bytes) kiln::fuzz::fail("a body over the limit");
      parsing.request = kiln::http::HttpRequest{};  // dispatched
      parsing.out.clear();                            // sent
    } else if (n == 0 && received == in.size()) {
      break;  // waits for more bytes than there are
    }
  }
  return 0;
}

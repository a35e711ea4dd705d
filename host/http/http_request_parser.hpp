// One connection's request parsing for the HTTP front end (internal to
// kiln_http): http-parser and what its callbacks gather, one request at a
// time. The front end's Connection is one of these; fuzz/http_request_fuzz.cpp
// drives one alone with the same calls.
#pragma once

#include "http_front.hpp"

#include <http_parser.h>

#include <cstddef>
#include <string>
#include <vector>

namespace kiln::http {

struct HttpRequestParsing {
  HttpRequestParsing() = default;
  HttpRequestParsing(const HttpRequestParsing&) = delete;  // http-parser points back at it
  HttpRequestParsing& operator=(const HttpRequestParsing&) = delete;

  // Starts a connection whose request bodies may hold at most `max_body_bytes`;
  // the headers named in `kept` (lower case; may be null, must outlive this)
  // are kept in HttpRequest::headers.
  void start(size_t max_body_bytes, const std::vector<std::string>* kept = nullptr);

  // Parses what it can of [data, data + size) and returns how many bytes it
  // took. It stops after a complete request (message_done is then set; the
  // caller takes `request` and clears message_done before feeding more), and
  // at a request it refuses: reject_status is then set (400 malformed,
  // 413 too large) with reject_message.
  size_t feed(const char* data, size_t size);

  http_parser parser{};
  size_t max_body_bytes = 0;
  const std::vector<std::string>* kept_headers = nullptr;  // HttpFrontOptions::kept_headers
  std::string out;  // answers to send; [written, size) not yet sent ("100 Continue" is added here)

  // The request being received.
  HttpRequest request;
  bool receiving = false;  // between its first byte and its end
  std::string field, value;
  bool in_value = false, expect_continue = false;
  bool message_done = false, keep_alive = true;
  int reject_status = 0;
  std::string reject_message;
};

}  // namespace kiln::http

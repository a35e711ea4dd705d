#include "http_request_parser.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace kiln::http {
namespace {

using Clock = std::chrono::steady_clock;

// A body's buffer is reserved up to this much from its Content-Length; past
// it, it grows as bytes arrive (a declared length is no reason to allocate).
constexpr size_t kReserveAtMost = 1 << 20;

bool iequals(const std::string& a, const char* b) {
  const size_t n = std::strlen(b);
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  return true;
}

HttpRequestParsing& parsing_of(http_parser* p) {
  return *static_cast<HttpRequestParsing*>(p->data);
}

void end_header(HttpRequestParsing& c) {
  if (c.kept_headers != nullptr) {
    for (const auto& name : *c.kept_headers) {
      if (!iequals(c.field, name.c_str())) continue;
      const size_t first = c.value.find_first_not_of(" \t");
      const size_t last = c.value.find_last_not_of(" \t");
      c.request.headers.emplace_back(name, first == std::string::npos ? "" : c.value.substr(first, last - first + 1));
      break;
    }
  }
  if (iequals(c.field, "expect")) {
    while (!c.value.empty() && (c.value.back() == ' ' || c.value.back() == '\t')) c.value.pop_back();
    c.expect_continue = iequals(c.value, "100-continue");
  }
  c.field.clear();
  c.value.clear();
  c.in_value = false;
}

int on_message_begin(http_parser* p) {
  HttpRequestParsing& c = parsing_of(p);
  c.request.started = Clock::now();
  c.receiving = true;
  c.expect_continue = false;
  c.field.clear();
  c.value.clear();
  c.in_value = false;
  return 0;
}

int on_url(http_parser* p, const char* at, size_t length) {
  parsing_of(p).request.url.append(at, length);
  return 0;
}

int on_header_field(http_parser* p, const char* at, size_t length) {
  HttpRequestParsing& c = parsing_of(p);
  if (c.in_value) end_header(c);
  c.field.append(at, length);
  return 0;
}

int on_header_value(http_parser* p, const char* at, size_t length) {
  HttpRequestParsing& c = parsing_of(p);
  c.in_value = true;
  c.value.append(at, length);
  return 0;
}

// Decides 413 from Content-Length before any of the body is read.
int on_headers_complete(http_parser* p) {
  HttpRequestParsing& c = parsing_of(p);
  if (c.in_value || !c.field.empty()) end_header(c);
  c.request.method = http_method_str(static_cast<http_method>(p->method));
  c.request.version_minor = p->http_major == 1 ? p->http_minor : 0;
  const bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
  if (has_length && p->content_length > c.max_body_bytes) {
    c.reject_status = 413;
    c.reject_message = "the request body has " + std::to_string(p->content_length) + " bytes, more than the limit of " +
                       std::to_string(c.max_body_bytes);
    return -1;  // stops the parser; the caller answers
  }
  if (has_length) c.request.body.reserve(std::min(static_cast<size_t>(p->content_length), kReserveAtMost));
  if (c.expect_continue && p->http_major == 1 && p->http_minor >= 1) c.out += "HTTP/1.1 100 Continue\r\n\r\n";
  return 0;
}

int on_body(http_parser* p, const char* at, size_t length) {
  HttpRequestParsing& c = parsing_of(p);
  if (c.request.body.size() + length > c.max_body_bytes) {  // chunked: no length was announced
    c.reject_status = 413;
    c.reject_message = "the request body is larger than the limit of " + std::to_string(c.max_body_bytes) + " bytes";
    return -1;
  }
  c.request.body.append(at, length);
  return 0;
}

int on_message_complete(http_parser* p) {
  HttpRequestParsing& c = parsing_of(p);
  c.keep_alive = http_should_keep_alive(p) != 0 && p->upgrade == 0;
  c.message_done = true;
  c.receiving = false;
  http_parser_pause(p, 1);  // one request at a time: the next waits for this one's answer
  return 0;
}

const http_parser_settings& parser_settings() {
  static const http_parser_settings settings = [] {
    http_parser_settings s{};
    s.on_message_begin = on_message_begin;
    s.on_url = on_url;
    s.on_header_field = on_header_field;
    s.on_header_value = on_header_value;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    return s;
  }();
  return settings;
}

}  // namespace

void HttpRequestParsing::start(size_t max_body, const std::vector<std::string>* kept) {
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = this;
  max_body_bytes = max_body;
  kept_headers = kept;
}

size_t HttpRequestParsing::feed(const char* data, size_t size) {
  const size_t n = http_parser_execute(&parser, &parser_settings(), data, size);
  if (reject_status != 0) return n;  // a callback refused the request
  const auto error = HTTP_PARSER_ERRNO(&parser);
  if (error == HPE_PAUSED) {
    http_parser_pause(&parser, 0);
  } else if (error != HPE_OK) {
    reject_status = 400;
    reject_message = std::string("malformed HTTP request: ") + http_errno_description(error);
  }
  return n;
}

}  // namespace kiln::http

#include "access.hpp"

#include <kiln/host/files.hpp>

#include <arpa/inet.h>

#include <array>
#include <cctype>

namespace kiln::ui {

namespace {

bool is_state_changing(const std::string& method) {
  return method != "GET" && method != "HEAD";
}

// "name:port", "[v6]:port", "name" → the name or address without the port.
std::string host_part(const std::string& host_header) {
  if (!host_header.empty() && host_header.front() == '[') {
    const size_t close = host_header.find(']');
    return close == std::string::npos ? host_header : host_header.substr(1, close - 1);
  }
  const size_t colon = host_header.find(':');
  return colon == std::string::npos ? host_header : host_header.substr(0, colon);
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  std::string name = host;
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  std::string lower;
  for (const char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "localhost") return true;
  std::array<unsigned char, 16> address{};
  if (::inet_pton(AF_INET, lower.c_str(), address.data()) == 1) return address[0] == 127;
  if (::inet_pton(AF_INET6, lower.c_str(), address.data()) == 1) {
    static const std::array<unsigned char, 16> loopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return address == loopback;
  }
  return false;
}

std::string read_token_file(const std::filesystem::path& file) {
  std::string text;
  try {
    text = host::read_file(file);
  } catch (const std::exception& e) {
    throw std::runtime_error(e.what());
  }
  const size_t first = text.find_first_not_of(" \t\r\n");
  const size_t last = text.find_last_not_of(" \t\r\n");
  const std::string token = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength)
    throw std::runtime_error(file.string() + ": the token must have " + std::to_string(kMinTokenLength) + " to " +
                             std::to_string(kMaxTokenLength) + " characters, it has " + std::to_string(token.size()));
  for (const char c : token)
    if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c)) || c == ';' ||
        c == ',' || c == '"' || c == '\\')
      throw std::runtime_error(file.string() +
                               ": the token holds white space, a control character or one of ;,\"\\ (not allowed in "
                               "a cookie)");
  return token;
}

std::optional<std::string> cookie_value(const std::string& header, const std::string& name) {
  size_t from = 0;
  while (from < header.size()) {
    const size_t end = std::min(header.find(';', from), header.size());
    std::string pair = header.substr(from, end - from);
    const size_t first = pair.find_first_not_of(' ');
    pair = first == std::string::npos ? "" : pair.substr(first);
    const size_t equals = pair.find('=');
    if (equals != std::string::npos && pair.compare(0, equals, name) == 0 && equals == name.size())
      return pair.substr(equals + 1);
    from = end + 1;
  }
  return std::nullopt;
}

bool Access::matches(const std::string& offered) const {
  if (token_.empty() || offered.size() != token_.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token_.size(); ++i) diff |= static_cast<unsigned char>(offered[i] ^ token_[i]);
  return diff == 0;
}

std::string Access::session_cookie() const {
  return std::string(kTokenCookie) + "=" + token_ + "; HttpOnly; SameSite=Strict; Path=/";
}

std::string Access::cleared_cookie() const {
  return std::string(kTokenCookie) + "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0";
}

bool Access::signed_in(const http::HttpRequest& request) const {
  if (!token_required()) return true;
  if (const std::string* authorization = request.header("authorization")) {
    const std::string prefix = "Bearer ";
    return authorization->compare(0, prefix.size(), prefix) == 0 && matches(authorization->substr(prefix.size()));
  }
  if (const std::string* cookie = request.header("cookie"))
    if (const auto value = cookie_value(*cookie, kTokenCookie); value && matches(*value)) return true;
  return false;
}

void Access::check(const http::HttpRequest& request, bool open) const {
  const std::string* host_header = request.header("host");
  if (!token_required() && (host_header == nullptr || !is_loopback_host(host_part(*host_header))))
    throw ApiError(403, "this server answers only requests to a loopback name (localhost, 127.0.0.1, [::1]), not '" +
                            (host_header ? host_header->substr(0, 64) : std::string()) + "'");
  if (is_state_changing(request.method)) {
    const std::string* origin = request.header("origin");
    if (origin != nullptr && (host_header == nullptr || (*origin != "http://" + *host_header &&
                                                          *origin != "https://" + *host_header)))
      throw ApiError(403, "cross-origin request refused: Origin '" + origin->substr(0, 64) +
                              "' is not this server's");
  }
  if (open || signed_in(request)) return;
  if (request.header("authorization") != nullptr) throw ApiError(401, "the bearer token is not this server's");
  throw ApiError(401, "this server needs its token: send 'Authorization: Bearer TOKEN', or POST it to /api/v1/login");
}

const std::vector<std::string>& kept_request_headers() {
  static const std::vector<std::string> names{"host",   "origin",          "authorization",
                                                "cookie", "last-event-id",   "accept-encoding",
                                                "if-none-match", "range"};
  return names;
}

}  // namespace kiln::ui

// Who may use the API. On loopback with no token: anyone on this machine,
// but only under a loopback Host name (a page of another site cannot reach
// it through DNS rebinding). With a token (required off loopback): every
// request carries it as `Authorization: Bearer` or in the HttpOnly cookie
// POST /api/v1/login sets. State-changing requests (any method but GET and
// HEAD) that name an Origin must name this server's own (no cross-site
// request forgery).
#pragma once

#include "api_error.hpp"

#include <kiln/ui/ui_server.hpp>
#include "http_front.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace kiln::ui {

inline constexpr const char* kTokenCookie = "kiln_token";

// The value of cookie `name` in a Cookie header, or nullopt.
std::optional<std::string> cookie_value(const std::string& header, const std::string& name);

class Access {
 public:
  // `token` empty: loopback only (the server refuses to start otherwise).
  explicit Access(std::string token) : token_(std::move(token)) {}

  bool token_required() const { return !token_.empty(); }
  // Throws ApiError (401, 403) unless `request` may go on. `open`: a
  // request that needs no token (signing in or out, asking whether one is
  // needed), which still needs a loopback Host without one and its origin.
  void check(const http::HttpRequest& request, bool open) const;
  // Whether `request` carries the token (as a bearer or in the cookie), or
  // none is required.
  bool signed_in(const http::HttpRequest& request) const;
  // Whether `offered` is the token (compared in constant time).
  bool matches(const std::string& offered) const;
  // The Set-Cookie value that carries the token.
  std::string session_cookie() const;
  // The Set-Cookie value that makes a browser forget it.
  std::string cleared_cookie() const;

 private:
  std::string token_;
};

// The request headers the server keeps (HttpFrontOptions::kept_headers).
const std::vector<std::string>& kept_request_headers();

}  // namespace kiln::ui

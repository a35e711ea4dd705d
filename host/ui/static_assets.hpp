// The web UI's files: those compiled into the binary (embedded_assets.hpp),
// or, with `kiln ui --ui-dir DIR`, DIR's files read at each request (for
// developing the views without rebuilding). Answers carry the security
// headers every page needs (a strict Content-Security-Policy: scripts and
// styles from this origin only, no inline script), an ETag (If-None-Match
// → 304) and, from the embedded copy, gzip when the client accepts it.
#pragma once

#include "http_front.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::ui {

// The headers of every asset answer (and of the API's: nosniff).
const std::vector<std::pair<std::string, std::string>>& asset_security_headers();

// Whether an Accept-Encoding value accepts gzip (a "gzip" coding, or "*", without q=0).
bool accepts_gzip(const std::string& accept_encoding);

class StaticAssets {
 public:
  // `ui_dir` empty: the embedded files.
  explicit StaticAssets(std::filesystem::path ui_dir) : ui_dir_(std::move(ui_dir)) {}

  // The answer to a GET of the path `segments` (decoded, no "." or ".."):
  // "/" is index.html; 200, 304 or 404 (a missing file, an unknown
  // extension, a file that leaves the directory through a symlink).
  http::HttpResponse serve(const std::vector<std::string>& segments, const http::HttpRequest& request) const;

 private:
  std::filesystem::path ui_dir_;
};

}  // namespace kiln::ui

#include "static_assets.hpp"

#include "asset_types.hpp"
#include "embedded_assets.hpp"
#include "path_inside.hpp"

#include <kiln/host/files.hpp>

#include <algorithm>
#include <cctype>
#include <string_view>

namespace kiln::ui {

namespace fs = std::filesystem;

namespace {

// Files larger than this are not served from --ui-dir (the embedded ones are all far smaller).
constexpr uintmax_t kMaxAssetBytes = 4u << 20;

http::HttpResponse not_found(const std::string& path) {
  http::HttpResponse response{404, http::json_error_body("no such file in the UI: " + path.substr(0, 200)),
                              "application/json"};
  response.headers = {{"Cache-Control", "no-store"}, {"X-Content-Type-Options", "nosniff"}};
  return response;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// Whether `if_none_match` (a list of ETags, or "*") names `etag`.
bool matches_etag(const std::string* if_none_match, const std::string& etag) {
  if (if_none_match == nullptr) return false;
  std::string_view rest = *if_none_match;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string tag = trim(rest.substr(0, comma));
    if (tag.rfind("W/", 0) == 0) tag = tag.substr(2);
    if (tag == "*" || tag == etag) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

http::HttpResponse answer(const char* type, const std::string& etag,
                          const http::HttpRequest& request) {
  http::HttpResponse response{200, "", type};
  response.headers = asset_security_headers();
  // Every file is revalidated (its name carries no version): a 304 costs one round trip.
  response.headers.emplace_back("Cache-Control", "no-cache");
  response.headers.emplace_back("ETag", etag);
  response.headers.emplace_back("Vary", "Accept-Encoding");
  if (matches_etag(request.header("if-none-match"), etag)) response.status = 304;
  return response;
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& asset_security_headers() {
  static const std::vector<std::pair<std::string, std::string>> headers{
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cross-Origin-Opener-Policy", "same-origin"}};
  return headers;
}

bool accepts_gzip(const std::string& accept_encoding) {
  std::string_view rest = accept_encoding;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string item = trim(rest.substr(0, comma));
    const size_t semi = item.find(';');
    std::string coding = trim(std::string_view(item).substr(0, semi));
    for (char& c : coding) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (coding == "gzip" || coding == "*") {
      bool refused = false;
      if (semi != std::string::npos) {
        std::string q = trim(std::string_view(item).substr(semi + 1));
        q.erase(std::remove(q.begin(), q.end(), ' '), q.end());
        refused = q.rfind("q=0", 0) == 0 && q.find_first_of("123456789", 3) == std::string::npos;
      }
      if (!refused) return true;
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

http::HttpResponse StaticAssets::serve(const std::vector<std::string>& segments,
                                       const http::HttpRequest& request) const {
  std::string path;
  for (const auto& segment : segments) path += "/" + segment;
  if (path.empty()) path = "/index.html";
  const char* type = asset_content_type(path);
  if (type == nullptr) return not_found(path);

  if (ui_dir_.empty()) {
    for (size_t i = 0; i < kEmbeddedAssetCount; ++i) {
      const EmbeddedAsset& asset = kEmbeddedAssets[i];
      if (path != asset.path) continue;
      http::HttpResponse response = answer(asset.content_type, asset.etag, request);
      if (response.status == 304) return response;
      const std::string* encoding = request.header("accept-encoding");
      if (encoding && accepts_gzip(*encoding) && asset.gzip_size < asset.size) {
        response.body.assign(reinterpret_cast<const char*>(asset.gzip), asset.gzip_size);
        response.headers.emplace_back("Content-Encoding", "gzip");
      } else {
        response.body.assign(reinterpret_cast<const char*>(asset.data), asset.size);
      }
      return response;
    }
    return not_found(path);
  }

  // --ui-dir: the file as it is now, if it lies inside the directory (symlinks resolved).
  const fs::path file = ui_dir_ / path.substr(1);
  std::error_code ec;
  if (!fs::is_regular_file(file, ec) || !path_inside(file, ui_dir_) || fs::file_size(file, ec) > kMaxAssetBytes)
    return not_found(path);
  std::string bytes;
  try {
    bytes = host::read_file(file);
  } catch (const std::exception&) {
    return not_found(path);
  }
  http::HttpResponse response = answer(type, asset_etag(bytes), request);
  if (response.status != 304) response.body = std::move(bytes);
  return response;
}

}  // namespace kiln::ui

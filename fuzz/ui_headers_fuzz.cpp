// kiln ui's reading of the request headers its static files depend on
// (host/ui/static_assets.cpp): any bytes as Accept-Encoding, and as
// If-None-Match of a request for an embedded file. The promises:
// accepts_gzip never says yes unless "gzip" or "*" is in the value; an
// asset request is answered 200 (with the file's bytes) or 304 (with none),
// never an exception.
#include "embedded_assets.hpp"
#include "static_assets.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string value(reinterpret_cast<const char*>(data), size);
  std::string lower = value;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool gzip = kiln::ui::accepts_gzip(value);
  if (gzip && lower.find("gzip") == std::string::npos && value.find('*') == std::string::npos) std::abort();

  static const kiln::ui::StaticAssets assets{std::filesystem::path()};
  kiln::http::HttpRequest request;
  request.method = "GET";
  request.url = "/index.html";
  request.headers = {{"if-none-match", value}, {"accept-encoding", value}};
  const kiln::http::HttpResponse response = assets.serve({"index.html"}, request);
  if (response.status == 304 && !response.body.empty()) std::abort();
  if (response.status != 304 && response.status != 200) std::abort();
  if (response.status == 200 && response.body.empty()) std::abort();
  return 0;
}

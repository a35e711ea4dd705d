// What the web UI's assets are served as, shared by the build-time embedder
// (embed/embed_assets.cpp) and the server (static_assets.cpp): the content
// type of a file name's extension and the ETag of its bytes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace kiln::ui {

// The content type for `name`'s extension, or nullptr (such files are not served).
inline const char* asset_content_type(std::string_view name) {
  struct Type {
    std::string_view extension;
    const char* type;
  };
  static constexpr Type types[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
      {".png", "image/png"},                 {".json", "application/json"},
      {".LICENSE", "text/plain; charset=utf-8"}};
  for (const auto& t : types)
    if (name.size() > t.extension.size() && name.substr(name.size() - t.extension.size()) == t.extension) return t.type;
  return nullptr;
}

// A strong ETag ("\"<16 hex digits>\"", quotes included): FNV-1a over the bytes,
// enough to tell two versions of one file apart.
inline std::string asset_etag(std::string_view bytes) {
  uint64_t h = 1469598103934665603ULL;
  for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  char text[24];
  std::snprintf(text, sizeof text, "\"%016llx\"", static_cast<unsigned long long>(h));
  return text;
}

}  // namespace kiln::ui

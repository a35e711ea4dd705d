// The web UI's files (host/ui/web), compiled into the binary by
// kiln_embed_assets (host/ui/embed): each with its URL path, content type,
// bytes, a gzip copy and a strong ETag.
#pragma once

#include <cstddef>

namespace kiln::ui {

struct EmbeddedAsset {
  const char* path;          // "/index.html"
  const char* content_type;  // "text/html; charset=utf-8"
  const unsigned char* data;
  size_t size;
  const unsigned char* gzip;
  size_t gzip_size;
  const char* etag;  // "\"0123456789abcdef\"", quotes included
};

extern const EmbeddedAsset kEmbeddedAssets[];
extern const size_t kEmbeddedAssetCount;

}  // namespace kiln::ui

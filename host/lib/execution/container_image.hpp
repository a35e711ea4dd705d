// Root filesystems for `image: oci:LAYOUT_DIR:TAG`: a local OCI image layout
// unpacked once per manifest digest with umoci and kept in a cache.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>

namespace kiln::host {

class ImageCache {
 public:
  explicit ImageCache(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // The unpacked rootfs of `image` ("oci:LAYOUT_DIR:TAG"), unpacking it on
  // first use. Throws std::runtime_error naming what is wrong.
  std::filesystem::path rootfs(const std::string& image);

 private:
  std::filesystem::path dir_;
  std::mutex mutex_;  // one unpack at a time
};

// The manifest digest ("sha256:...") that `tag` names in the layout's index.json.
std::string oci_layout_digest(const std::filesystem::path& layout, const std::string& tag);

}  // namespace kiln::host

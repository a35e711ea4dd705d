// Root filesystems for `image: oci:LAYOUT_DIR:TAG`: a local OCI image layout
// unpacked once per manifest digest with umoci and kept in a cache.
#pragma once

#include <kiln/host/catalog.hpp>
#include <kiln/host/kiln_image.hpp>

#include <filesystem>
#include <map>
#include <mutex>
#include <string>

namespace kiln::host {

class ImageCache {
 public:
  explicit ImageCache(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // The unpacked rootfs of `image` ("oci:LAYOUT_DIR:TAG"), unpacking it on
  // first use. Throws std::runtime_error naming what is wrong.
  std::filesystem::path rootfs(const std::string& image);

  // Where an image built by `kiln image build` (its descriptor `own`, at
  // `rootfs`) holds `component`: a plugin library by its file name, a
  // component file beside the files it names. The copy must be the host's
  // bytes (its digest, part of every cache key), checked once per file.
  // Throws std::runtime_error naming the image and the component when the
  // image lacks it or holds another build of it.
  std::filesystem::path component(const std::string& image, const std::filesystem::path& rootfs, const KilnImage& own,
                                  const CatalogComponent& component);

 private:
  std::filesystem::path dir_;
  std::mutex mutex_;  // one unpack at a time
  std::mutex digests_mutex_;
  std::map<std::filesystem::path, std::string> digests_;  // an image's copy → its digest
};

// The manifest digest ("sha256:...") that `tag` names in the layout's index.json.
std::string oci_layout_digest(const std::filesystem::path& layout, const std::string& tag);

}  // namespace kiln::host

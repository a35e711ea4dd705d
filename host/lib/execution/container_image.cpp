// The OCI image cache: see container_image.hpp.
#include "container_image.hpp"

#include <unistd.h>
#include <kiln/host/component_file.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/json.hpp>
#include <kiln/host/subprocess.hpp>

namespace kiln::host {
namespace fs = std::filesystem;

std::string oci_layout_digest(const fs::path& layout, const std::string& tag) {
  const fs::path index = layout / "index.json";
  if (!fs::exists(index)) throw std::runtime_error(layout.string() + " is not an OCI image layout (no index.json)");
  const Json manifests = Json::parse(read_file(index)).value("manifests", Json::array());
  for (const auto& m : manifests) {
    const Json annotations = m.value("annotations", Json::object());
    if (annotations.value("org.opencontainers.image.ref.name", "") == tag) return m.value("digest", "");
  }
  throw std::runtime_error("the OCI image layout " + layout.string() + " has no tag '" + tag + "'");
}

fs::path ImageCache::rootfs(const std::string& image) {
  const auto last = image.rfind(':');
  if (image.rfind("oci:", 0) != 0 || last <= 4)
    throw std::runtime_error("image '" + image + "': write it as host or oci:LAYOUT_DIR:TAG");
  const fs::path layout = fs::absolute(image.substr(4, last - 4));
  const std::string tag = image.substr(last + 1);
  const std::string digest = oci_layout_digest(layout, tag);
  const fs::path unpacked = dir_ / digest.substr(digest.find(':') + 1);
  const std::lock_guard<std::mutex> lock(mutex_);
  if (fs::exists(unpacked / "rootfs")) return unpacked / "rootfs";
  // Unpacked beside, then renamed: a cache entry is whole or absent.
  const fs::path partial = dir_ / ("partial-" + std::to_string(::getpid()) + "-" + unpacked.filename().string());
  fs::create_directories(dir_);
  std::error_code ignored;
  fs::remove_all(partial, ignored);
  const auto run = run_with_result_channel(
      {"/usr/bin/env", "umoci", "unpack", "--image", layout.string() + ":" + tag, partial.string()},
      std::chrono::minutes(10));
  if (!run.status.success()) {
    fs::remove_all(partial, ignored);
    if (run.status.code == 127)
      throw std::runtime_error("image '" + image + "' needs umoci, which is not installed (Debian package: umoci)");
    throw std::runtime_error("umoci cannot unpack " + image + ": " + run.output);
  }
  fs::rename(partial, unpacked);
  return unpacked / "rootfs";
}

fs::path ImageCache::component(const std::string& image, const fs::path& rootfs, const KilnImage& own,
                               const CatalogComponent& component) {
  const fs::path inside = component_place_in(own.plugins, component.library);
  const fs::path copy = rootfs / inside.relative_path();
  const std::string rebuild = " (build the image again with kiln image build for this pipeline)";
  if (!reached_without_links(rootfs, inside) || !fs::is_regular_file(fs::symlink_status(copy)))
    throw std::runtime_error("image '" + image + "' does not hold " + component.library.filename().string() +
                             " as a file of its own (missing, or reached through a link), which '" +
                             component.manifest.name + "' needs" + rebuild);
  std::string digest;
  {
    const std::lock_guard<std::mutex> lock(digests_mutex_);
    auto it = digests_.find(copy);
    if (it == digests_.end())
      it = digests_.emplace(copy, is_component_file(copy) ? parse_component_file(copy).digest : sha256_file(copy)).first;
    digest = it->second;
  }
  if (digest != component.library_digest)
    throw std::runtime_error("image '" + image + "' holds another build of " + component.library.filename().string() +
                             " than this host's " + component.library.string() + rebuild);
  return inside;
}

}  // namespace kiln::host

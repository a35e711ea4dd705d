// What an image built by `kiln image build` says about itself: a small JSON
// file at kKilnImageFile inside its root filesystem (docs/kubernetes.md,
// "Building the image"). The container executor reads it to run the image's
// own kiln and plugins instead of binding the host's in; `kiln image build`
// writes it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::host {

inline constexpr const char* kKilnImageFile = "/opt/kiln/image.json";
// The most that file may hold: it is read from an image, which may come from anywhere.
inline constexpr size_t kMaxKilnImageFileBytes = 64 * 1024;

struct KilnImage {
  std::filesystem::path kiln;          // absolute inside the image: the kiln binary
  std::filesystem::path plugins;       // absolute inside the image: the plugin directory
  std::filesystem::path pipeline_dir;  // where the pipeline's directory is ({{ pipeline.dir }} in a pod)
  std::string user;                    // the non-root user steps run as ("kiln")
  int uid = 0, gid = 0;
};

// The descriptor's text (at most kMaxKilnImageFileBytes), read from `file`
// (named in messages). Throws std::runtime_error naming the file and the
// field: not JSON, nested deeper than 4, a version other than 1, a path that
// is not absolute and normal, a root user or group.
KilnImage parse_kiln_image(std::string_view text, const std::filesystem::path& file);

// The descriptor of the unpacked image at `rootfs`, or nullopt when the image
// was not built by kiln (no kKilnImageFile). Throws std::runtime_error naming
// the file and the field when it is there but malformed, over the limit,
// names paths that are not absolute, or is reached through a link.
std::optional<KilnImage> read_kiln_image(const std::filesystem::path& rootfs);

// Whether `inside` (absolute, in the image) is reached from `rootfs` without
// following a symbolic link at any level: a link in an image may point
// anywhere on the host that reads it. False also when it does not exist.
bool reached_without_links(const std::filesystem::path& rootfs, const std::filesystem::path& inside);

// The descriptor's text (what read_kiln_image reads back).
std::string kiln_image_text(const KilnImage& image);

}  // namespace kiln::host

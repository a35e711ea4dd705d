// What a step asks of the container it runs in (the container executor's
// per-step options; other executors ignore them). See docs/containers.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// The uid and gid a step's process runs as inside its container.
struct ContainerUser {
  uint32_t uid = 65534;  // nobody
  uint32_t gid = 65534;  // nogroup
};

struct ContainerOptions {
  std::string image = "host";    // "host", or "oci:LAYOUT_DIR:TAG"
  std::string network = "none";  // or "host"
  std::optional<int64_t> memory_bytes;
  std::optional<double> cpus;
  std::optional<int64_t> pids;
  // GPUs the step needs: the engine hands it that many of the host's GPUs
  // (docs/gpu.md); the Slurm executor asks for --gres=gpu:N instead.
  std::optional<int64_t> gpus;
  // Host directories or files bound read-only at the same path (absolute,
  // normalised; the spec's relative ones are resolved against its file).
  std::vector<std::string> mounts;
  // `user:`; nullopt = nobody (65534:65534) when kiln runs as root, else
  // kiln's own uid and gid.
  std::optional<ContainerUser> user;
};

// "64Mi", "1Gi", "512M", "1G", "100Ki", or a plain number of bytes; nullopt
// when `text` is none of those.
std::optional<int64_t> parse_memory_size(const std::string& text);

// "UID" (the group is the same number) or "UID:GID", each 0..2^31-2; nullopt
// when `text` is neither.
std::optional<ContainerUser> parse_container_user(const std::string& text);

// Whether `text` names an image: "host" or "oci:LAYOUT_DIR:TAG".
bool is_image_reference(const std::string& text);

}  // namespace kiln::host

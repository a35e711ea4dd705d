// What a step asks of the container it runs in (the container executor's
// per-step options; other executors ignore them). See docs/containers.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

struct ContainerOptions {
  std::string image = "host";    // "host", or "oci:LAYOUT_DIR:TAG"
  std::string network = "none";  // or "host"
  std::optional<int64_t> memory_bytes;
  std::optional<double> cpus;
  std::optional<int64_t> pids;
  // Host directories or files bound read-only at the same path (absolute,
  // normalised; the spec's relative ones are resolved against its file).
  std::vector<std::string> mounts;
};

// "64Mi", "1Gi", "512M", "1G", "100Ki", or a plain number of bytes; nullopt
// when `text` is none of those.
std::optional<int64_t> parse_memory_size(const std::string& text);

}  // namespace kiln::host

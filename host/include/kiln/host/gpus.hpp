// The GPUs of this host that kiln hands out to steps (docs/gpu.md,
// "Resources"): from `kiln run --gpus`, else KILN_GPUS, else detected
// without touching CUDA (the NVIDIA driver's /proc and /dev entries, narrowed
// to the CUDA_VISIBLE_DEVICES kiln itself was started with). A GPU is named by
// its index: the number CUDA_VISIBLE_DEVICES uses and, in PCI bus order (which
// kiln asks CUDA for), the N of /dev/nvidiaN.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

// A GPU index is at most this (and a count of GPUs at most this + 1).
inline constexpr int kMaxGpuIndex = 1023;

struct GpuPool {
  std::vector<int> ids{};  // distinct, in the order given
  std::string source{};  // where they came from, for messages: "--gpus 2", "detected: 4 NVIDIA GPUs", ...
};

// "N" (a count: GPUs 0..N-1), "A,B,..." (those indices; "A," is the single
// GPU A), or "none" (or ""); nullopt when `text` is none of those or repeats an index.
// ("auto" is the caller's to handle.)
std::optional<std::vector<int>> parse_gpu_list(const std::string& text);

// The indices a CUDA_VISIBLE_DEVICES value names, read as CUDA reads it: a
// comma-separated list, ending at the first entry that is not an index below
// `present` (CUDA ignores the rest); nullopt when its first entry names a GPU
// by UUID (GPU-..., MIG-...), which kiln cannot hand out by index.
std::optional<std::vector<int>> parse_cuda_visible_devices(const std::string& text, int present);

// The NVIDIA GPUs the driver shows under `proc` (driver/nvidia/gpus/*, one
// directory per GPU), else the /dev/nvidiaN nodes under `dev`: their
// indices, ascending (0..N-1 from /proc). Empty without an NVIDIA driver.
std::vector<int> detect_nvidia_gpus(const std::filesystem::path& proc = "/proc",
                                    const std::filesystem::path& dev = "/dev");

// The run's pool: `flag` (--gpus: "" or "auto" when not given), else
// `env_gpus` (KILN_GPUS; null or "auto": not set), else `detected` narrowed
// to `cuda_visible` (kiln's own CUDA_VISIBLE_DEVICES, null when unset).
// Throws std::invalid_argument naming the bad value.
GpuPool resolve_gpu_pool(const std::string& flag, const char* env_gpus, const std::vector<int>& detected,
                         const char* cuda_visible);
// The same with this process's environment and the driver's entries.
GpuPool host_gpu_pool(const std::string& flag);

// "0,2": the CUDA_VISIBLE_DEVICES value naming `ids` ("" for none).
std::string gpu_list_text(const std::vector<int>& ids);

// The NVIDIA driver's user-space libraries (libcuda.so*, libnvidia-*.so*)
// in `ldconfig -p` output, for the architecture of this build, each path once.
std::vector<std::filesystem::path> parse_ldconfig_driver_libraries(const std::string& ldconfig_output);

}  // namespace kiln::host

// The OCI runtime configuration (config.json) of one container step: which
// host paths it sees, read-only or not, its user, namespaces, capabilities,
// seccomp filter, rlimits and cgroup resources. Pure data in, JSON out:
// tested without runc.
#pragma once

#include <kiln/host/container_options.hpp>
#include <kiln/host/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::host {

struct BundleMount {
  std::filesystem::path path;  // the same absolute path inside and outside
  bool writable = false;
};

// A device node the container gets at the same path (a GPU's /dev/nvidiaN,
// /dev/nvidiactl, /dev/nvidia-uvm, ...).
struct BundleDevice {
  std::string path;
  int64_t major = 0, minor = 0;
};

struct BundleConfig {
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::filesystem::path rootfs;     // absolute
  bool host_image = true;           // bind the host's /usr, /lib, ... read-only
  std::vector<BundleMount> mounts;  // plugin, runner, inputs, outputs, /etc files
  ContainerUser user;               // the process's uid and gid
  ContainerOptions options;
  std::string hostname = "kiln-step";
  std::string cgroups_path;  // "" = no cgroup resources (rlimits instead)
  std::vector<BundleDevice> devices{};  // character devices it may use (allowed in its cgroup too)
};

// What this host offers a container step with GPUs: its NVIDIA device
// nodes (by path) and the driver's user-space libraries.
struct GpuHostFiles {
  std::vector<BundleDevice> devices;             // /dev/nvidiaN, /dev/nvidiactl, /dev/nvidia-uvm(-tools)
  std::vector<std::filesystem::path> libraries;  // libcuda.so*, libnvidia-*.so* (ldconfig -p)
};

// Gives `config` the host's GPUs `gpus` (indices, docs/gpu.md): their
// /dev/nvidiaN and the shared /dev/nvidiactl and /dev/nvidia-uvm(-tools)
// nodes, the driver libraries bound read-only at their paths (an image of
// its own also gets their directories on LD_LIBRARY_PATH; `image: host`
// already sees them), and CUDA_VISIBLE_DEVICES as the container numbers
// them: 0..N-1, since it has no other GPU's node. With no GPU only
// CUDA_VISIBLE_DEVICES (empty) is set. Throws std::runtime_error naming a
// GPU whose /dev/nvidiaN `host` does not have.
void give_gpus(BundleConfig& config, const std::vector<int>& gpus, const GpuHostFiles& host);

// The config.json for `config`.
Json oci_config(const BundleConfig& config);

// The host directories an `image: host` container sees read-only (not /etc:
// see container_rootfs.hpp).
const std::vector<std::string>& host_image_dirs();

// The seccomp filter of every step (runc's config.json format): everything
// allowed but a denylist of system calls no step needs (mounts, namespaces,
// modules, kexec, reboot, swap, keyrings, BPF, ptrace, ...), which fail with
// EPERM; clone3 fails with ENOSYS so that clone, whose flags can be checked,
// is used instead.
Json default_seccomp_profile();

}  // namespace kiln::host

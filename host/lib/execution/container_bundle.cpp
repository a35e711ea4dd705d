// config.json for runc: see container_bundle.hpp and docs/containers.md.
#include <kiln/host/container_bundle.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace kiln::host {
namespace fs = std::filesystem;

bool is_image_reference(const std::string& text) {
  const auto last = text.rfind(':');
  return text == "host" || (text.rfind("oci:", 0) == 0 && last > 4 && last + 1 < text.size());
}

std::optional<int64_t> parse_memory_size(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 15) return std::nullopt;
  const int64_t value = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  static const std::vector<std::pair<std::string, int64_t>> units{
      {"", 1},     {"Ki", 1LL << 10},  {"Mi", 1LL << 20},        {"Gi", 1LL << 30},
      {"K", 1000}, {"M", 1000 * 1000}, {"G", 1000 * 1000 * 1000}};
  for (const auto& [name, factor] : units)
    if (unit == name) return value * factor;
  return std::nullopt;
}

std::optional<ContainerUser> parse_container_user(const std::string& text) {
  constexpr int64_t kMax = 2147483646;  // (uid_t)-1 is "no change" to the kernel
  const auto number = [](const std::string& part) -> std::optional<uint32_t> {
    if (part.empty() || part.size() > 10 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      return std::nullopt;
    const int64_t value = std::stoll(part);
    if (value > kMax) return std::nullopt;
    return static_cast<uint32_t>(value);
  };
  const auto colon = text.find(':');
  const auto uid = number(text.substr(0, colon));
  const auto gid = colon == std::string::npos ? uid : number(text.substr(colon + 1));
  if (!uid || !gid) return std::nullopt;
  return ContainerUser{*uid, *gid};
}

const std::vector<std::string>& host_image_dirs() {
  static const std::vector<std::string> dirs{"/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"};
  return dirs;
}

namespace {

Json bind_mount(const std::string& source, const std::string& destination, bool writable) {
  Json options{"rbind", "nosuid", "nodev", writable ? "rw" : "ro"};
  return {{"destination", destination}, {"type", "bind"}, {"source", source}, {"options", options}};
}

Json system_mounts(const ContainerOptions& options) {
  Json mounts = Json::array();
  mounts.push_back({{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}});
  mounts.push_back({{"destination", "/dev"},
                    {"type", "tmpfs"},
                    {"source", "tmpfs"},
                    {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}});
  mounts.push_back({{"destination", "/dev/shm"},
                    {"type", "tmpfs"},
                    {"source", "shm"},
                    {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}});
  // A private /tmp: scratch space that vanishes with the container.
  mounts.push_back(
      {{"destination", "/tmp"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"nosuid", "nodev", "mode=1777"}}});
  // sysfs can only be mounted in a network namespace of the container's own;
  // with the host's network the host's /sys is bound read-only instead.
  if (options.network == "host")
    mounts.push_back(bind_mount("/sys", "/sys", false));
  else
    mounts.push_back({{"destination", "/sys"},
                      {"type", "sysfs"},
                      {"source", "sysfs"},
                      {"options", {"nosuid", "noexec", "nodev", "ro"}}});
  return mounts;
}

// Parents before children, so a writable output directory is bound on top of
// a read-only parent rather than hidden by it.
std::vector<BundleMount> ordered(std::vector<BundleMount> mounts) {
  std::sort(mounts.begin(), mounts.end(), [](const BundleMount& a, const BundleMount& b) {
    const auto depth = [](const fs::path& p) { return std::distance(p.begin(), p.end()); };
    return depth(a.path) != depth(b.path) ? depth(a.path) < depth(b.path) : a.path < b.path;
  });
  mounts.erase(std::unique(mounts.begin(), mounts.end(),
                           [](const BundleMount& a, const BundleMount& b) { return a.path == b.path; }),
               mounts.end());
  return mounts;
}

Json rlimits(const BundleConfig& config) {
  // Only limits runc may set without raising: the host's own open-file
  // limit, no core files, and the memory fallback where cgroups are not writable.
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  Json limits = Json::array();
  limits.push_back({{"type", "RLIMIT_NOFILE"}, {"hard", nofile.rlim_max}, {"soft", nofile.rlim_cur}});
  limits.push_back({{"type", "RLIMIT_CORE"}, {"hard", 0}, {"soft", 0}});
  if (config.cgroups_path.empty() && config.options.memory_bytes) {
    const auto bytes = static_cast<uint64_t>(*config.options.memory_bytes);
    limits.push_back({{"type", "RLIMIT_AS"}, {"hard", bytes}, {"soft", bytes}});
  }
  return limits;
}

Json resources(const BundleConfig& config) {
  const ContainerOptions& options = config.options;
  Json r = Json::object();
  if (options.memory_bytes) r["memory"] = {{"limit", *options.memory_bytes}};
  if (options.cpus) {
    constexpr int64_t period = 100000;
    r["cpu"] = {{"period", period}, {"quota", static_cast<int64_t>(std::llround(*options.cpus * period))}};
  }
  if (options.pids) r["pids"] = {{"limit", *options.pids}};
  if (!config.devices.empty()) {  // runc's defaults (null, zero, tty, ...) plus these
    Json allowed = Json::array();
    for (const auto& d : config.devices)
      allowed.push_back({{"allow", true}, {"type", "c"}, {"major", d.major}, {"minor", d.minor}, {"access", "rwm"}});
    r["devices"] = allowed;
  }
  return r;
}

// The container's device nodes (runc makes them in its /dev), as readable
// and writable as the host's are to everyone: the driver's own modes rule.
Json devices(const BundleConfig& config) {
  Json list = Json::array();
  for (const auto& d : config.devices)
    list.push_back({{"path", d.path},
                    {"type", "c"},
                    {"major", d.major},
                    {"minor", d.minor},
                    {"fileMode", 0666},
                    {"uid", 0},
                    {"gid", 0}});
  return list;
}

Json linux_section(const BundleConfig& config) {
  Json namespaces = Json::array();
  for (const char* type : {"pid", "mount", "ipc", "uts"}) namespaces.push_back({{"type", type}});
  if (config.options.network != "host") namespaces.push_back({{"type", "network"}});
  Json section{
      {"namespaces", namespaces},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi", "/sys/devices/virtual/powercap"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
      {"seccomp", default_seccomp_profile()}};
  if (!config.cgroups_path.empty()) {
    section["cgroupsPath"] = config.cgroups_path;
    section["resources"] = resources(config);
  }
  if (!config.devices.empty()) section["devices"] = devices(config);
  return section;
}

}  // namespace

void give_gpus(BundleConfig& config, const std::vector<int>& gpus, const GpuHostFiles& host) {
  std::string visible;
  for (size_t i = 0; i < gpus.size(); ++i) visible += (i ? "," : "") + std::to_string(i);
  config.env.emplace_back("CUDA_VISIBLE_DEVICES", visible);
  if (gpus.empty()) return;
  const auto find = [&](const std::string& path) {
    return std::find_if(host.devices.begin(), host.devices.end(), [&](const BundleDevice& d) { return d.path == path; });
  };
  for (const int gpu : gpus) {
    const auto it = find("/dev/nvidia" + std::to_string(gpu));
    if (it == host.devices.end())
      throw std::runtime_error("GPU " + std::to_string(gpu) + " has no /dev/nvidia" + std::to_string(gpu) +
                               " on this host: check --gpus or KILN_GPUS");
    config.devices.push_back(*it);
  }
  for (const char* shared : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"})
    if (const auto it = find(shared); it != host.devices.end()) config.devices.push_back(*it);
  std::vector<std::string> dirs;
  for (const auto& library : host.libraries) {
    config.mounts.push_back({library, false});
    const std::string dir = library.parent_path().string();
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  }
  if (config.host_image || dirs.empty()) return;
  std::string path;
  for (const auto& dir : dirs) path += (path.empty() ? "" : ":") + dir;
  for (auto& [name, value] : config.env)
    if (name == "LD_LIBRARY_PATH") {
      value = value.empty() ? path : value + ":" + path;
      return;
    }
  config.env.emplace_back("LD_LIBRARY_PATH", path);
}

Json oci_config(const BundleConfig& config) {
  Json env = Json::array();
  for (const auto& [name, value] : config.env) env.push_back(name + "=" + value);
  // No capabilities at all, in any set: the runner needs none, and even a
  // root user without them cannot remount, mknod, trace or change owners.
  const Json no_caps = Json::array();
  const Json process{{"terminal", false},
                     {"user", {{"uid", config.user.uid}, {"gid", config.user.gid}, {"additionalGids", Json::array()}}},
                     {"args", config.args},
                     {"env", env},
                     {"cwd", "/"},
                     {"capabilities",
                      {{"bounding", no_caps},
                       {"effective", no_caps},
                       {"inheritable", no_caps},
                       {"permitted", no_caps},
                       {"ambient", no_caps}}},
                     {"rlimits", rlimits(config)},
                     {"noNewPrivileges", true}};
  Json mounts = system_mounts(config.options);
  if (config.host_image)
    for (const auto& dir : host_image_dirs())
      if (fs::exists(dir)) mounts.push_back(bind_mount(dir, dir, false));
  for (const auto& m : ordered(config.mounts))
    mounts.push_back(bind_mount(m.path.string(), m.path.string(), m.writable));
  return {{"ociVersion", "1.0.2"},
          {"process", process},
          {"root", {{"path", config.rootfs.string()}, {"readonly", true}}},
          {"hostname", config.hostname},
          {"mounts", mounts},
          {"linux", linux_section(config)}};
}

}  // namespace kiln::host

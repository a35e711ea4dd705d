// The GPUs kiln hands out (kiln/host/gpus.hpp). Nothing here loads or
// initializes CUDA: the driver's /proc and /dev entries are read as files.
#include <kiln/host/gpus.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>
#include <sstream>
#include <stdexcept>

namespace kiln::host {
namespace fs = std::filesystem;
namespace {

// A plain decimal index 0..kMaxGpuIndex, else nullopt.
std::optional<int> index_of(const std::string& text) {
  if (text.empty() || text.size() > 4 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  const int value = std::stoi(text);
  if (value > kMaxGpuIndex) return std::nullopt;
  return value;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::istringstream in(text);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  return parts;
}

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

}  // namespace

std::optional<std::vector<int>> parse_gpu_list(const std::string& raw) {
  const std::string text = trimmed(raw);
  if (text.empty() || text == "none") return std::vector<int>{};
  if (text.find(',') == std::string::npos) {  // a count
    const auto count = index_of(text);
    if (!count) return std::nullopt;
    std::vector<int> ids(static_cast<size_t>(*count));
    for (int i = 0; i < *count; ++i) ids[static_cast<size_t>(i)] = i;
    return ids;
  }
  std::vector<int> ids;
  std::set<int> seen;
  for (const std::string& part : split_commas(text)) {
    const auto id = index_of(trimmed(part));
    if (!id || !seen.insert(*id).second) return std::nullopt;
    ids.push_back(*id);
  }
  if (ids.empty()) return std::nullopt;
  return ids;
}

std::optional<std::vector<int>> parse_cuda_visible_devices(const std::string& text, int present) {
  std::vector<int> ids;
  std::set<int> seen;
  for (const std::string& raw : split_commas(text)) {
    const std::string part = trimmed(raw);
    if (ids.empty() && (part.rfind("GPU-", 0) == 0 || part.rfind("MIG-", 0) == 0)) return std::nullopt;
    const auto id = index_of(part);
    if (!id || *id >= present || !seen.insert(*id).second) break;  // CUDA stops reading here
    ids.push_back(*id);
  }
  return ids;
}

std::vector<int> detect_nvidia_gpus(const fs::path& proc, const fs::path& dev) {
  std::error_code ec;
  std::vector<int> ids;
  int count = 0;
  for (fs::directory_iterator it(proc / "driver/nvidia/gpus", ec), end; !ec && it != end; it.increment(ec)) ++count;
  if (count > 0) {
    for (int i = 0; i < count && i <= kMaxGpuIndex; ++i) ids.push_back(i);
    return ids;
  }
  for (fs::directory_iterator it(dev, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("nvidia", 0) != 0) continue;
    if (const auto id = index_of(name.substr(6))) ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string gpu_list_text(const std::vector<int>& ids) {
  std::string text;
  for (const int id : ids) text += (text.empty() ? "" : ",") + std::to_string(id);
  return text;
}

GpuPool resolve_gpu_pool(const std::string& flag, const char* env_gpus, const std::vector<int>& detected,
                         const char* cuda_visible) {
  const auto given = [](const std::string& text, const std::string& what) {
    const auto ids = parse_gpu_list(text);
    if (!ids)
      throw std::invalid_argument(what + ": '" + text +
                                  "' is not a number of GPUs (2), a list of GPU indices (0,2 or 3,) or none");
    return GpuPool{*ids, what + " " + text};
  };
  if (!flag.empty() && flag != "auto") return given(flag, "--gpus");
  if (env_gpus != nullptr && std::string(env_gpus) != "auto") return given(env_gpus, "KILN_GPUS=");
  const std::string found = "detected " + std::to_string(detected.size()) + " NVIDIA GPU" +
                            (detected.size() == 1 ? "" : "s");
  if (cuda_visible == nullptr) return GpuPool{detected, found};
  const int present = detected.empty() ? 0 : detected.back() + 1;
  const auto visible = parse_cuda_visible_devices(cuda_visible, present);
  if (!visible)
    return GpuPool{{}, found + "; CUDA_VISIBLE_DEVICES=" + cuda_visible +
                           " names GPUs by UUID, which kiln cannot hand out: give --gpus or KILN_GPUS"};
  return GpuPool{*visible, found + ", of which CUDA_VISIBLE_DEVICES=" + cuda_visible + " makes " +
                               std::to_string(visible->size()) + " visible"};
}

GpuPool host_gpu_pool(const std::string& flag) {
  const bool detect = (flag.empty() || flag == "auto") &&
                      (std::getenv("KILN_GPUS") == nullptr || std::string(std::getenv("KILN_GPUS")) == "auto");
  return resolve_gpu_pool(flag, std::getenv("KILN_GPUS"), detect ? detect_nvidia_gpus() : std::vector<int>{},
                          std::getenv("CUDA_VISIBLE_DEVICES"));
}

std::vector<fs::path> parse_ldconfig_driver_libraries(const std::string& output) {
#if defined(__x86_64__)
  const std::string arch = "x86-64";
#elif defined(__aarch64__)
  const std::string arch = "AArch64";
#else
  const std::string arch;
#endif
  std::vector<fs::path> libraries;
  std::set<std::string> seen;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    // "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"
    const auto arrow = line.find(" => ");
    const auto open = line.find(" (");
    if (arrow == std::string::npos || open == std::string::npos || open > arrow) continue;
    const std::string name = trimmed(line.substr(0, open));
    const std::string tags = line.substr(open + 2, arrow - open - 2);
    const std::string path = trimmed(line.substr(arrow + 4));
    const bool driver = name.rfind("libcuda.so", 0) == 0 || (name.rfind("libnvidia-", 0) == 0 &&
                                                             name.find(".so") != std::string::npos);
    if (!driver || path.empty() || path[0] != '/') continue;
    if (!arch.empty() && tags.find(arch) == std::string::npos) continue;
    if (seen.insert(path).second) libraries.emplace_back(path);
  }
  return libraries;
}

}  // namespace kiln::host

// The /etc of an `image: host` container: see container_rootfs.hpp.
#include "container_rootfs.hpp"

#include <fstream>
#include <stdexcept>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

void write_etc_file(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + file.string());
}

std::string passwd(const ContainerUser& user) {
  std::string text =
      "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
  if (user.uid != 0 && user.uid != 65534)
    text +=
        "kiln:x:" + std::to_string(user.uid) + ":" + std::to_string(user.gid) + ":kiln step:/tmp:/usr/sbin/nologin\n";
  return text;
}

std::string group(const ContainerUser& user) {
  std::string text = "root:x:0:\nnogroup:x:65534:\n";
  if (user.gid != 0 && user.gid != 65534) text += "kiln:x:" + std::to_string(user.gid) + ":\n";
  return text;
}

}  // namespace

const std::vector<std::string>& host_etc_entries() {
  static const std::vector<std::string> entries{"ld.so.cache", "alternatives", "ssl/certs", "ssl/openssl.cnf",
                                                "localtime",   "timezone",     "protocols", "services",
                                                "os-release",  "mtab"};
  return entries;
}

std::vector<BundleMount> write_host_etc(const fs::path& rootfs, const ContainerUser& user, const std::string& hostname,
                                        bool host_network) {
  const fs::path etc = rootfs / "etc";
  fs::create_directories(etc);
  write_etc_file(etc / "passwd", passwd(user));
  write_etc_file(etc / "group", group(user));
  write_etc_file(etc / "hostname", hostname + "\n");
  write_etc_file(etc / "nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n");
  std::error_code ec;
  if (host_network && fs::exists("/etc/hosts", ec) && fs::exists("/etc/resolv.conf", ec)) {
    fs::copy_file("/etc/hosts", etc / "hosts", fs::copy_options::overwrite_existing);
    fs::copy_file("/etc/resolv.conf", etc / "resolv.conf", fs::copy_options::overwrite_existing);
  } else {
    write_etc_file(etc / "hosts", "127.0.0.1 localhost " + hostname + "\n::1 localhost ip6-localhost ip6-loopback\n");
    write_etc_file(etc / "resolv.conf", "# network: none\n");
  }
  std::vector<BundleMount> binds;
  for (const auto& entry : host_etc_entries()) {
    const fs::path host = fs::path("/etc") / entry;
    const auto status = fs::symlink_status(host, ec);
    if (ec || !fs::exists(status)) continue;
    fs::create_directories((etc / entry).parent_path());
    if (fs::is_symlink(status))
      fs::create_symlink(fs::read_symlink(host), etc / entry);  // resolved inside, against the bound /usr
    else if (fs::is_regular_file(status) || fs::is_directory(status))
      binds.push_back({host, false});
  }
  return binds;
}

}  // namespace kiln::host

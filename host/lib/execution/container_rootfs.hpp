// The /etc of an `image: host` container: not the host's (its shadow, keys
// and configuration are none of a step's business) but a few generated files
// and read-only binds of what programs need to start. See docs/containers.md.
#pragma once

#include <kiln/host/container_bundle.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::host {

// Writes ROOTFS/etc: passwd and group (root, nobody, and `user` when it is
// neither), hosts, hostname, resolv.conf and nsswitch.conf (with the host's
// network: the host's hosts and resolv.conf), and the host's symlinks among
// the entries of host_etc_entries(). Returns the others that exist on the
// host, to be bound read-only at their own paths.
std::vector<BundleMount> write_host_etc(const std::filesystem::path& rootfs, const ContainerUser& user,
                                        const std::string& hostname, bool host_network);

// The host's /etc entries a step may see: the dynamic linker's cache, the
// Debian alternatives (libblas.so.3 and friends point through them), CA
// certificates and the OpenSSL configuration, time zone, protocols and
// services, os-release and mtab.
const std::vector<std::string>& host_etc_entries();

}  // namespace kiln::host

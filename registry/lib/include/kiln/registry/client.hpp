// The registry client: HTTP calls to a registry server, version resolution
// (semver ranges, dependencies, the yanked rule) and atomic installation
// into the user's plugin directory.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/registry/keys.hpp>
#include <kiln/registry/package.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kiln::registry {

// How the client talks to a registry (docs/registry.md, docs/limits.md).
struct ClientOptions {
  // PEM file of the CAs trusted for https:// registries ("": the system's).
  // Certificates and host names are always verified.
  std::string ca_file;
  // Allows plain http:// to a host that is not this machine (tokens and
  // packages then travel unprotected). http:// to loopback is always allowed.
  bool insecure = false;
  uint64_t max_answer_bytes = 256ull << 20;  // largest download or JSON answer accepted
  int timeout_seconds = 60;                   // per network read or write
};

// Talks to one registry (https://HOST:PORT, or http:// to loopback or with
// `insecure`); the constructor refuses other URLs. Errors throw
// std::runtime_error quoting the server's {"error": ...} reason and the HTTP status.
class RegistryClient {
 public:
  explicit RegistryClient(std::string url, ClientOptions options = {});
  host::Json search(const std::string& term) const;
  // The package and its versions; nullopt when the registry has no such package.
  std::optional<host::Json> show(const std::string& name) const;
  void download(const std::string& name, const std::string& version, const std::filesystem::path& to) const;
  host::Json publish(const std::filesystem::path& archive, const std::string& token) const;
  host::Json yank(const std::string& name, const std::string& version, const std::string& token, bool yank) const;
  const std::string& url() const { return url_; }
  const ClientOptions& options() const { return options_; }

 private:
  std::string url_;
  ClientOptions options_;
};

// The registry URL: `flag`, else $KILN_REGISTRY, else "registry" in the user
// config (<config>/kiln/registry.json). Throws when none is set.
std::string registry_url(const std::string& flag);
// The publishing token: $KILN_REGISTRY_TOKEN, else "token" in the user config.
std::string registry_token();
std::filesystem::path user_config_file();

// Where installed packages live: libraries in <data>/plugins (on the plugin
// search path), records in <data>/registry/installed/<name>.json.
struct InstallDirs {
  std::filesystem::path plugins, records, staging;
  static InstallDirs user_default();
};

struct InstalledPackage {
  PackageManifest manifest;
  std::filesystem::path library;         // empty for a package of component files only
  std::filesystem::path components_dir;  // its component files (NAME-VERSION.components); empty for none
  std::string signer, source;
};
std::vector<InstalledPackage> list_installed(const InstallDirs& dirs);
// Removes an installed package; false when it is not installed.
bool remove_installed(const InstallDirs& dirs, const std::string& name);

// Whether a version range pins one exact version ("1.2.3" or "=1.2.3").
bool is_exact_pin(const std::string& range);

// The package that provides `component` ("" when none does). Throws when
// several packages do.
std::string package_providing(const RegistryClient& client, const std::string& component);

struct Resolved {
  std::string name, version;
  std::string required_by;  // "" for what the user asked for
  std::string range;        // the range that chose it ("" or "*": any)
};
// Resolves NAME@RANGE and its dependencies against the registry (NAME may
// also be a component that exactly one package provides): the highest
// version each range accepts that is not yanked (a yanked one only when
// pinned exactly) and suits this host's ABI and platform. Packages already
// installed in a matching version are kept. Returns what to install, in
// dependency order (dependencies first).
std::vector<Resolved> resolve(const RegistryClient& client, const std::string& name, const std::string& range,
                              const InstallDirs& dirs);

// Checks an archive (signature by a trusted key, digests, ABI, platform) and
// installs it atomically; nothing is left behind when it throws.
InstalledPackage install_archive(const std::filesystem::path& archive, const std::vector<Key>& trusted,
                                 const InstallDirs& dirs, const std::string& source);

// Downloads, verifies and installs everything `plan` names; all are verified
// before the first is installed. Each download must be what was resolved:
// the registry's current entry for NAME VERSION is fetched again (a version
// yanked since resolution is refused unless its range pins it exactly), the
// archive's sha256 must equal the one the registry lists, and the signed
// manifest must name exactly NAME and VERSION (no substitution by another
// trusted package, no rollback to an older version).
std::vector<InstalledPackage> install_plan(const RegistryClient& client, const std::vector<Resolved>& plan,
                                           const std::vector<Key>& trusted, const InstallDirs& dirs);

}  // namespace kiln::registry

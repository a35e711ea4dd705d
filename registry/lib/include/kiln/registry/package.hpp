// Plugin packages (docs/registry.md): a .kpkg archive holding
//   kiln-package.json  the manifest, with the sha256 of every other file
//   signature.json     an Ed25519 signature over kiln-package.json's bytes
//   lib/<library>.so   the plugin library, and/or
//   components/...     component files (kind: Component) and the files they name
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/semver.hpp>
#include <kiln/registry/archive.hpp>
#include <kiln/registry/keys.hpp>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::registry {

inline constexpr const char* kManifestFile = "kiln-package.json";
inline constexpr const char* kSignatureFile = "signature.json";
inline constexpr const char* kPackageExtension = ".kpkg";
// A package of component files only runs on any host (no library, no ABI).
inline constexpr const char* kAnyPlatform = "any";
// Where component files and the files they name lie inside a package.
inline constexpr const char* kComponentsDir = "components";
inline constexpr std::size_t kMaxComponentFiles = 64;

struct PackageFile {
  std::string path;  // relative, '/' separated
  std::string sha256;
  uint64_t size = 0;
};

struct PackageManifest {
  std::string name;  // lower-case dotted words, e.g. acme.scaler
  host::Version version;
  uint32_t abi_major = 0, abi_minor = 0;
  std::string platform;  // e.g. linux-x86_64; "any" for a package without a library
  std::string library;   // relative path of the plugin library, e.g. lib/acme_scaler.so; "" for none
  // Component files (docs/command-components.md), e.g. components/clean.yaml:
  // each directly in components/, the files they name beside or below them.
  std::vector<std::string> component_files;
  std::vector<std::string> components;
  std::map<std::string, std::string> dependencies;  // package name -> version range
  std::string license, description;
  std::vector<PackageFile> files;  // every file but the manifest and signature

  host::Json to_json() const;
  std::string file_name() const { return name + "-" + version.str() + kPackageExtension; }
};

// A manifest that breaks the rules; the message names the file and field.
class PackageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses a manifest; `where` names its source in errors. `need_files`:
// the "files" list must be there (a packed manifest), otherwise it may be absent.
PackageManifest parse_package_manifest(const host::Json& json, const std::string& where, bool need_files);

// The platform this host runs on, e.g. linux-x86_64.
std::string host_platform();

// Packs DIR (its kiln-package.json, the library it names and its component
// files with the files they name) into `out_dir`/<name>-<version>.kpkg,
// signed with `key`. `fill` completes the manifest before digests are taken
// (the CLI fills ABI and components from a scan of the library); it sees the
// library's components only, and is not called for a package without a
// library. Component files are read here (their names join `components`).
// Returns the archive's path.
std::filesystem::path pack(
    const std::filesystem::path& dir, const Key& key, const std::filesystem::path& out_dir,
    const std::function<void(PackageManifest&, const std::filesystem::path& library)>& fill = {});

// A package's manifest and signature, checked.
struct SignedManifest {
  PackageManifest manifest;
  std::string signer_id;
};

// Checks a package's kiln-package.json (`manifest_text`, with its files list)
// and signature.json (`signature_text`): both JSON, the manifest's fields,
// an Ed25519 signature over the manifest's exact bytes, and, with `trusted`,
// a signer among those keys. `where` names the package in the PackageError thrown.
SignedManifest verify_manifest(const std::string& manifest_text, const std::string& signature_text,
                               const std::string& where, const std::vector<Key>* trusted);

// A package extracted and checked.
struct VerifiedPackage {
  PackageManifest manifest;
  std::string signer_id;
  std::filesystem::path dir;  // where it was extracted
};

// Extracts `archive` into `staging` (must not exist) and checks it: safe
// paths, exactly the files the manifest lists with matching digests, a
// valid signature, and component files that parse, provide components the
// manifest lists, and are all the YAML files directly in components/. With
// `trusted` the signer must be one of those keys; without, any valid
// signature counts (the registry server's check). On failure `staging` is
// removed and PackageError/ArchiveError thrown.
VerifiedPackage open_package(const std::filesystem::path& archive, const std::filesystem::path& staging,
                             const std::vector<Key>* trusted, const ExtractLimits& limits = {});

}  // namespace kiln::registry

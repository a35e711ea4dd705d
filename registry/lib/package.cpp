#include <kiln/registry/package.hpp>

#include <kiln/host/files.hpp>
#include <kiln/host/manifest.hpp>

#include <algorithm>
#include <set>

namespace kiln::registry {
namespace fs = std::filesystem;
using host::Json;

namespace {

[[noreturn]] void bad(const std::string& where, const std::string& field, const std::string& why) {
  throw PackageError(where + ": field '" + field + "' " + why);
}

std::string need_string(const Json& j, const std::string& where, const std::string& key, bool required = true,
                        const std::string& label = {}) {
  const std::string& field = label.empty() ? key : label;
  if (!j.contains(key)) {
    if (required) bad(where, field, "is missing");
    return {};
  }
  if (!j[key].is_string()) bad(where, field, "must be a string");
  return j[key].get<std::string>();
}

// "1.2" -> {1, 2}
bool parse_abi(const std::string& text, uint32_t& major, uint32_t& minor) {
  const auto dot = text.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == text.size()) return false;
  try {
    size_t used = 0;
    major = static_cast<uint32_t>(std::stoul(text.substr(0, dot), &used));
    if (used != dot) return false;
    minor = static_cast<uint32_t>(std::stoul(text.substr(dot + 1), &used));
    return used == text.size() - dot - 1;
  } catch (const std::exception&) {
    return false;
  }
}

bool safe_relative(const std::string& path) {
  if (path.empty() || path.front() == '/') return false;
  for (const auto& part : fs::path(path))
    if (part == ".." || part == ".") return false;
  return true;
}

}  // namespace

std::string host_platform() {
#if defined(__x86_64__)
  return "linux-x86_64";
#elif defined(__aarch64__)
  return "linux-aarch64";
#else
  return "linux-unknown";
#endif
}

Json PackageManifest::to_json() const {
  Json deps = Json::object();
  for (const auto& [n, range] : dependencies) deps[n] = range;
  Json j{{"name", name},
         {"version", version.str()},
         {"abi", std::to_string(abi_major) + "." + std::to_string(abi_minor)},
         {"platform", platform},
         {"library", library},
         {"components", components},
         {"dependencies", deps},
         {"license", license},
         {"description", description}};
  if (!files.empty()) {
    j["files"] = Json::array();
    for (const auto& f : files) j["files"].push_back(Json{{"path", f.path}, {"sha256", f.sha256}, {"size", f.size}});
  }
  return j;
}

PackageManifest parse_package_manifest(const Json& j, const std::string& where, bool need_files) {
  if (!j.is_object()) throw PackageError(where + ": the manifest must be a JSON object");
  PackageManifest m;
  m.name = need_string(j, where, "name");
  if (!host::is_component_name(m.name)) bad(where, "name", "'" + m.name + "' is not a package name (e.g. acme.scaler)");
  const auto version = host::Version::parse(need_string(j, where, "version"));
  if (!version) bad(where, "version", "is not a semantic version (e.g. 1.2.3)");
  m.version = *version;
  const std::string abi = need_string(j, where, "abi", need_files);
  if (!abi.empty() && !parse_abi(abi, m.abi_major, m.abi_minor)) bad(where, "abi", "must look like \"1.2\"");
  m.platform = need_string(j, where, "platform", need_files);
  m.library = need_string(j, where, "library");
  if (!safe_relative(m.library)) bad(where, "library", "must be a relative path inside the package");
  if (j.contains("components")) {
    if (!j["components"].is_array()) bad(where, "components", "must be a list of component names");
    for (const auto& c : j["components"]) {
      if (!c.is_string() || !host::is_component_name(c.get<std::string>()))
        bad(where, "components", "holds something that is not a component name");
      m.components.push_back(c.get<std::string>());
    }
  }
  if (need_files && m.components.empty()) bad(where, "components", "must name at least one component");
  if (j.contains("dependencies")) {
    if (!j["dependencies"].is_object()) bad(where, "dependencies", "must map package names to version ranges");
    for (const auto& [n, range] : j["dependencies"].items()) {
      if (!host::is_component_name(n)) bad(where, "dependencies", "'" + n + "' is not a package name");
      if (!range.is_string() || !host::VersionRange::parse(range.get<std::string>()))
        bad(where, "dependencies." + n, "is not a version range (e.g. ^1.2)");
      m.dependencies[n] = range.get<std::string>();
    }
  }
  m.license = need_string(j, where, "license", false);
  m.description = need_string(j, where, "description", false);
  if (j.contains("files")) {
    if (!j["files"].is_array()) bad(where, "files", "must be a list");
    for (const auto& f : j["files"]) {
      if (!f.is_object()) bad(where, "files", "entries must be objects");
      PackageFile file;
      file.path = need_string(f, where, "path", true, "files[].path");
      file.sha256 = need_string(f, where, "sha256", true, "files[].sha256");
      if (!f.contains("size") || !f["size"].is_number_unsigned()) bad(where, "files[].size", "must be a byte count");
      file.size = f["size"].get<uint64_t>();
      if (!safe_relative(file.path)) bad(where, "files[].path", "'" + file.path + "' is not a safe relative path");
      if (file.sha256.size() != 64) bad(where, "files[].sha256", "must be 64 hex digits");
      m.files.push_back(file);
    }
  } else if (need_files) {
    bad(where, "files", "is missing");
  }
  return m;
}

fs::path pack(const fs::path& dir, const Key& key, const fs::path& out_dir,
              const std::function<void(PackageManifest&, const fs::path&)>& fill) {
  const fs::path manifest_path = dir / kManifestFile;
  Json source;
  try {
    source = Json::parse(host::read_file(manifest_path));
  } catch (const Json::exception& e) {
    throw PackageError(manifest_path.string() + ": not valid JSON: " + e.what());
  }
  PackageManifest m = parse_package_manifest(source, manifest_path.string(), false);
  const fs::path library = dir / m.library;
  if (!fs::is_regular_file(library))
    bad(manifest_path.string(), "library", "names " + library.string() + ", which is not a file");
  if (m.platform.empty()) m.platform = host_platform();
  if (fill) fill(m, library);
  if (m.components.empty()) bad(manifest_path.string(), "components", "must name at least one component");
  if (m.abi_major == 0) bad(manifest_path.string(), "abi", "is missing");
  const std::string library_bytes = host::read_file(library);
  m.library = "lib/" + library.filename().string();
  m.files = {{m.library, host::sha256_hex(library_bytes), library_bytes.size()}};
  const std::string manifest_text = m.to_json().dump(2) + "\n";
  const Json signature{{"algorithm", "ed25519"},
                       {"key_id", key.id()},
                       {"public_key", key.public_hex()},
                       {"signature", key.sign_hex(manifest_text)}};
  const fs::path out = out_dir / m.file_name();
  write_archive(out, {{kManifestFile, manifest_text, {}},
                      {kSignatureFile, signature.dump(2) + "\n", {}},
                      {m.library, library_bytes, {}}});
  return out;
}

SignedManifest verify_manifest(const std::string& manifest_text, const std::string& signature_text,
                               const std::string& where, const std::vector<Key>* trusted) {
  Json manifest_json, signature;
  try {
    manifest_json = Json::parse(manifest_text);
    signature = Json::parse(signature_text);
  } catch (const Json::exception& e) {
    throw PackageError(where + ": manifest or signature is not valid JSON: " + e.what());
  }
  SignedManifest out;
  out.manifest = parse_package_manifest(manifest_json, where + ": " + kManifestFile, true);
  // The signature first: it vouches for the digests that vouch for the files.
  const std::string sig_where = where + ": " + kSignatureFile;
  // A field's text; "" when it is absent (or the signature no object), an error when it is no string.
  const auto field = [&](const char* name) -> std::string {
    const auto it = signature.is_object() ? signature.find(name) : signature.end();
    if (it == signature.end()) return "";
    if (!it->is_string()) throw PackageError(sig_where + ": field '" + name + "' must be a string");
    return it->get<std::string>();
  };
  if (!signature.is_object() || field("algorithm") != "ed25519")
    throw PackageError(sig_where + ": field 'algorithm' must be \"ed25519\"");
  const std::string public_hex = field("public_key");
  std::optional<Key> signer;
  try {
    signer = Key::from_public_hex(public_hex);
  } catch (const std::exception& e) {
    throw PackageError(sig_where + ": field 'public_key': " + e.what());
  }
  if (!signer->verify_hex(manifest_text, field("signature")))
    throw PackageError(where + ": bad signature: the manifest was not signed by key " + signer->id() +
                       " or was changed after signing");
  out.signer_id = signer->id();
  if (trusted != nullptr &&
      std::none_of(trusted->begin(), trusted->end(), [&](const Key& k) { return k.public_hex() == public_hex; }))
    throw PackageError(where + ": signed by untrusted key " + signer->id() +
                       "; if you trust the publisher, add their public key with 'kiln keys trust FILE'");
  return out;
}

VerifiedPackage open_package(const fs::path& archive, const fs::path& staging, const std::vector<Key>* trusted,
                             const ExtractLimits& limits) {
  const std::string where = archive.filename().string();
  const auto files = extract_archive(archive, staging, limits);
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      if (!dir.empty()) fs::remove_all(dir, ec);
    }
  } cleanup{staging};
  const std::set<std::string> present(files.begin(), files.end());
  if (!present.count(kManifestFile)) throw PackageError(where + ": no " + std::string(kManifestFile));
  if (!present.count(kSignatureFile)) throw PackageError(where + ": unsigned (no " + std::string(kSignatureFile) + ")");
  auto [manifest, signer_id] = verify_manifest(host::read_file(staging / kManifestFile),
                                               host::read_file(staging / kSignatureFile), where, trusted);
  VerifiedPackage out;
  out.manifest = std::move(manifest);
  out.signer_id = std::move(signer_id);
  std::set<std::string> listed{kManifestFile, kSignatureFile};
  for (const auto& f : out.manifest.files) {
    listed.insert(f.path);
    if (!present.count(f.path)) throw PackageError(where + ": listed file '" + f.path + "' is missing");
    const fs::path p = staging / f.path;
    if (fs::file_size(p) != f.size || host::sha256_file(p) != f.sha256)
      throw PackageError(where + ": '" + f.path +
                         "' does not match its sha256 digest in the manifest (altered after signing?)");
  }
  for (const auto& f : files)
    if (!listed.count(f)) throw PackageError(where + ": '" + f + "' is not listed in the manifest");
  if (!listed.count(out.manifest.library))
    throw PackageError(where + ": the library '" + out.manifest.library + "' is not in the files list");
  out.dir = staging;
  cleanup.dir.clear();
  return out;
}

}  // namespace kiln::registry

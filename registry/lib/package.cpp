#include <kiln/registry/package.hpp>

#include <kiln/host/component_file.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/manifest.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/spec.hpp>

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

// `component_files`: at most kMaxComponentFiles distinct .yaml/.yml names,
// each a file directly in components/ (`packed`: a manifest with its files
// list) or directly in the package directory (the manifest `kiln plugin
// pack` reads).
std::vector<std::string> component_file_list(const Json& j, const std::string& where, bool packed) {
  std::vector<std::string> out;
  if (!j.contains("component_files")) return out;
  const Json& list = j["component_files"];
  if (!list.is_array()) bad(where, "component_files", "must be a list of component file paths");
  if (list.size() > kMaxComponentFiles)
    bad(where, "component_files", "names more than " + std::to_string(kMaxComponentFiles) + " files");
  for (const auto& entry : list) {
    if (!entry.is_string()) bad(where, "component_files", "holds something that is not a path");
    const std::string path = entry.get<std::string>();
    const fs::path p(path);
    const bool placed = packed ? p.parent_path() == kComponentsDir : !p.has_parent_path();
    if (!safe_relative(path) || !placed || !host::is_component_file(p))
      bad(where, "component_files",
          "'" + path + "' is not a .yaml or .yml file directly in " +
              (packed ? std::string(kComponentsDir) + "/" : std::string("the package directory")));
    if (std::find(out.begin(), out.end(), path) != out.end())
      bad(where, "component_files", "lists '" + path + "' twice");
    out.push_back(path);
  }
  return out;
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
  Json j{{"name", name},         {"version", version.str()}, {"platform", platform},      {"components", components},
         {"dependencies", deps}, {"license", license},       {"description", description}};
  // A package of component files only has neither library nor ABI.
  if (!library.empty()) {
    j["abi"] = std::to_string(abi_major) + "." + std::to_string(abi_minor);
    j["library"] = library;
  }
  if (!component_files.empty()) j["component_files"] = component_files;
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
  m.library = need_string(j, where, "library", false);
  if (j.contains("library") && !safe_relative(m.library))
    bad(where, "library", "must be a relative path inside the package");
  m.component_files = component_file_list(j, where, need_files || j.contains("files"));
  if (m.library.empty() && m.component_files.empty())
    bad(where, "library", "is missing (a package holds a library, component files, or both)");
  const std::string abi = need_string(j, where, "abi", need_files && !m.library.empty());
  if (!abi.empty() && !parse_abi(abi, m.abi_major, m.abi_minor)) bad(where, "abi", "must look like \"1.2\"");
  m.platform = need_string(j, where, "platform", need_files);
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

namespace {

// A package directory's component files, read: their components' names and
// what goes into the archive (each file and the files it names, under
// components/, by their path relative to the package directory).
struct PackedCommands {
  std::vector<std::string> names;
  std::map<std::string, fs::path> entries;  // path in the package -> source file
};

PackedCommands read_component_files(const fs::path& dir, PackageManifest& m, const std::string& where) {
  PackedCommands out;
  const fs::path root = fs::absolute(dir).lexically_normal();
  std::vector<std::string> packed;
  for (const auto& name : m.component_files) {
    host::ComponentFile component;
    try {
      component = host::parse_component_file(root / name);
    } catch (const host::SpecError& e) {
      bad(where, "component_files", "names '" + name + "', which has problems:\n" + e.what());
    }
    const std::string& provided = component.manifest.name;
    if (std::find(out.names.begin(), out.names.end(), provided) != out.names.end())
      bad(where, "component_files", "holds two files for component '" + provided + "'");
    out.names.push_back(provided);
    const std::string in_package = std::string(kComponentsDir) + "/" + name;
    out.entries[in_package] = root / name;
    packed.push_back(in_package);
    for (const auto& file : component.implementation.files) {
      const fs::path relative = file.lexically_relative(root);
      const std::string path = std::string(kComponentsDir) + "/" + relative.generic_string();
      // Discovery reads every YAML file directly in an installed package's
      // components: one that is not a component file would be listed as broken.
      if (!relative.has_parent_path() && host::is_component_file(relative) &&
          std::find(m.component_files.begin(), m.component_files.end(), relative.string()) == m.component_files.end())
        bad(where, "component_files",
            "'" + name + "' names '" + relative.string() +
                "', a YAML file beside the component files that is not one; move it into a subdirectory");
      out.entries[path] = file;
    }
  }
  m.component_files = packed;
  return out;
}

}  // namespace

fs::path pack(const fs::path& dir, const Key& key, const fs::path& out_dir,
              const std::function<void(PackageManifest&, const fs::path&)>& fill) {
  const fs::path manifest_path = dir / kManifestFile;
  const std::string where = manifest_path.string();
  Json source;
  try {
    source = Json::parse(host::read_file(manifest_path));
  } catch (const Json::exception& e) {
    throw PackageError(where + ": not valid JSON: " + e.what());
  }
  PackageManifest m = parse_package_manifest(source, where, false);
  if (m.platform.empty()) m.platform = m.library.empty() ? kAnyPlatform : host_platform();
  const PackedCommands commands = read_component_files(dir, m, where);
  const auto is_command = [&](const std::string& name) {
    return std::find(commands.names.begin(), commands.names.end(), name) != commands.names.end();
  };
  std::vector<ArchiveEntry> payload;
  if (!m.library.empty()) {
    const fs::path library = dir / m.library;
    if (!fs::is_regular_file(library)) bad(where, "library", "names " + library.string() + ", which is not a file");
    // `fill` sees the library's own components only.
    PackageManifest own = m;
    own.components.erase(std::remove_if(own.components.begin(), own.components.end(), is_command),
                         own.components.end());
    if (fill) fill(own, library);
    if (own.components.empty()) bad(where, "components", "must name at least one component");
    if (own.abi_major == 0) bad(where, "abi", "is missing");
    m.abi_major = own.abi_major;
    m.abi_minor = own.abi_minor;
    m.components = own.components;
    m.library = "lib/" + library.filename().string();
    payload.emplace_back(m.library, host::read_file(library));
  } else {
    for (const auto& name : m.components)
      if (!is_command(name)) bad(where, "components", "names '" + name + "', which no component file provides");
    m.components.clear();
  }
  for (const auto& name : commands.names)
    if (std::find(m.components.begin(), m.components.end(), name) == m.components.end()) m.components.push_back(name);
  for (const auto& [path, file] : commands.entries) payload.emplace_back(path, host::read_file(file));
  m.files.clear();
  for (const auto& entry : payload)
    m.files.push_back({entry.path, host::sha256_hex(entry.content), entry.content.size()});
  const std::string manifest_text = m.to_json().dump(2) + "\n";
  const Json signature{{"algorithm", "ed25519"},
                       {"key_id", key.id()},
                       {"public_key", key.public_hex()},
                       {"signature", key.sign_hex(manifest_text)}};
  const fs::path out = out_dir / m.file_name();
  std::vector<ArchiveEntry> entries{{kManifestFile, manifest_text}, {kSignatureFile, signature.dump(2) + "\n"}};
  for (auto& entry : payload) entries.push_back(std::move(entry));
  write_archive(out, entries);
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

namespace {

// A verified package's component files: listed, exactly the YAML files
// directly in components/, each parses (from the staging directory, so what
// it names is the package's own file) and provides a listed component.
void check_component_files(const PackageManifest& m, const std::vector<std::string>& files, const fs::path& staging,
                           const std::string& where) {
  const std::set<std::string> present(files.begin(), files.end());
  for (const auto& f : files) {
    const fs::path p(f);
    if (p.parent_path() == kComponentsDir && host::is_component_file(p) &&
        std::find(m.component_files.begin(), m.component_files.end(), f) == m.component_files.end())
      throw PackageError(where + ": '" + f + "' lies among the component files but is not listed in 'component_files'");
  }
  std::set<std::string> provided;
  for (const auto& name : m.component_files) {
    if (!present.count(name))
      throw PackageError(where + ": the component file '" + name + "' is not in the files list");
    host::ComponentFile component;
    try {
      component = host::parse_component_file(staging / name);
    } catch (const std::exception& e) {  // SpecError, or a named file unreadable
      throw PackageError(where + ": the component file '" + name + "' has problems:\n" + e.what());
    }
    const std::string& component_name = component.manifest.name;
    if (std::find(m.components.begin(), m.components.end(), component_name) == m.components.end())
      throw PackageError(where + ": the component file '" + name + "' provides '" + component_name +
                         "', which field 'components' does not list");
    if (!provided.insert(component_name).second)
      throw PackageError(where + ": two component files provide '" + component_name + "'");
  }
}

}  // namespace

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
  if (!out.manifest.library.empty() && !listed.count(out.manifest.library))
    throw PackageError(where + ": the library '" + out.manifest.library + "' is not in the files list");
  check_component_files(out.manifest, files, staging, where);
  out.dir = staging;
  cleanup.dir.clear();
  return out;
}

}  // namespace kiln::registry

#include <kiln/registry/client.hpp>

#include <kiln/plugin_api.h>
#include <kiln/host/files.hpp>
#include <kiln/host/paths.hpp>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SocketStream.h>
#include <Poco/URI.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

namespace kiln::registry {
namespace fs = std::filesystem;
using host::Json;
using host::RemoveOnExit;

namespace {

std::string random_suffix() {
  unsigned char raw[6];
  RAND_bytes(raw, sizeof raw);
  std::string hex;
  for (const unsigned char c : raw) {
    hex += "0123456789abcdef"[c >> 4];
    hex += "0123456789abcdef"[c & 15];
  }
  return hex;
}

struct Answer {
  int status = 0;
  std::string body;
};

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  Poco::Net::IPAddress ip;
  return Poco::Net::IPAddress::tryParse(host, ip) && ip.isLoopback();
}

std::unique_ptr<Poco::Net::HTTPClientSession> open_session(const Poco::URI& uri, const ClientOptions& options) {
  if (uri.getScheme() != "https") return std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
  Poco::Net::Context::Ptr context;
  try {
    // VERIFY_STRICT: the server must present a certificate that chains to a
    // trusted CA; HTTPSClientSession then checks it names the host.
    context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", options.ca_file,
                                     Poco::Net::Context::VERIFY_STRICT, 9, options.ca_file.empty());
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot use CA file '" + options.ca_file + "': " + e.displayText());
  }
  return std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), context);
}

// Reads an answer body, refusing more than `limit` bytes.
std::string read_limited(std::istream& in, const Poco::Net::HTTPResponse& response, uint64_t limit,
                         const std::string& what) {
  const auto too_big = [&] {
    return std::runtime_error(what + " is larger than the client's limit of " + std::to_string(limit) +
                              " bytes; refused (raise it with --max-download-mb)");
  };
  if (response.hasContentLength() && response.getContentLength64() > 0 &&
      static_cast<uint64_t>(response.getContentLength64()) > limit)
    throw too_big();
  // With a Content-Length, exactly that many bytes (an early answer's socket is not cut to it).
  const bool sized = response.hasContentLength() && response.getContentLength64() >= 0;
  const uint64_t expected = sized ? static_cast<uint64_t>(response.getContentLength64()) : limit + 1;
  std::string body;
  char buffer[1 << 16];
  while (body.size() < expected) {
    const auto want = static_cast<std::streamsize>(std::min<uint64_t>(sizeof buffer, expected - body.size()));
    if (!in.read(buffer, want) && in.gcount() == 0) break;
    body.append(buffer, static_cast<size_t>(in.gcount()));
    if (body.size() > limit) throw too_big();
  }
  return body;
}

Answer call(const std::string& base, const ClientOptions& options, const std::string& method, const std::string& path,
            const std::string& body = {}, const std::string& token = {}) {
  const Poco::URI uri(base);
  Answer answer;
  try {
    const auto session = open_session(uri, options);
    session->setTimeout(Poco::Timespan(options.timeout_seconds, 0));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    if (!token.empty()) request.set("Authorization", "Bearer " + token);
    if (method == "POST") {
      request.setContentType("application/octet-stream");
      request.setContentLength64(static_cast<Poco::Int64>(body.size()));
    }
    std::ostream& out = session->sendRequest(request);
    // A server that refuses early (401, 403, 413) answers and closes without
    // reading the body: the write then fails, and the answer is what counts.
    std::string write_error;
    try {
      if (!body.empty()) out.write(body.data(), static_cast<std::streamsize>(body.size()));
      out.flush();
      if (!out) write_error = "the upload was cut short";
    } catch (const Poco::Exception& e) {
      write_error = e.displayText();
    }
    if (const Poco::Exception* failed = session->networkException(); failed != nullptr && write_error.empty())
      write_error = failed->displayText();
    Poco::Net::HTTPResponse response;
    std::unique_ptr<Poco::Net::SocketInputStream> early;
    std::istream* in = nullptr;
    if (write_error.empty()) {
      in = &session->receiveResponse(response);
    } else {
      // The session will not read after a failed write; the early answer is on the socket.
      early = std::make_unique<Poco::Net::SocketInputStream>(session->socket());
      try {
        response.read(*early);
      } catch (const Poco::Exception& e) {
        throw Poco::IOException(write_error + ", and no answer: " + e.displayText());
      }
      in = early.get();
    }
    answer.status = static_cast<int>(response.getStatus());
    answer.body = read_limited(*in, response, options.max_answer_bytes, "the answer to " + method + " " + path);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot reach the registry at " + base + ": " + e.displayText());
  }
  return answer;
}

[[noreturn]] void fail(const std::string& base, const Answer& answer) {
  std::string reason = answer.body;
  try {
    reason = Json::parse(answer.body).at("error").get<std::string>();
  } catch (const std::exception&) {
  }
  throw std::runtime_error("registry " + base + " answered " + std::to_string(answer.status) + ": " + reason);
}

Json ok_json(const std::string& base, const Answer& answer) {
  if (answer.status < 200 || answer.status >= 300) fail(base, answer);
  return Json::parse(answer.body);
}

std::string encode(const std::string& text) {
  std::string out;
  Poco::URI::encode(text, "/?#&=+", out);
  return out;
}

Json read_config() {
  const fs::path file = user_config_file();
  if (!fs::exists(file)) return Json::object();
  try {
    return Json::parse(host::read_file(file));
  } catch (const Json::exception& e) {
    throw std::runtime_error(file.string() + ": not valid JSON: " + e.what());
  }
}

bool abi_fits(const PackageManifest& m) {
  return m.abi_major == KILN_ABI_VERSION_MAJOR && m.abi_minor <= KILN_ABI_VERSION_MINOR;
}

std::string abi_problem(const PackageManifest& m) {
  if (m.library.empty())  // component files only: no ABI; "any" platform unless the publisher narrowed it
    return m.platform == kAnyPlatform || m.platform == host_platform()
               ? ""
               : "is built for " + m.platform + ", this host is " + host_platform();
  if (!abi_fits(m))
    return "needs plugin ABI " + std::to_string(m.abi_major) + "." + std::to_string(m.abi_minor) + ", this kiln has " +
           std::to_string(KILN_ABI_VERSION_MAJOR) + "." + std::to_string(KILN_ABI_VERSION_MINOR);
  if (m.platform != host_platform()) return "is built for " + m.platform + ", this host is " + host_platform();
  return {};
}

fs::path record_of(const InstallDirs& dirs, const std::string& name) {
  return dirs.records / (name + ".json");
}

}  // namespace

RegistryClient::RegistryClient(std::string url, ClientOptions options)
    : url_(std::move(url)), options_(std::move(options)) {
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
  Poco::URI uri;
  try {
    uri = Poco::URI(url_);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("registry URL '" + url_ + "' is not a URL: " + e.displayText());
  }
  if (uri.getScheme() == "https") return;
  if (uri.getScheme() != "http" || uri.getHost().empty())
    throw std::runtime_error("registry URL '" + url_ + "' must start with https:// (or http:// to this machine)");
  if (!is_loopback(uri.getHost()) && !options_.insecure)
    throw std::runtime_error("registry URL '" + url_ + "' is plain HTTP to another machine: tokens and packages would " +
                             "travel unprotected; use https:// (with --ca-file for a private CA) or pass --insecure");
}

Json RegistryClient::search(const std::string& term) const {
  return ok_json(url_, call(url_, options_, "GET", "/api/v1/search?q=" + encode(term)));
}

std::optional<Json> RegistryClient::show(const std::string& name) const {
  const Answer answer = call(url_, options_, "GET", "/api/v1/packages/" + encode(name));
  if (answer.status == 404) return std::nullopt;
  return ok_json(url_, answer);
}

void RegistryClient::download(const std::string& name, const std::string& version, const fs::path& to) const {
  const Answer answer = call(url_, options_, "GET", "/api/v1/packages/" + encode(name) + "/" + encode(version) + "/download");
  if (answer.status != 200) fail(url_, answer);
  host::write_file_atomic(to, answer.body);
}

Json RegistryClient::publish(const fs::path& archive, const std::string& token) const {
  return ok_json(url_, call(url_, options_, "POST", "/api/v1/packages", host::read_file(archive), token));
}

Json RegistryClient::yank(const std::string& name, const std::string& version, const std::string& token,
                          bool yank) const {
  const std::string path = "/api/v1/packages/" + encode(name) + "/" + encode(version) + (yank ? "/yank" : "/unyank");
  return ok_json(url_, call(url_, options_, "POST", path, {}, token));
}

fs::path user_config_file() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  const fs::path base = xdg && *xdg ? fs::path(xdg) : fs::path(home ? home : "/tmp") / ".config";
  return base / "kiln" / "registry.json";
}

std::string registry_url(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("KILN_REGISTRY"); env && *env) return env;
  const Json config = read_config();
  if (config.contains("registry") && config["registry"].is_string()) return config["registry"].get<std::string>();
  throw std::runtime_error("no registry given: pass --registry URL, set KILN_REGISTRY, or set \"registry\" in " +
                           user_config_file().string());
}

std::string registry_token() {
  if (const char* env = std::getenv("KILN_REGISTRY_TOKEN"); env && *env) return env;
  const Json config = read_config();
  if (config.contains("token") && config["token"].is_string()) return config["token"].get<std::string>();
  return {};
}

InstallDirs InstallDirs::user_default() {
  const fs::path data = host::user_data_dir();
  return {data / "plugins", data / "registry" / "installed", data / "registry" / "staging"};
}

std::vector<InstalledPackage> list_installed(const InstallDirs& dirs) {
  std::vector<InstalledPackage> out;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dirs.records, ec))
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const Json j = Json::parse(host::read_file(f));
    InstalledPackage p;
    p.manifest = parse_package_manifest(j.at("manifest"), f.string(), true);
    p.library = j.at("library").get<std::string>();
    p.components_dir = j.value("components_dir", "");
    p.signer = j.value("signer", "");
    p.source = j.value("source", "");
    out.push_back(std::move(p));
  }
  return out;
}

bool remove_installed(const InstallDirs& dirs, const std::string& name) {
  const fs::path record = record_of(dirs, name);
  if (!fs::exists(record)) return false;
  const Json j = Json::parse(host::read_file(record));
  // The files first: a record without them is harmless, the reverse is not.
  std::error_code ec;
  if (const std::string library = j.at("library").get<std::string>(); !library.empty()) fs::remove(library, ec);
  if (const std::string components = j.value("components_dir", ""); !components.empty()) fs::remove_all(components, ec);
  fs::remove(record);
  return true;
}

bool is_exact_pin(const std::string& range) {
  const std::string text = !range.empty() && range.front() == '=' ? range.substr(1) : range;
  return host::Version::parse(text).has_value();
}

std::string package_providing(const RegistryClient& client, const std::string& component) {
  std::string found;
  for (const auto& hit : client.search(component)) {
    const auto package = client.show(hit.at("name").get<std::string>());
    if (!package) continue;
    for (const auto& v : package->at("versions")) {
      const auto& components = v.at("manifest").at("components");
      if (std::find(components.begin(), components.end(), component) == components.end()) continue;
      if (!found.empty() && found != package->at("name"))
        throw std::runtime_error("component '" + component + "' is provided by several packages (" + found + ", " +
                                 package->at("name").get<std::string>() + "); install one by its package name");
      found = package->at("name").get<std::string>();
    }
  }
  return found;
}

std::vector<Resolved> resolve(const RegistryClient& client, const std::string& name, const std::string& range,
                              const InstallDirs& dirs) {
  std::map<std::string, host::Version> installed;
  for (const auto& p : list_installed(dirs)) installed.emplace(p.manifest.name, p.manifest.version);
  std::map<std::string, std::pair<host::Version, std::string>> chosen;  // name -> version, chosen for
  std::vector<Resolved> order;
  // Depth-first so dependencies land before their dependents.
  std::function<void(const std::string&, const std::string&, const std::string&)> visit = [&](const std::string& n,
                                                                                              const std::string& r,
                                                                                              const std::string& by) {
    const std::string text = r.empty() ? "*" : r;
    const auto parsed_range = host::VersionRange::parse(text);
    if (!parsed_range) throw std::runtime_error("'" + text + "' is not a version range (try ^1.2, ~1.2.3, =1.2.3)");
    const std::string who = by.empty() ? "" : " (needed by " + by + ")";
    if (const auto it = chosen.find(n); it != chosen.end()) {
      if (!parsed_range->matches(it->second.first))
        throw std::runtime_error("version conflict: " + n + " " + text + who + " but " + it->second.second + " needs " +
                                 it->second.first.str());
      return;
    }
    if (const auto it = installed.find(n); it != installed.end() && !by.empty() && parsed_range->matches(it->second))
      return;  // a dependency already satisfied
    auto package = client.show(n);
    if (!package && by.empty()) {  // NAME may be a component: find the package that provides it
      const std::string provider = package_providing(client, n);
      if (!provider.empty()) {
        std::cerr << "component " << n << " is provided by package " << provider << "\n";
        visit(provider, r, by);
        return;
      }
    }
    if (!package) throw std::runtime_error("no package '" + n + "' in registry " + client.url() + who);
    const bool pinned = is_exact_pin(text);
    std::optional<host::Version> best;
    Json best_manifest;
    std::string rejected;
    for (const auto& v : package->at("versions")) {
      const auto version = host::Version::parse(v.at("version").get<std::string>());
      if (!version || !parsed_range->matches(*version)) continue;
      if (v.at("yanked").get<bool>() && !pinned) continue;
      const auto m = parse_package_manifest(v.at("manifest"), n + " " + version->str(), false);
      if (const auto problem = abi_problem(m); !problem.empty()) {
        rejected = " (" + n + " " + version->str() + " " + problem + ")";
        continue;
      }
      if (!best || *best < *version) {
        best = version;
        best_manifest = v.at("manifest");
      }
    }
    if (!best)
      throw std::runtime_error("no usable version of '" + n + "' matches '" + text + "'" + who + rejected +
                               (pinned ? "" : "; yanked versions are only installed when pinned exactly"));
    chosen.emplace(n, std::make_pair(*best, by.empty() ? std::string("you") : by));
    if (best_manifest.contains("dependencies"))
      for (const auto& [dep, dep_range] : best_manifest["dependencies"].items())
        visit(dep, dep_range.get<std::string>(), n + " " + best->str());
    order.push_back({n, best->str(), by, text});
  };
  visit(name, range, "");
  return order;
}

namespace {

// Verifies the archive into a staging dir; the caller commits it.
VerifiedPackage verify_for_install(const fs::path& archive, const std::vector<Key>& trusted, const InstallDirs& dirs) {
  fs::create_directories(dirs.staging);
  VerifiedPackage package = open_package(archive, dirs.staging / ("extract-" + random_suffix()), &trusted);
  RemoveOnExit cleanup{package.dir};
  if (const auto problem = abi_problem(package.manifest); !problem.empty())
    throw PackageError(archive.filename().string() + ": " + package.manifest.name + " " +
                       package.manifest.version.str() + " " + problem);
  cleanup.path.clear();
  return package;
}

// Copies the directory `from` to `to` (which must not exist), fsyncing each file.
void copy_tree_synced(const fs::path& from, const fs::path& to) {
  fs::create_directory(to);
  for (const auto& entry : fs::recursive_directory_iterator(from)) {
    const fs::path target = to / entry.path().lexically_relative(from);
    if (entry.is_directory()) {
      fs::create_directory(target);
    } else {
      fs::copy_file(entry.path(), target);
      host::fsync_path(target);
    }
  }
}

InstalledPackage commit(const VerifiedPackage& package, const InstallDirs& dirs, const std::string& source) {
  RemoveOnExit cleanup{package.dir};
  const auto& m = package.manifest;
  fs::create_directories(dirs.plugins);
  fs::create_directories(dirs.records);
  const std::string stem = m.name + "-" + m.version.str();
  const fs::path library = m.library.empty() ? fs::path() : dirs.plugins / (stem + ".so");
  const fs::path components =
      m.component_files.empty() ? fs::path() : dirs.plugins / (stem + host::kInstalledComponentsSuffix);
  // Temporary names without ".so" or ".components" (hidden), so no scan ever
  // sees a half-copied library or a part of the component files.
  RemoveOnExit temp_library, temp_components, replaced_components;
  if (!library.empty()) {
    temp_library.path = dirs.plugins / ("." + m.name + ".installing-" + random_suffix());
    fs::copy_file(package.dir / m.library, temp_library.path);
    host::fsync_path(temp_library.path);
  }
  if (!components.empty()) {
    temp_components.path = dirs.plugins / ("." + m.name + ".installing-" + random_suffix());
    copy_tree_synced(package.dir / kComponentsDir, temp_components.path);
  }
  const fs::path record = record_of(dirs, m.name);
  Json previous = Json::object();
  if (fs::exists(record)) previous = Json::parse(host::read_file(record));
  const Json entry{{"manifest", m.to_json()},
                   {"library", library.string()},
                   {"components_dir", components.string()},
                   {"signer", package.signer_id},
                   {"source", source}};
  if (!library.empty()) {
    fs::rename(temp_library.path, library);
    temp_library.path.clear();
  }
  if (!components.empty()) {
    if (fs::exists(components)) {  // the same version again: a directory cannot be renamed over another
      replaced_components.path = dirs.plugins / ("." + m.name + ".replaced-" + random_suffix());
      fs::rename(components, replaced_components.path);
    }
    fs::rename(temp_components.path, components);
    temp_components.path.clear();
  }
  try {
    host::write_file_atomic(record, entry.dump(2) + "\n");
  } catch (...) {
    std::error_code ec;
    if (!library.empty()) fs::remove(library, ec);
    if (!components.empty()) fs::remove_all(components, ec);
    throw;
  }
  std::error_code ec;
  if (const std::string old = previous.value("library", ""); !old.empty() && old != library.string())
    fs::remove(old, ec);
  if (const std::string old = previous.value("components_dir", ""); !old.empty() && old != components.string())
    fs::remove_all(old, ec);
  InstalledPackage out;
  out.manifest = m;
  out.library = library;
  out.components_dir = components;
  out.signer = package.signer_id;
  out.source = source;
  return out;
}

}  // namespace

InstalledPackage install_archive(const fs::path& archive, const std::vector<Key>& trusted, const InstallDirs& dirs,
                                 const std::string& source) {
  const VerifiedPackage package = verify_for_install(archive, trusted, dirs);
  std::set<std::string> have;
  for (const auto& p : list_installed(dirs))
    for (const auto& [dep, range] : package.manifest.dependencies)
      if (p.manifest.name == dep && host::VersionRange::parse(range)->matches(p.manifest.version)) have.insert(dep);
  for (const auto& [dep, range] : package.manifest.dependencies)
    if (!have.count(dep)) {
      std::error_code ec;
      fs::remove_all(package.dir, ec);
      throw PackageError(package.manifest.name + " needs " + dep + " " + range +
                         ", which is not installed; install it first (kiln plugin install " + dep + "@'" + range +
                         "')");
    }
  return commit(package, dirs, source);
}

namespace {

// The registry's current entry for a planned version; refuses one yanked
// since resolution unless the range pinned it exactly.
Json listed_version(const RegistryClient& client, const Resolved& item) {
  const auto package = client.show(item.name);
  if (package)
    for (const auto& v : package->at("versions"))
      if (v.value("version", "") == item.version) {
        if (v.value("yanked", false) && !is_exact_pin(item.range))
          throw std::runtime_error(item.name + " " + item.version + " is yanked; install it only by pinning it exactly (" +
                                   item.name + "@=" + item.version + ")");
        return v;
      }
  throw std::runtime_error("registry " + client.url() + " no longer lists " + item.name + " " + item.version);
}

}  // namespace

std::vector<InstalledPackage> install_plan(const RegistryClient& client, const std::vector<Resolved>& plan,
                                           const std::vector<Key>& trusted, const InstallDirs& dirs) {
  fs::create_directories(dirs.staging);
  const fs::path downloads = dirs.staging / ("download-" + random_suffix());
  RemoveOnExit cleanup{downloads};
  std::vector<VerifiedPackage> verified;
  try {
    for (const auto& item : plan) {
      const std::string what = item.name + " " + item.version;
      const Json listed = listed_version(client, item);
      const fs::path archive = downloads / (item.name + "-" + item.version + kPackageExtension);
      client.download(item.name, item.version, archive);
      const std::string digest = host::sha256_file(archive);
      if (digest != listed.value("sha256", ""))
        throw PackageError("registry " + client.url() + " served an archive for " + what + " whose sha256 " + digest +
                           " is not the " + listed.value("sha256", "") + " it lists; refused");
      verified.push_back(verify_for_install(archive, trusted, dirs));
      const auto& m = verified.back().manifest;
      if (m.name != item.name || m.version.str() != item.version)
        throw PackageError("registry " + client.url() + " served " + m.name + " " + m.version.str() + " (signed by " +
                           verified.back().signer_id + ") when " + what +
                           " was asked for; refused (a substituted or rolled-back package)");
    }
  } catch (...) {
    for (const auto& v : verified) {
      std::error_code ec;
      fs::remove_all(v.dir, ec);
    }
    throw;
  }
  std::vector<InstalledPackage> out;
  for (const auto& v : verified) out.push_back(commit(v, dirs, client.url()));
  return out;
}

}  // namespace kiln::registry

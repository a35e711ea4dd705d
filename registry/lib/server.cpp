#include <kiln/registry/server.hpp>

#include "private_file.hpp"

#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/manifest.hpp>
#include <kiln/registry/package.hpp>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <limits>
#include <mutex>
#include <sstream>

namespace kiln::registry {
namespace fs = std::filesystem;
using host::Json;
using namespace Poco::Data::Keywords;

namespace {

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size())) != 1)
    throw std::runtime_error("no random bytes");
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (const unsigned char c : raw) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return hex;
}

void register_connector() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Data::SQLite::Connector::registerConnector(); });
}

// Removes a path on scope exit.
struct RemoveOnExit {
  fs::path path;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

}  // namespace

struct RegistryStore::Db {
  explicit Db(const fs::path& file) : session("SQLite", file.string()) {}
  std::mutex mutex;
  Poco::Data::Session session;
};

RegistryStore::RegistryStore(fs::path root) : root_(std::move(root)) {
  fs::create_directories(root_ / "packages");
  fs::create_directories(root_ / "tmp");
  const fs::path secret_file = root_ / "secret";
  if (!fs::exists(secret_file)) write_private_file(secret_file, random_hex(32));
  secret_ = host::read_file(secret_file);
  register_connector();
  db_ = std::make_unique<Db>(root_ / "index.db");
  auto& s = db_->session;
  s << "PRAGMA journal_mode=WAL", now;
  s << "CREATE TABLE IF NOT EXISTS packages (name TEXT PRIMARY KEY, owner TEXT NOT NULL,"
       " description TEXT NOT NULL, components TEXT NOT NULL, created_at TEXT NOT NULL)",
      now;
  s << "CREATE TABLE IF NOT EXISTS versions (name TEXT NOT NULL REFERENCES packages(name), version TEXT NOT NULL,"
       " manifest TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, signer TEXT NOT NULL,"
       " yanked INTEGER NOT NULL DEFAULT 0, published_at TEXT NOT NULL, PRIMARY KEY (name, version))",
      now;
}

RegistryStore::~RegistryStore() = default;

std::string RegistryStore::create_token(const std::string& owner, int64_t valid_seconds) const {
  if (owner.empty() || owner.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-") != std::string::npos)
    throw std::runtime_error("owner '" + owner + "' must be a plain lower-case name (a-z, 0-9, '.', '_', '-')");
  Poco::JWT::Token token;
  token.setType("JWT");
  token.setSubject(owner);
  token.setIssuer("kiln-registry");
  token.setIssuedAt(Poco::Timestamp());
  token.payload().set("scope", std::string("publish"));
  if (valid_seconds != 0)
    token.setExpiration(Poco::Timestamp() + static_cast<Poco::Timestamp::TimeDiff>(valid_seconds) * 1000000);
  Poco::JWT::Signer signer(secret_);
  return signer.sign(token, Poco::JWT::Signer::ALGO_HS256);
}

std::string RegistryStore::owner_of_token(const std::string& jwt) const {
  Poco::JWT::Signer signer(secret_);
  Poco::JWT::Token token;
  bool valid = false;
  try {
    valid = signer.tryVerify(jwt, token);
  } catch (const Poco::Exception&) {  // not even shaped like a JWT
  }
  if (!valid || token.getIssuer() != "kiln-registry" || token.getSubject().empty())
    throw HttpError(401, "invalid publishing token (not issued by this registry)");
  const Poco::Timestamp expires = token.getExpiration();
  if (expires != Poco::Timestamp(0) && expires < Poco::Timestamp())
    throw HttpError(401, "publishing token expired; ask the registry's operator for a new one");
  return token.getSubject();
}

Json RegistryStore::publish(const std::string& archive_bytes, const std::string& owner) {
  const std::string id = random_hex(8);
  const fs::path upload = root_ / "tmp" / ("upload-" + id + kPackageExtension);
  RemoveOnExit remove_upload{upload};
  host::write_file_atomic(upload, archive_bytes);
  const fs::path staging = root_ / "tmp" / ("stage-" + id);
  RemoveOnExit remove_staging{staging};
  VerifiedPackage package;
  try {
    package = open_package(upload, staging, nullptr);
  } catch (const std::exception& e) {
    throw HttpError(400, std::string("package refused: ") + e.what());
  }
  const auto& m = package.manifest;
  const std::string version = m.version.str();
  const std::lock_guard<std::mutex> lock(db_->mutex);
  auto& s = db_->session;
  std::vector<std::string> owners;
  s << "SELECT owner FROM packages WHERE name = ?", into(owners), bind(m.name), now;
  if (!owners.empty() && owners.front() != owner)
    throw HttpError(403, "package '" + m.name + "' belongs to owner '" + owners.front() + "', not '" + owner + "'");
  int existing = 0;
  s << "SELECT COUNT(*) FROM versions WHERE name = ? AND version = ?", into(existing), bind(m.name), bind(version), now;
  if (existing > 0)
    throw HttpError(409, m.name + " " + version + " is already published; versions are immutable, publish a new one");
  const fs::path stored = root_ / "packages" / m.name / m.file_name();
  fs::create_directories(stored.parent_path());
  fs::rename(upload, stored);
  remove_upload.path.clear();
  std::string components;
  for (const auto& c : m.components) components += c + " ";
  const std::string manifest_text = m.to_json().dump();
  const std::string digest = host::sha256_hex(archive_bytes);
  const auto size = static_cast<int64_t>(archive_bytes.size());
  const std::string when = kiln::host::wall_clock_now();
  s.begin();
  try {
    if (owners.empty())
      s << "INSERT INTO packages (name, owner, description, components, created_at) VALUES (?, ?, ?, ?, ?)",
          bind(m.name), bind(owner), bind(m.description), bind(components), bind(when), now;
    else
      s << "UPDATE packages SET description = ?, components = ? WHERE name = ?", bind(m.description), bind(components),
          bind(m.name), now;
    s << "INSERT INTO versions (name, version, manifest, sha256, size, signer, published_at) VALUES (?, ?, ?, ?, ?, ?, "
         "?)",
        bind(m.name), bind(version), bind(manifest_text), bind(digest), bind(size), bind(package.signer_id), bind(when),
        now;
    s.commit();
  } catch (...) {
    s.rollback();
    std::error_code ec;
    fs::remove(stored, ec);
    throw;
  }
  return Json{{"name", m.name}, {"version", version}, {"sha256", digest}, {"signer", package.signer_id}};
}

void RegistryStore::set_yanked(const std::string& name, const std::string& version, bool yanked,
                               const std::string& owner) {
  const std::lock_guard<std::mutex> lock(db_->mutex);
  auto& s = db_->session;
  std::vector<std::string> owners;
  s << "SELECT owner FROM packages WHERE name = ?", into(owners), bind(name), now;
  if (owners.empty()) throw HttpError(404, "no package '" + name + "'");
  if (owners.front() != owner)
    throw HttpError(403, "package '" + name + "' belongs to owner '" + owners.front() + "', not '" + owner + "'");
  int existing = 0;
  s << "SELECT COUNT(*) FROM versions WHERE name = ? AND version = ?", into(existing), bind(name), bind(version), now;
  if (existing == 0) throw HttpError(404, "no version " + version + " of '" + name + "'");
  const int flag = yanked ? 1 : 0;
  s << "UPDATE versions SET yanked = ? WHERE name = ? AND version = ?", bind(flag), bind(name), bind(version), now;
}

Json RegistryStore::list(const std::string& term) const {
  const std::lock_guard<std::mutex> lock(db_->mutex);
  std::vector<std::string> names, owners, descriptions;
  const std::string like = "%" + term + "%";
  db_->session << "SELECT name, owner, description FROM packages WHERE name LIKE ? OR description LIKE ?"
                  " OR components LIKE ? ORDER BY name",
      into(names), into(owners), into(descriptions), bind(like), bind(like), bind(like), now;
  Json out = Json::array();
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<std::string> versions;
    std::vector<int> yanked;
    db_->session << "SELECT version, yanked FROM versions WHERE name = ?", into(versions), into(yanked), bind(names[i]),
        now;
    std::optional<host::Version> latest;
    for (size_t v = 0; v < versions.size(); ++v) {
      const auto parsed = host::Version::parse(versions[v]);
      if (parsed && !yanked[v] && (!latest || *latest < *parsed)) latest = parsed;
    }
    out.push_back(Json{{"name", names[i]},
                       {"owner", owners[i]},
                       {"description", descriptions[i]},
                       {"latest", latest ? latest->str() : ""}});
  }
  return out;
}

Json RegistryStore::show(const std::string& name) const {
  const std::lock_guard<std::mutex> lock(db_->mutex);
  std::vector<std::string> owners, descriptions;
  db_->session << "SELECT owner, description FROM packages WHERE name = ?", into(owners), into(descriptions),
      bind(name), now;
  if (owners.empty()) throw HttpError(404, "no package '" + name + "'");
  std::vector<std::string> versions, manifests, digests, published;
  std::vector<int> yanked;
  db_->session << "SELECT version, manifest, sha256, yanked, published_at FROM versions WHERE name = ?", into(versions),
      into(manifests), into(digests), into(yanked), into(published), bind(name), now;
  Json list = Json::array();
  for (size_t i = 0; i < versions.size(); ++i)
    list.push_back(Json{{"version", versions[i]},
                        {"yanked", yanked[i] != 0},
                        {"sha256", digests[i]},
                        {"published_at", published[i]},
                        {"manifest", Json::parse(manifests[i])}});
  return Json{{"name", name}, {"owner", owners.front()}, {"description", descriptions.front()}, {"versions", list}};
}

fs::path RegistryStore::archive_path(const std::string& name, const std::string& version) const {
  const auto parsed = host::Version::parse(version);
  if (!host::is_component_name(name) || !parsed) throw HttpError(404, "no such package version");
  const fs::path p = root_ / "packages" / name / (name + "-" + parsed->str() + kPackageExtension);
  if (!fs::is_regular_file(p)) throw HttpError(404, "no version " + version + " of '" + name + "'");
  return p;
}

// ---------------------------------------------------------------------------------------------------------------

namespace {

void send_json(Poco::Net::HTTPServerResponse& response, int status, const Json& body) {
  const std::string text = body.dump(2) + "\n";
  response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  response.setContentType("application/json");
  response.setContentLength64(static_cast<Poco::Int64>(text.size()));
  response.send() << text;
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  Handler(RegistryStore& store, uint64_t max_upload) : store_(store), max_upload_(max_upload) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    try {
      route(request, response);
    } catch (const HttpError& e) {
      drain(request, response);
      send_json(response, e.status(), Json{{"error", e.what()}});
    } catch (const std::exception& e) {
      drain(request, response);
      send_json(response, 500, Json{{"error", std::string("internal error: ") + e.what()}});
    }
  }

 private:
  // Reads what is left of the body so the client sees the answer, not a
  // reset; at most a few upload limits' worth, then the connection closes.
  void drain(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) const {
    response.setKeepAlive(false);
    try {
      request.stream().ignore(static_cast<std::streamsize>(std::min<uint64_t>(4 * max_upload_, 1ull << 32)));
    } catch (const std::exception&) {
    }
  }

  std::string owner(const Poco::Net::HTTPServerRequest& request) const {
    const std::string header = request.get("Authorization", "");
    const std::string prefix = "Bearer ";
    if (header.rfind(prefix, 0) != 0 || header.size() == prefix.size())
      throw HttpError(401, "publishing needs a token: send 'Authorization: Bearer TOKEN'");
    return store_.owner_of_token(header.substr(prefix.size()));
  }

  std::string read_body(Poco::Net::HTTPServerRequest& request) const {
    if (request.hasContentLength() && static_cast<uint64_t>(request.getContentLength64()) > max_upload_)
      throw HttpError(413, "upload of " + std::to_string(request.getContentLength64()) +
                               " bytes exceeds the limit of " + std::to_string(max_upload_) + " bytes");
    std::string body;
    std::istream& in = request.stream();
    char buffer[1 << 16];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
      body.append(buffer, static_cast<size_t>(in.gcount()));
      if (body.size() > max_upload_)
        throw HttpError(413, "upload exceeds the limit of " + std::to_string(max_upload_) + " bytes");
    }
    return body;
  }

  void route(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
    const Poco::URI uri(request.getURI());
    std::vector<std::string> parts;
    uri.getPathSegments(parts);
    const std::string& method = request.getMethod();
    if (parts.size() < 3 || parts[0] != "api" || parts[1] != "v1") throw HttpError(404, "no such endpoint");
    const bool get = method == "GET", post = method == "POST";
    if (parts.size() == 3 && parts[2] == "packages" && get) return send_json(response, 200, store_.list(""));
    if (parts.size() == 3 && parts[2] == "search" && get) {
      std::string term;
      for (const auto& [k, v] : uri.getQueryParameters())
        if (k == "q") term = v;
      return send_json(response, 200, store_.list(term));
    }
    if (parts.size() == 3 && parts[2] == "packages" && post) {
      const std::string who = owner(request);
      const std::string body = read_body(request);
      return send_json(response, 201, store_.publish(body, who));
    }
    if (parts[2] != "packages") throw HttpError(404, "no such endpoint");
    if (parts.size() == 4 && get) return send_json(response, 200, store_.show(parts[3]));
    if (parts.size() == 6 && parts[5] == "download" && get) {
      const fs::path file = store_.archive_path(parts[3], parts[4]);
      response.sendFile(file.string(), "application/octet-stream");
      return;
    }
    if (parts.size() == 6 && (parts[5] == "yank" || parts[5] == "unyank") && post) {
      store_.set_yanked(parts[3], parts[4], parts[5] == "yank", owner(request));
      return send_json(response, 200, Json{{"name", parts[3]}, {"version", parts[4]}, {"yanked", parts[5] == "yank"}});
    }
    throw HttpError(get || post ? 404 : 405, "no such endpoint: " + method + " " + uri.getPath());
  }

  RegistryStore& store_;
  uint64_t max_upload_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(RegistryStore& store, uint64_t max_upload) : store_(store), max_upload_(max_upload) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler(store_, max_upload_);  // Poco takes ownership
  }

 private:
  RegistryStore& store_;
  uint64_t max_upload_;
};

}  // namespace

struct RegistryServer::Impl {
  explicit Impl(const Options& o)
      : options(o),
        store(o.root),
        socket(Poco::Net::SocketAddress(o.host, o.port)),
        // Poco's server owns its factory and parameters through its own smart pointers.
        server(Poco::Net::HTTPRequestHandlerFactory::Ptr(new Factory(store, o.max_upload_bytes)), socket,
               Poco::Net::HTTPServerParams::Ptr(new Poco::Net::HTTPServerParams)) {}
  Options options;
  RegistryStore store;
  Poco::Net::ServerSocket socket;
  Poco::Net::HTTPServer server;
  bool running = false;
};

RegistryServer::RegistryServer(Options options) : impl_(std::make_unique<Impl>(options)) {
  impl_->server.start();
  impl_->running = true;
}

RegistryServer::~RegistryServer() {
  stop();
}

uint16_t RegistryServer::port() const {
  return impl_->socket.address().port();
}

std::string RegistryServer::url() const {
  return "http://" + impl_->options.host + ":" + std::to_string(port());
}

void RegistryServer::stop() {
  if (impl_ && impl_->running) {
    impl_->server.stopAll(true);
    impl_->running = false;
  }
}

}  // namespace kiln::registry

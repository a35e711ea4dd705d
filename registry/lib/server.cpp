#include <kiln/registry/server.hpp>

#include "deadlines.hpp"
#include "private_file.hpp"

#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/manifest.hpp>
#include <kiln/registry/package.hpp>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>

namespace kiln::registry {
namespace fs = std::filesystem;
using host::Json;
using host::RemoveOnExit;
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

constexpr int kTokenClockSkewSeconds = 60;

void register_connector() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Data::SQLite::Connector::registerConnector(); });
}

// The dotted prefix a name belongs to: its first word ("acme" of acme.scaler).
std::string prefix_of(const std::string& name) {
  return name.substr(0, name.find('.'));
}

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
  s << "CREATE TABLE IF NOT EXISTS prefixes (prefix TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at TEXT NOT NULL)",
      now;
  // An index from before prefixes were owned: each prefix goes to the owner
  // of the oldest package that uses it (INSERT OR IGNORE keeps earlier claims).
  std::vector<std::string> names, owners, components, created;
  s << "SELECT name, owner, components, created_at FROM packages ORDER BY created_at, name", into(names), into(owners),
      into(components), into(created), now;
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<std::string> used{names[i]};
    std::istringstream words(components[i]);
    for (std::string c; words >> c;) used.push_back(c);
    for (const auto& n : used) {
      const std::string prefix = prefix_of(n);
      s << "INSERT OR IGNORE INTO prefixes (prefix, owner, created_at) VALUES (?, ?, ?)", bind(prefix), bind(owners[i]),
          bind(created[i]), now;
    }
  }
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
  // Poco's parser ignores parts after the third; a token is exactly header.payload.signature.
  if (std::count(jwt.begin(), jwt.end(), '.') != 2)
    throw HttpError(401, "invalid publishing token (a token has exactly three dot-separated parts)");
  Poco::JWT::Signer signer(secret_);
  Poco::JWT::Token token;
  bool valid = false;
  try {
    valid = signer.tryVerify(jwt, token);
  } catch (const Poco::Exception&) {  // not even shaped like a JWT
  }
  if (!valid || token.getIssuer() != "kiln-registry" || token.getSubject().empty())
    throw HttpError(401, "invalid publishing token (not issued by this registry)");
  const Poco::Timestamp now;
  const Poco::Timestamp expires = token.getExpiration();
  if (expires != Poco::Timestamp(0) && expires < now)
    throw HttpError(401, "publishing token expired; ask the registry's operator for a new one");
  // Clocks of the issuing and the checking machine may differ by a little.
  const Poco::Timestamp::TimeDiff skew = Poco::Timestamp::TimeDiff(kTokenClockSkewSeconds) * 1000000;
  const Poco::Timestamp not_before = token.getNotBefore();
  if (not_before != Poco::Timestamp(0) && not_before > now + skew)
    throw HttpError(401, "publishing token is not valid yet (its 'nbf' is in the future)");
  if (token.getIssuedAt() > now + skew)
    throw HttpError(401, "publishing token claims to be issued in the future ('iat'); refused");
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
  // Every name the package claims (its own and its components') must lie
  // under a prefix that is free or already this owner's.
  std::vector<std::pair<std::string, std::string>> names{{"package", m.name}};
  for (const auto& c : m.components) names.emplace_back("component", c);
  std::set<std::string> new_prefixes;
  for (const auto& [what, n] : names) {
    const std::string prefix = prefix_of(n);
    std::vector<std::string> prefix_owner;
    s << "SELECT owner FROM prefixes WHERE prefix = ?", into(prefix_owner), bind(prefix), now;
    if (prefix_owner.empty())
      new_prefixes.insert(prefix);
    else if (prefix_owner.front() != owner)
      throw HttpError(403, what + " name '" + n + "' is under the prefix '" + prefix + ".', which belongs to owner '" +
                               prefix_owner.front() + "', not '" + owner + "'; use a prefix of your own");
  }
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
    for (const auto& prefix : new_prefixes)
      s << "INSERT INTO prefixes (prefix, owner, created_at) VALUES (?, ?, ?)", bind(prefix), bind(owner), bind(when),
          now;
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
  // Error messages may quote bytes from the request; invalid UTF-8 is replaced, not a failure.
  const std::string text = body.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  response.setContentType("application/json");
  response.setContentLength64(static_cast<Poco::Int64>(text.size()));
  response.send() << text << std::flush;
}

// A package name from the URL: anything but lower-case dotted words (for
// instance bytes that are not UTF-8) is a 400, before it reaches the index.
const std::string& package_name(const std::string& segment) {
  if (!host::is_component_name(segment))
    throw HttpError(400, "not a package name (lower-case dotted words, e.g. acme.scaler)");
  return segment;
}

struct HandlerLimits {
  uint64_t max_upload = 0;
  std::chrono::seconds body_timeout{300};
};

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  Handler(RegistryStore& store, HandlerLimits limits) : store_(store), limits_(limits) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
    // The headers are in: from here on the body and the answer have their own deadline.
    set_current_deadline(std::chrono::steady_clock::now() + limits_.body_timeout);
    try {
      route(request, response);
    } catch (const HttpError& e) {
      answer_error(request, response, e.status(), e.what());
    } catch (const Poco::SyntaxException& e) {
      answer_error(request, response, 400, "malformed request: " + e.displayText());
    } catch (const std::exception& e) {
      answer_error(request, response, 500, std::string("internal error: ") + e.what());
    }
  }

 private:
  // Answers an error. When the request's body was not read (a 401, 403 or
  // 413 decided from the headers), the answer goes out at once and the
  // connection closes: the server never reads (or waits for) a body it has
  // refused, beyond a short linger so the client sees the answer, not a reset.
  void answer_error(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response, int status,
                    const std::string& message) {
    const bool unread_body = !body_read_ && (request.getChunkedTransferEncoding() ||
                                             (request.hasContentLength() && request.getContentLength64() > 0));
    response.setKeepAlive(false);
    if (response.sent()) return;
    send_json(response, status, Json{{"error", message}});
    if (!unread_body) return;
    auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request);
    if (impl == nullptr) return;
    ::shutdown(impl->socket().impl()->sockfd(), SHUT_WR);
    set_current_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(1));
    try {
      request.stream().ignore(kLingerBytes);
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

  std::string read_body(Poco::Net::HTTPServerRequest& request) {
    if (request.hasContentLength() && static_cast<uint64_t>(request.getContentLength64()) > limits_.max_upload)
      throw HttpError(413, "upload of " + std::to_string(request.getContentLength64()) +
                               " bytes exceeds the limit of " + std::to_string(limits_.max_upload) + " bytes");
    std::string body;
    std::istream& in = request.stream();
    char buffer[1 << 16];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
      body.append(buffer, static_cast<size_t>(in.gcount()));
      if (body.size() > limits_.max_upload)
        throw HttpError(413, "upload exceeds the limit of " + std::to_string(limits_.max_upload) + " bytes");
    }
    body_read_ = true;
    if (request.hasContentLength() && body.size() != static_cast<uint64_t>(request.getContentLength64()))
      throw HttpError(400, "upload cut short: " + std::to_string(body.size()) + " of " +
                               std::to_string(request.getContentLength64()) + " bytes arrived");
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
    if (parts.size() == 4 && get) return send_json(response, 200, store_.show(package_name(parts[3])));
    if (parts.size() == 6 && parts[5] == "download" && get) {
      const fs::path file = store_.archive_path(package_name(parts[3]), parts[4]);
      response.sendFile(file.string(), "application/octet-stream");
      return;
    }
    if (parts.size() == 6 && (parts[5] == "yank" || parts[5] == "unyank") && post) {
      const std::string who = owner(request);
      store_.set_yanked(package_name(parts[3]), parts[4], parts[5] == "yank", who);
      return send_json(response, 200, Json{{"name", parts[3]}, {"version", parts[4]}, {"yanked", parts[5] == "yank"}});
    }
    throw HttpError(get || post ? 404 : 405, "no such endpoint: " + method + " " + uri.getPath());
  }

  static constexpr std::streamsize kLingerBytes = 64 << 10;
  RegistryStore& store_;
  HandlerLimits limits_;
  bool body_read_ = false;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(RegistryStore& store, HandlerLimits limits) : store_(store), limits_(limits) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler(store_, limits_);  // Poco takes ownership
  }

 private:
  RegistryStore& store_;
  HandlerLimits limits_;
};

Poco::Net::ServerSocket listen_on(const RegistryServer::Options& o) {
  const Poco::Net::SocketAddress address(o.host, o.port);
  if (o.tls_cert_file.empty() != o.tls_key_file.empty())
    throw std::runtime_error("HTTPS needs both a certificate file and its key file");
  if (o.tls_cert_file.empty()) return Poco::Net::ServerSocket(address);
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
  Poco::Net::Context::Ptr context;
  try {
    context = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, o.tls_key_file, o.tls_cert_file, "",
                                     Poco::Net::Context::VERIFY_NONE, 9, false);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("cannot use certificate " + o.tls_cert_file + " with key " + o.tls_key_file + ": " +
                             e.displayText());
  }
  return Poco::Net::SecureServerSocket(address, 64, context);
}

Poco::Net::HTTPServerParams::Ptr server_params(const RegistryServer::Options& o) {
  Poco::Net::HTTPServerParams::Ptr params(new Poco::Net::HTTPServerParams);
  params->setKeepAlive(false);  // one request per connection, so one header deadline per request
  params->setTimeout(Poco::Timespan(o.header_timeout_seconds, 0));  // per read, within the deadlines
  params->setMaxThreads(static_cast<int>(o.threads));
  params->setMaxQueued(64);
  return params;
}

}  // namespace

struct RegistryServer::Impl {
  explicit Impl(const Options& o)
      : options(o),
        store(o.root),
        socket(listen_on(o)),
        params(server_params(o)),
        pool(1, static_cast<int>(std::max(1u, o.threads))),
        deadlines(std::make_shared<ConnectionDeadlines>()),
        // Poco's server owns its factories through its own smart pointers.
        server(Poco::Net::TCPServerConnectionFactory::Ptr(new DeadlineConnectionFactory(
                   deadlines, std::chrono::seconds(o.header_timeout_seconds), params,
                   Poco::Net::HTTPRequestHandlerFactory::Ptr(
                       new Factory(store, {o.max_upload_bytes, std::chrono::seconds(o.body_timeout_seconds)})))),
               pool, socket, params) {}
  Options options;
  RegistryStore store;
  Poco::Net::ServerSocket socket;
  Poco::Net::HTTPServerParams::Ptr params;
  Poco::ThreadPool pool;
  std::shared_ptr<ConnectionDeadlines> deadlines;
  Poco::Net::TCPServer server;
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
  return (impl_->options.tls_cert_file.empty() ? "http://" : "https://") + impl_->options.host + ":" +
         std::to_string(port());
}

void RegistryServer::stop() {
  if (impl_ && impl_->running) {
    impl_->server.stop();
    impl_->deadlines->stop_and_wait();
    impl_->running = false;
  }
}

}  // namespace kiln::registry

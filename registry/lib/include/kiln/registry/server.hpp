// The registry server: packages on disk under --root, an SQLite index,
// publishing tokens (JWT, HS256) bound to an owner, and a JSON HTTP API.
//
//   GET  /api/v1/packages                         every package (name, owner, latest, description)
//   GET  /api/v1/search?q=TERM                    packages whose name, description or components match
//   GET  /api/v1/packages/NAME                    the package and all its versions (with manifests)
//   GET  /api/v1/packages/NAME/VERSION/download   the .kpkg archive
//   POST /api/v1/packages                         publish (body: the .kpkg; Authorization: Bearer TOKEN)
//   POST /api/v1/packages/NAME/VERSION/yank       yank (owner's token); .../unyank undoes it
//
// Ownership (docs/registry.md): the first publisher of a package name owns
// it, and the first publisher to use a dotted prefix (the first word of a
// package or component name: "acme" of acme.scaler) owns that prefix; a
// publish naming a package or component under another owner's prefix is 403.
#pragma once

#include <kiln/host/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace kiln::registry {

// A failure with an HTTP status: the server answers {"error": message}.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// The storage and index of one registry root.
class RegistryStore {
 public:
  explicit RegistryStore(std::filesystem::path root);
  ~RegistryStore();
  RegistryStore(const RegistryStore&) = delete;
  RegistryStore& operator=(const RegistryStore&) = delete;

  // A signed token that lets `owner` publish (and yank) its packages; it
  // expires `valid_seconds` after now (0: never).
  std::string create_token(const std::string& owner, int64_t valid_seconds = 0) const;
  // The owner a token names; throws HttpError 401 when it is not valid here:
  // not three dot-separated parts, a bad signature, another issuer, expired,
  // not yet valid ("nbf"), or issued in the future ("iat", beyond a minute's skew).
  std::string owner_of_token(const std::string& token) const;

  // Verifies the uploaded archive (digests, signature) and stores it.
  // 403: the package, or the prefix of its name or of a component it
  // declares, belongs to another owner; 409: the version exists;
  // 400: the package is broken. Returns the stored manifest.
  host::Json publish(const std::string& archive_bytes, const std::string& owner);
  void set_yanked(const std::string& name, const std::string& version, bool yanked, const std::string& owner);

  host::Json list(const std::string& term) const;                                                 // "" lists all
  host::Json show(const std::string& name) const;                                                 // 404 when unknown
  std::filesystem::path archive_path(const std::string& name, const std::string& version) const;  // 404

  const std::filesystem::path& root() const { return root_; }

 private:
  struct Db;
  std::filesystem::path root_;
  std::string secret_;
  std::unique_ptr<Db> db_;
};

class RegistryServer {
 public:
  struct Options {
    std::filesystem::path root;
    std::string host = "127.0.0.1";
    uint16_t port = 0;  // 0: any free port (see port())
    uint64_t max_upload_bytes = 64ull << 20;
    // HTTPS when both are set (PEM files): the certificate chain and its key.
    std::string tls_cert_file, tls_key_file;
    int header_timeout_seconds = 10;  // request line and headers, whole, from the connection's start
    int body_timeout_seconds = 300;   // then the body and the answer, whole
    unsigned threads = 16;            // connections served at once (more wait in a queue of 64)
  };
  explicit RegistryServer(Options options);
  ~RegistryServer();  // stops
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  uint16_t port() const;
  std::string url() const;  // http://HOST:PORT or https://HOST:PORT
  // Stops accepting, cuts the open connections and waits until none is served.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::registry

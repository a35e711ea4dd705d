// The registry server: packages on disk under --root, an SQLite index,
// publishing tokens (JWT, HS256) bound to an owner, and a JSON HTTP API.
//
//   GET  /api/v1/packages                         every package (name, owner, latest, description)
//   GET  /api/v1/search?q=TERM                    packages whose name, description or components match
//   GET  /api/v1/packages/NAME                    the package and all its versions (with manifests)
//   GET  /api/v1/packages/NAME/VERSION/download   the .kpkg archive
//   POST /api/v1/packages                         publish (body: the .kpkg; Authorization: Bearer TOKEN)
//   POST /api/v1/packages/NAME/VERSION/yank       yank (owner's token); .../unyank undoes it
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
  // The owner a token names; throws HttpError 401 when it is not valid here.
  std::string owner_of_token(const std::string& token) const;

  // Verifies the uploaded archive (digests, signature) and stores it.
  // 403: the package belongs to another owner; 409: the version exists;
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
  };
  explicit RegistryServer(Options options);
  ~RegistryServer();  // stops
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  uint16_t port() const;
  std::string url() const;  // http://HOST:PORT
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::registry

// Publisher keys: Ed25519 key pairs (OpenSSL), signatures over package
// manifests, and the set of public keys this machine trusts.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace kiln::registry {

// An Ed25519 key: a private one signs, a public one verifies.
class Key {
 public:
  // Creates a fresh key pair.
  static Key generate();
  // Reads a PEM private key (as written by save_private) or public key.
  static Key load_private(const std::filesystem::path& pem);
  static Key load_public(const std::filesystem::path& pem);
  // A public key from its 32 raw bytes in hex. Throws on bad input.
  static Key from_public_hex(const std::string& hex);

  // Writes the private key (mode 0600) or the public key as PEM.
  void save_private(const std::filesystem::path& pem) const;
  void save_public(const std::filesystem::path& pem) const;

  std::string public_hex() const;  // the 32 raw public bytes in hex
  std::string id() const;          // first 16 hex digits of sha256 of the raw public key
  std::string sign_hex(const std::string& data) const;
  bool verify_hex(const std::string& data, const std::string& signature_hex) const;

 private:
  struct Free {
    void operator()(void* pkey) const noexcept;
  };
  Key(void* pkey, bool has_private) : pkey_(pkey, Free{}), private_(has_private) {}
  std::shared_ptr<void> pkey_;  // EVP_PKEY
  bool private_ = false;
};

// The public keys in `dir` (*.pub, PEM), e.g. <user data>/trusted-keys.
std::vector<Key> load_trusted_keys(const std::filesystem::path& dir);
// <user data dir>/trusted-keys and <user data dir>/keys (the user's own key pair).
std::filesystem::path trusted_keys_dir();
std::filesystem::path own_keys_dir();

}  // namespace kiln::registry

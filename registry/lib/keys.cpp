#include <kiln/registry/keys.hpp>

#include "private_file.hpp"

#include <kiln/host/files.hpp>
#include <kiln/host/paths.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace kiln::registry {
namespace fs = std::filesystem;
namespace {

struct BioFree {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct CtxFree {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<EVP_MD_CTX, CtxFree>;

std::string to_hex(const unsigned char* data, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

bool from_hex(const std::string& hex, std::string& out) {
  if (hex.size() % 2 != 0) return false;
  out.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
  }
  return true;
}

EVP_PKEY* as_pkey(const std::shared_ptr<void>& p) {
  return static_cast<EVP_PKEY*>(p.get());
}

}  // namespace

void Key::Free::operator()(void* pkey) const noexcept {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey));
}

Key Key::generate() {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (pkey == nullptr) throw std::runtime_error("cannot generate an Ed25519 key");
  Key key(pkey, true);
  return key;
}

Key Key::load_private(const fs::path& pem) {
  const std::string text = host::read_file(pem);
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (pkey == nullptr || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(pkey);
    throw std::runtime_error(pem.string() + ": not an Ed25519 private key in PEM form");
  }
  Key key(pkey, true);
  return key;
}

Key Key::load_public(const fs::path& pem) {
  const std::string text = host::read_file(pem);
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (pkey == nullptr || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(pkey);
    throw std::runtime_error(pem.string() + ": not an Ed25519 public key in PEM form");
  }
  Key key(pkey, false);
  return key;
}

Key Key::from_public_hex(const std::string& hex) {
  std::string raw;
  if (!from_hex(hex, raw) || raw.size() != 32) throw std::runtime_error("public key is not 64 hex digits");
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                               reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  if (pkey == nullptr) throw std::runtime_error("invalid Ed25519 public key");
  Key key(pkey, false);
  return key;
}

void Key::save_private(const fs::path& pem) const {
  if (!private_) throw std::runtime_error("no private key to save");
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), as_pkey(pkey_), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  write_private_file(pem, std::string(data, static_cast<size_t>(n)));
}

void Key::save_public(const fs::path& pem) const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), as_pkey(pkey_));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  host::write_file_atomic(pem, std::string(data, static_cast<size_t>(n)));
}

std::string Key::public_hex() const {
  unsigned char raw[32];
  size_t n = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(as_pkey(pkey_), raw, &n) != 1) throw std::runtime_error("cannot read public key");
  return to_hex(raw, n);
}

std::string Key::id() const {
  std::string raw;
  from_hex(public_hex(), raw);
  return host::sha256_hex(raw).substr(0, 16);
}

std::string Key::sign_hex(const std::string& data) const {
  if (!private_) throw std::runtime_error("signing needs a private key");
  CtxPtr ctx(EVP_MD_CTX_new());
  unsigned char sig[64];
  size_t n = sizeof sig;
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, as_pkey(pkey_)) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &n, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    throw std::runtime_error("signing failed");
  return to_hex(sig, n);
}

bool Key::verify_hex(const std::string& data, const std::string& signature_hex) const {
  std::string sig;
  if (!from_hex(signature_hex, sig) || sig.size() != 64) return false;
  CtxPtr ctx(EVP_MD_CTX_new());
  return EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, as_pkey(pkey_)) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

std::vector<Key> load_trusted_keys(const fs::path& dir) {
  std::vector<Key> keys;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".pub") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) keys.push_back(Key::load_public(f));
  return keys;
}

fs::path trusted_keys_dir() {
  return host::user_data_dir() / "trusted-keys";
}

fs::path own_keys_dir() {
  return host::user_data_dir() / "keys";
}

}  // namespace kiln::registry

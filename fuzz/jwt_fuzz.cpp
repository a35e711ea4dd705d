// Publishing tokens (registry/lib/server.cpp, RegistryStore::owner_of_token:
// Poco::JWT under it). The first byte picks the mode: the rest as a token as
// written; or "HEADER\0PAYLOAD" (JSON texts) made into a token signed with
// the store's own secret, so that the checks after the signature are reached.
// Only HttpError 401 may come out; an accepted token names an owner.
#include <kiln/registry/server.hpp>

#include <kiln/host/files.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz_support.hpp"

namespace {

kiln::registry::RegistryStore& store() {
  static kiln::registry::RegistryStore s(kiln::fuzz::scratch_dir() / "registry");
  return s;
}

std::string base64url(const std::string& bytes) {
  static const char* const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (const unsigned char c : bytes) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += digits[(bits >> count) & 63];
    }
  }
  if (count > 0) out += digits[(bits << (6 - count)) & 63];
  return out;
}

std::string signed_token(const std::string& header, const std::string& payload) {
  static const std::string secret = kiln::host::read_file(store().root() / "secret");
  const std::string signing_input = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &length);
  return signing_input + "." + base64url(std::string(reinterpret_cast<const char*>(mac), length));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)store();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest = kiln::fuzz::text_of(data + 1, size - 1);
  std::string token = rest;
  if ((data[0] & 1) != 0) {
    const size_t nul = rest.find('\0');
    token = nul == std::string::npos ? signed_token(R"({"alg":"HS256","typ":"JWT"})", rest)
                                     : signed_token(rest.substr(0, nul), rest.substr(nul + 1));
  }
  try {
    if (store().owner_of_token(token).empty()) kiln::fuzz::fail("a token accepted without an owner");
  } catch (const kiln::registry::HttpError& error) {
    if (error.status() != 401) kiln::fuzz::fail("refused with status " + std::to_string(error.status()));
  }
  return 0;
}

// A package's manifest and signature (registry/lib/package.cpp,
// verify_manifest; keys.cpp): the input is kiln-package.json's text, a NUL
// byte, then signature.json's text. Only PackageError may come out.
#include <kiln/registry/package.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = kiln::fuzz::text_of(data, size);
  const size_t nul = input.find('\0');
  const std::string manifest = input.substr(0, nul);
  const std::string signature = nul == std::string::npos ? std::string() : input.substr(nul + 1);
  try {
    (void)kiln::registry::verify_manifest(manifest, signature, "fuzz.kpkg", nullptr);
  } catch (const kiln::registry::PackageError&) {
  }
  return 0;
}

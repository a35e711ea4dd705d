// Shared by the harnesses: the input as text, a scratch directory for the
// readers that take a path, and failing loudly on what a parser promised not to do.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace kiln::fuzz {

inline std::string text_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// A broken promise (an exception of the wrong kind, a round trip that does
// not hold): reported as a crash, so libFuzzer saves the input.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz: %s\n", what.c_str());
  std::abort();
}

// A directory of this process's own under $TMPDIR (or /tmp), created once
// and removed when the process exits normally (scripts/fuzz.sh also points
// TMPDIR into a scratch directory it removes, for runs that end in a crash).
inline const std::filesystem::path& scratch_dir() {
  // Never destroyed, so that the exit handler may still use it.
  static const std::filesystem::path& dir = *[] {
    const char* tmp = std::getenv("TMPDIR");
    const std::filesystem::path d = std::filesystem::path(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") /
                                    ("kiln-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    auto* const kept = new std::filesystem::path(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return kept;
  }();
  return dir;
}

}  // namespace kiln::fuzz

// Garbage collection of a workspace's artifact store: stored artifacts that
// no run read or wrote (a step killed between the store's rename and its
// record leaves one), and leftovers of copies (artifacts/tmp/) and of
// corrupt artifacts set aside (artifacts/corrupt/). Prints nothing: the
// caller (`kiln gc`, a server) reports the result.
#pragma once

#include <kiln/host/store.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace kiln::host {

struct GcOptions {
  bool remove = false;  // delete what is found (default: only report it)
  // A running step stores its outputs a moment before it records them:
  // unreferenced artifacts younger than this are kept, unless include_recent.
  std::chrono::seconds min_age = std::chrono::hours(1);
  bool include_recent = false;
};

struct GcItem {
  enum class Kind { artifact, leftover };
  Kind kind = Kind::artifact;
  std::string name;   // the digest of an artifact; the path of a leftover
  uint64_t size = 0;  // bytes of regular files
};

struct GcReport {
  bool removed = false;       // the items were deleted (options.remove), not only found
  std::vector<GcItem> items;  // artifacts first (by digest), then leftovers
  size_t kept_recent = 0;     // unreferenced artifacts kept for being younger than min_age
  uint64_t bytes() const;     // the sum of the items' sizes
};

// Finds (and with options.remove deletes, from disk and from the artifacts
// table) what no run references. Throws when the database or a removal fails.
GcReport collect_garbage(Store& store, const GcOptions& options);

}  // namespace kiln::host

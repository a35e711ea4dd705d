// Semantic versions (semver.org 2.0): parsing and precedence.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::host {

struct Version {
  uint64_t major = 0, minor = 0, patch = 0;
  std::vector<std::string> prerelease;  // dot-separated identifiers
  std::string build;                    // ignored for precedence

  // Parses "1.2.3", "1.2.3-rc.1+build"; nullopt when not a semantic version.
  static std::optional<Version> parse(const std::string& text);
  std::string str() const;
};

// Precedence per semver.org: -1, 0 or 1.
int compare(const Version& a, const Version& b);
inline bool operator<(const Version& a, const Version& b) {
  return compare(a, b) < 0;
}
inline bool operator==(const Version& a, const Version& b) {
  return compare(a, b) == 0;
}

// A set of versions as npm and Cargo write them: "1.2.3", "=1.2.3", "^1.2",
// "~1.2.3", ">=1.0 <2", "1.x", "*", and alternatives joined by "||".
// Partial versions fill with zeros ("^1.2" is "^1.2.0"). Pre-releases match
// only comparators that name a pre-release of the same MAJOR.MINOR.PATCH.
class VersionRange {
 public:
  static std::optional<VersionRange> parse(const std::string& text);
  bool matches(const Version& v) const;
  const std::string& str() const { return text_; }

 private:
  struct Comparator {
    std::string op;  // one of = < <= > >=
    Version version;
  };
  std::string text_;
  std::vector<std::vector<Comparator>> alternatives_;  // OR of ANDs
};

}  // namespace kiln::host

#include <kiln/host/semver.hpp>

#include <cctype>

namespace kiln::host {
namespace {

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (const char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// A numeric core part: digits, no leading zero (semver §2).
std::optional<uint64_t> parse_number(const std::string& s) {
  if (!all_digits(s) || (s.size() > 1 && s[0] == '0') || s.size() > 18) return std::nullopt;
  return std::stoull(s);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

bool valid_identifier(const std::string& s) {
  if (s.empty()) return false;
  for (const char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  return true;
}

}  // namespace

std::optional<Version> Version::parse(const std::string& text) {
  Version v;
  std::string rest = text;
  if (const auto plus = rest.find('+'); plus != std::string::npos) {
    v.build = rest.substr(plus + 1);
    rest = rest.substr(0, plus);
    for (const auto& id : split(v.build, '.'))
      if (!valid_identifier(id)) return std::nullopt;
  }
  if (const auto dash = rest.find('-'); dash != std::string::npos) {
    v.prerelease = split(rest.substr(dash + 1), '.');
    rest = rest.substr(0, dash);
    for (const auto& id : v.prerelease)
      if (!valid_identifier(id) || (all_digits(id) && id.size() > 1 && id[0] == '0')) return std::nullopt;
  }
  const auto core = split(rest, '.');
  if (core.size() != 3) return std::nullopt;
  const auto major = parse_number(core[0]), minor = parse_number(core[1]), patch = parse_number(core[2]);
  if (!major || !minor || !patch) return std::nullopt;
  v.major = *major;
  v.minor = *minor;
  v.patch = *patch;
  return v;
}

std::string Version::str() const {
  std::string s = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  for (size_t i = 0; i < prerelease.size(); ++i) s += (i ? "." : "-") + prerelease[i];
  if (!build.empty()) s += "+" + build;
  return s;
}

int compare(const Version& a, const Version& b) {
  for (const auto& [x, y] : {std::pair{a.major, b.major}, {a.minor, b.minor}, {a.patch, b.patch}})
    if (x != y) return x < y ? -1 : 1;
  // A pre-release has lower precedence than the release itself.
  if (a.prerelease.empty() != b.prerelease.empty()) return a.prerelease.empty() ? 1 : -1;
  for (size_t i = 0; i < a.prerelease.size() && i < b.prerelease.size(); ++i) {
    const auto &x = a.prerelease[i], &y = b.prerelease[i];
    if (x == y) continue;
    const bool xn = all_digits(x), yn = all_digits(y);
    if (xn && yn) return x.size() != y.size() ? (x.size() < y.size() ? -1 : 1) : (x < y ? -1 : 1);
    if (xn != yn) return xn ? -1 : 1;  // numeric identifiers sort first
    return x < y ? -1 : 1;
  }
  if (a.prerelease.size() != b.prerelease.size()) return a.prerelease.size() < b.prerelease.size() ? -1 : 1;
  return 0;
}

}  // namespace kiln::host

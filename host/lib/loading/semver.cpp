#include <kiln/host/semver.hpp>

#include <algorithm>
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

namespace {

// A possibly partial version: "1", "1.2", "1.2.3", with x/X/* wildcards.
struct Partial {
  Version version;
  int parts = 0;  // how many of major.minor.patch were given
};

std::optional<Partial> parse_partial(const std::string& text) {
  if (text.empty() || text == "*" || text == "x" || text == "X") return Partial{};
  if (auto full = Version::parse(text)) return Partial{*full, 3};
  Partial p;
  const auto parts = split(text, '.');
  if (parts.size() > 3) return std::nullopt;
  bool wildcard = false;
  for (const auto& part : parts) {
    const bool is_wildcard = part == "*" || part == "x" || part == "X";
    if (wildcard && !is_wildcard) return std::nullopt;  // "1.x.3" is not a version pattern
    wildcard = wildcard || is_wildcard;
    if (wildcard) continue;
    const auto n = parse_number(part);
    if (!n) return std::nullopt;
    (p.parts == 0 ? p.version.major : p.parts == 1 ? p.version.minor : p.version.patch) = *n;
    ++p.parts;
  }
  return p;
}

Version bump(const Partial& p, int part) {
  Version v;
  v.major = p.version.major + (part == 0 ? 1 : 0);
  v.minor = part == 0 ? 0 : p.version.minor + (part == 1 ? 1 : 0);
  v.patch = 0;
  v.prerelease = {"0"};  // the lowest version of the next step: excludes its pre-releases too
  return v;
}

}  // namespace

std::optional<VersionRange> VersionRange::parse(const std::string& text) {
  VersionRange range;
  range.text_ = text;
  std::string rest = text;
  for (;;) {
    const auto bar = rest.find("||");
    const std::string alternative = rest.substr(0, bar);
    std::vector<Comparator> all;
    size_t start = 0;
    bool any = false;
    while (start < alternative.size()) {
      const auto end = std::min(alternative.find(' ', start), alternative.size());
      std::string token = alternative.substr(start, end - start);
      start = end + 1;
      if (token.empty()) continue;
      any = true;
      std::string op;
      for (const char* candidate : {">=", "<=", ">", "<", "=", "^", "~"})
        if (token.rfind(candidate, 0) == 0) {
          op = candidate;
          break;
        }
      const auto partial = parse_partial(token.substr(op.size()));
      if (!partial) return std::nullopt;
      const Partial& p = *partial;
      if (p.parts == 0) continue;  // "*": any version
      if (op == "^") {
        const int part = p.version.major > 0 || p.parts == 1 ? 0 : (p.version.minor > 0 || p.parts == 2 ? 1 : 2);
        all.push_back({">=", p.version});
        if (part < 2)
          all.push_back({"<", bump(p, part)});
        else
          all.push_back({"<=", p.version});
      } else if (op == "~") {
        all.push_back({">=", p.version});
        all.push_back({"<", bump(p, p.parts == 1 ? 0 : 1)});
      } else if ((op.empty() || op == "=") && p.parts < 3) {
        all.push_back({">=", p.version});
        all.push_back({"<", bump(p, p.parts - 1)});
      } else {
        all.push_back({op.empty() ? "=" : op, p.version});
      }
    }
    if (!any && text.find_first_not_of(' ') != std::string::npos &&
        alternative.find_first_not_of(' ') == std::string::npos)
      return std::nullopt;  // an empty side of "||"
    range.alternatives_.push_back(std::move(all));
    if (bar == std::string::npos) break;
    rest = rest.substr(bar + 2);
  }
  return range;
}

bool VersionRange::matches(const Version& v) const {
  for (const auto& all : alternatives_) {
    bool ok = true;
    bool prerelease_allowed = v.prerelease.empty();
    for (const auto& c : all) {
      const int cmp = compare(v, c.version);
      ok = ok && ((c.op == "=" && cmp == 0) || (c.op == "<" && cmp < 0) || (c.op == "<=" && cmp <= 0) ||
                  (c.op == ">" && cmp > 0) || (c.op == ">=" && cmp >= 0));
      if (!c.version.prerelease.empty() && c.version.prerelease != std::vector<std::string>{"0"} &&
          c.version.major == v.major && c.version.minor == v.minor && c.version.patch == v.patch)
        prerelease_allowed = true;
    }
    if (ok && prerelease_allowed) return true;
  }
  return false;
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

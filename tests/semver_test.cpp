#include <gtest/gtest.h>
#include <kiln/host/semver.hpp>

using kiln::host::Version;

TEST(Semver, ParsesCorePrereleaseAndBuild) {
  const auto v = Version::parse("1.22.3-rc.1+build.5");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->major, 1u);
  EXPECT_EQ(v->minor, 22u);
  EXPECT_EQ(v->patch, 3u);
  EXPECT_EQ(v->prerelease, (std::vector<std::string>{"rc", "1"}));
  EXPECT_EQ(v->build, "build.5");
  EXPECT_EQ(v->str(), "1.22.3-rc.1+build.5");
}

TEST(Semver, RejectsMalformedVersions) {
  for (const char* bad : {"1.0", "1", "01.0.0", "1.0.0-", "1.0.0-01", "a.b.c", "1.0.0+", "", "1.0.0.0", "-1.0.0"})
    EXPECT_FALSE(Version::parse(bad)) << bad;
}

TEST(Semver, OrdersBySemverPrecedence) {
  const char* ordered[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
                           "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
                           "1.0.0-rc.1",  "1.0.0",         "1.0.1",
                           "1.1.0",       "2.0.0",         "10.0.0"};
  for (size_t i = 0; i + 1 < std::size(ordered); ++i)
    EXPECT_LT(*Version::parse(ordered[i]), *Version::parse(ordered[i + 1])) << ordered[i] << " < " << ordered[i + 1];
  EXPECT_EQ(*Version::parse("1.0.0+a"), *Version::parse("1.0.0+b"));
}

namespace {
bool in_range(const char* range, const char* version) {
  const auto r = kiln::host::VersionRange::parse(range);
  if (!r) throw std::runtime_error(std::string("bad range ") + range);
  return r->matches(*Version::parse(version));
}
}  // namespace

TEST(VersionRange, CaretTildeAndComparators) {
  EXPECT_TRUE(in_range("^1.2", "1.2.0"));
  EXPECT_TRUE(in_range("^1.2", "1.9.9"));
  EXPECT_FALSE(in_range("^1.2", "2.0.0"));
  EXPECT_FALSE(in_range("^1.2", "1.1.9"));
  EXPECT_TRUE(in_range("^0.2.3", "0.2.9"));
  EXPECT_FALSE(in_range("^0.2.3", "0.3.0"));
  EXPECT_TRUE(in_range("~1.2.3", "1.2.9"));
  EXPECT_FALSE(in_range("~1.2.3", "1.3.0"));
  EXPECT_TRUE(in_range(">=1.0 <2", "1.5.0"));
  EXPECT_FALSE(in_range(">=1.0 <2", "2.0.0"));
  EXPECT_TRUE(in_range("1.x", "1.4.2"));
  EXPECT_TRUE(in_range("1", "1.4.2"));
  EXPECT_FALSE(in_range("1.2.3", "1.2.4"));
  EXPECT_TRUE(in_range("=1.2.3", "1.2.3"));
  EXPECT_TRUE(in_range("*", "7.0.0"));
  EXPECT_TRUE(in_range("^1 || ^3", "3.1.0"));
  EXPECT_FALSE(in_range("^1 || ^3", "2.1.0"));
}

TEST(VersionRange, PreReleasesOnlyWhenNamed) {
  EXPECT_FALSE(in_range("^1.0", "2.0.0-rc.1"));
  EXPECT_FALSE(in_range("^1.0", "1.5.0-beta"));
  EXPECT_TRUE(in_range(">=1.5.0-alpha <2", "1.5.0-beta"));
}

TEST(VersionRange, RejectsGarbage) {
  for (const char* bad : {"^a.b", "1.2.3.4", ">=x.y.z", "^1 ||"})
    EXPECT_FALSE(kiln::host::VersionRange::parse(bad)) << bad;
}

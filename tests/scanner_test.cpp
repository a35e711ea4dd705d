// Scanning libraries in a child process: every hostile library is reported
// with a precise reason while the host goes on; manifests are cached by the
// library's content digest.
#include <gtest/gtest.h>
#include <kiln/host/catalog.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/scanner.hpp>

#include "test_support.hpp"

using kiln::host::LibraryScanner;
using kiln::test::fixture;
using kiln::test::TempDir;
namespace fs = std::filesystem;

namespace {

LibraryScanner scanner_with_cache(const fs::path& cache, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  return LibraryScanner({kiln::test::kiln_exe(), cache, timeout});
}

LibraryScanner scanner_without_cache() {
  return scanner_with_cache({});
}

}  // namespace

TEST(Scanner, DescribesAGoodPlugin) {
  const auto scan = scanner_without_cache().scan(kiln::test::util_plugin());
  ASSERT_TRUE(scan.ok) << scan.reason;
  EXPECT_EQ(scan.abi_major, KILN_ABI_VERSION_MAJOR);
  ASSERT_EQ(scan.components.size(), 7u);
  EXPECT_EQ(scan.components[0].name, "util.echo");
  EXPECT_EQ(scan.digest, kiln::host::sha256_file(kiln::test::util_plugin()));
  EXPECT_FALSE(scan.from_cache);
}

TEST(Scanner, CrashWhileLoadingIsReportedWithTheSignal) {
  const auto scan = scanner_without_cache().scan(fixture("fixture_crash_on_load"));
  EXPECT_FALSE(scan.ok);
  EXPECT_EQ(scan.reason.rfind("crashed while being scanned: killed by signal SIGSEGV", 0), 0u) << scan.reason;
}

TEST(Scanner, ExceptionFromStaticConstructorIsReported) {
  // Normally the exception unwinds through dlopen and is caught; where it
  // cannot (an ASan build's dlopen interceptor), std::terminate aborts the
  // child. Either way the reason quotes the exception.
  const auto scan = scanner_without_cache().scan(fixture("fixture_throw_on_load"));
  EXPECT_FALSE(scan.ok);
  EXPECT_NE(scan.reason.find("fixture throws from a static constructor"), std::string::npos) << scan.reason;
  EXPECT_TRUE(scan.reason.rfind("threw an exception while loading: ", 0) == 0 ||
              scan.reason.rfind("crashed while being scanned: killed by signal SIGABRT", 0) == 0)
      << scan.reason;
}

TEST(Scanner, HangWhileLoadingIsKilledAfterTheTimeout) {
  TempDir cache;
  const auto scan =
      scanner_with_cache(cache.path(), std::chrono::milliseconds(500)).scan(fixture("fixture_hang_on_load"));
  EXPECT_FALSE(scan.ok);
  EXPECT_EQ(scan.reason.rfind("hung while being scanned: no answer within 500 ms, killed", 0), 0u) << scan.reason;
}

TEST(Scanner, ExitWhileLoadingIsReported) {
  const auto scan = scanner_without_cache().scan(fixture("fixture_exit_on_load"));
  EXPECT_FALSE(scan.ok);
  EXPECT_EQ(scan.reason.rfind("scanner exited with status 7 without describing the library", 0), 0u) << scan.reason;
}

TEST(Scanner, OutputOnStdoutDoesNotCorruptTheResult) {
  const auto scan = scanner_without_cache().scan(fixture("fixture_noisy"));
  ASSERT_TRUE(scan.ok) << scan.reason;
  EXPECT_EQ(scan.components.at(0).name, "fixture.misbehaving");
}

TEST(Scanner, ReasonsFromTheChildArePassedOn) {
  const auto scanner = scanner_without_cache();
  EXPECT_EQ(scanner.scan(fixture("fixture_not_a_plugin")).reason,
            "not a kiln plugin: it exports no 'kiln_plugin_entry' symbol");
  EXPECT_NE(scanner.scan(fixture("fixture_abi_major_2")).reason.find("major versions must match"), std::string::npos);
  EXPECT_EQ(scanner.scan("/nonexistent/x.so").reason.rfind("cannot read /nonexistent/x.so", 0), 0u);
}

TEST(ManifestCache, SecondScanIsServedFromTheCache) {
  TempDir cache;
  const auto scanner = scanner_with_cache(cache.path());
  const auto first = scanner.scan(kiln::test::util_plugin());
  ASSERT_TRUE(first.ok);
  EXPECT_FALSE(first.from_cache);
  const auto second = scanner.scan(kiln::test::util_plugin());
  ASSERT_TRUE(second.ok);
  EXPECT_TRUE(second.from_cache);
  ASSERT_EQ(second.components.size(), first.components.size());
  for (size_t i = 0; i < first.components.size(); ++i)
    EXPECT_EQ(second.components[i].to_json(), first.components[i].to_json());
}

TEST(ManifestCache, KeyIsTheContentNotThePath) {
  TempDir cache, libs;
  const auto scanner = scanner_with_cache(cache.path());
  fs::copy_file(fixture("fixture_good"), libs / "plugin.so");
  ASSERT_TRUE(scanner.scan(libs / "plugin.so").ok);
  // Replace the library at the same path with different content.
  fs::copy_file(fixture("fixture_noisy"), libs / "plugin.so", fs::copy_options::overwrite_existing);
  const auto rescan = scanner.scan(libs / "plugin.so");
  ASSERT_TRUE(rescan.ok);
  EXPECT_FALSE(rescan.from_cache);
  EXPECT_EQ(rescan.components.at(0).name, "fixture.misbehaving");
}

TEST(ManifestCache, CorruptEntryIsIgnoredAndRewritten) {
  TempDir cache;
  const auto scanner = scanner_with_cache(cache.path());
  const auto first = scanner.scan(kiln::test::util_plugin());
  const auto entry = cache / ("manifests/" + first.digest + ".json");
  ASSERT_TRUE(fs::exists(entry));
  kiln::test::write_text(entry, "{ truncated");
  const auto second = scanner.scan(kiln::test::util_plugin());
  ASSERT_TRUE(second.ok) << second.reason;
  EXPECT_FALSE(second.from_cache);
  EXPECT_TRUE(scanner.scan(kiln::test::util_plugin()).from_cache);
}

TEST(DigestCache, ADigestIsRememberedUntilTheLibraryChanges) {
  TempDir cache, libs;
  LibraryScanner::Options options{kiln::test::kiln_exe(), cache.path(), std::chrono::seconds(20)};
  options.digest_settle = std::chrono::milliseconds(0);
  const LibraryScanner scanner(options);
  fs::copy_file(fixture("fixture_good"), libs / "plugin.so");
  const auto first = scanner.scan(libs / "plugin.so");
  ASSERT_TRUE(first.ok) << first.reason;
  EXPECT_EQ(first.digest, kiln::host::sha256_file(libs / "plugin.so"));
  // The remembered digest is what a second scan uses: an entry altered by
  // hand shows through, so the file was not read again.
  ASSERT_TRUE(fs::is_directory(cache / "digests"));
  ASSERT_EQ(std::distance(fs::directory_iterator(cache / "digests"), fs::directory_iterator()), 1);
  const fs::path entry = fs::directory_iterator(cache / "digests")->path();
  auto remembered = kiln::host::Json::parse(kiln::host::read_file(entry));
  remembered["digest"] = std::string(64, 'a');
  kiln::test::write_text(entry, remembered.dump());
  EXPECT_EQ(scanner.scan(libs / "plugin.so").digest, std::string(64, 'a'));
  // A new file at the same path is hashed again.
  fs::copy_file(fixture("fixture_noisy"), libs / "plugin.so", fs::copy_options::overwrite_existing);
  const auto changed = scanner.scan(libs / "plugin.so");
  EXPECT_EQ(changed.digest, kiln::host::sha256_file(libs / "plugin.so"));
  EXPECT_EQ(changed.components.at(0).name, "fixture.misbehaving");
}

TEST(DigestCache, ARecentlyChangedLibraryIsNotRemembered) {
  TempDir cache, libs;
  LibraryScanner::Options options{kiln::test::kiln_exe(), cache.path(), std::chrono::seconds(20)};
  options.digest_settle = std::chrono::hours(1);  // every file here changed within the hour
  fs::copy_file(fixture("fixture_good"), libs / "plugin.so");
  const auto scan = LibraryScanner(options).scan(libs / "plugin.so");
  ASSERT_TRUE(scan.ok) << scan.reason;
  EXPECT_EQ(scan.digest, kiln::host::sha256_file(libs / "plugin.so"));
  EXPECT_FALSE(fs::exists(cache / "digests") && !fs::is_empty(cache / "digests"));
}

TEST(ManifestCache, FailuresAreNotCached) {
  TempDir cache;
  const auto scanner = scanner_with_cache(cache.path());
  EXPECT_FALSE(scanner.scan(fixture("fixture_init_error")).ok);
  EXPECT_FALSE(fs::exists(cache / "manifests") && !fs::is_empty(cache / "manifests"));
}

TEST(Catalog, FirstLibraryOnThePathWinsAndBrokenOnesAreListed) {
  TempDir first, second, cache;
  fs::copy_file(fixture("fixture_shadow_echo"), first / "shadow.so");
  fs::copy_file(fixture("fixture_crash_on_load"), first / "crash.so");
  fs::copy_file(kiln::test::util_plugin(), second / "kiln_util.so");
  const auto catalog =
      kiln::host::PluginCatalog::discover(scanner_with_cache(cache.path()), {first.path(), second.path()});
  ASSERT_EQ(catalog.libraries().size(), 3u);
  EXPECT_FALSE(catalog.libraries()[0].ok);  // crash.so sorts first
  const auto* echo = catalog.find("util.echo");
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->manifest.version.str(), "9.9.9");
  EXPECT_EQ(echo->library, first / "shadow.so");
  size_t shadowed = 0;
  for (const auto& c : catalog.components())
    if (c.status.rfind("shadowed by ", 0) == 0) ++shadowed;
  EXPECT_EQ(shadowed, 1u);
  EXPECT_NE(catalog.find("util.noop"), nullptr);
  EXPECT_EQ(catalog.find("util.nothing"), nullptr);
}

// Issue 17: a library later on the path (one a registry installed, say) won
// any range its higher version satisfied. Search-path order decides now; the
// later one serves only a range that no earlier library accepts.
TEST(Catalog, SearchPathOrderWinsOverAHigherVersion) {
  TempDir first, second, cache;
  fs::copy_file(kiln::test::util_plugin(), first / "kiln_util.so");      // util.echo 1.0.0
  fs::copy_file(fixture("fixture_shadow_echo"), second / "shadow.so");  // util.echo 9.9.9
  const auto catalog =
      kiln::host::PluginCatalog::discover(scanner_with_cache(cache.path()), {first.path(), second.path()});
  for (const std::string range : {"", ">=1.0", "*", "^1"}) {
    const auto* echo = catalog.find("util.echo", range);
    ASSERT_NE(echo, nullptr) << range;
    EXPECT_EQ(echo->library, first / "kiln_util.so") << range;
    EXPECT_EQ(echo->manifest.version.str(), "1.0.0") << range;
  }
  const auto* nine = catalog.find("util.echo", "^9");
  ASSERT_NE(nine, nullptr);
  EXPECT_EQ(nine->library, second / "shadow.so");
  for (const auto& c : catalog.components())
    if (c.library == second / "shadow.so") {
      EXPECT_EQ(c.status, "shadowed by " + (first / "kiln_util.so").string() + " (earlier on the search path)");
    }

  // `kiln plugins list` says which one is shadowed and why. KILN_PLUGIN_PATH
  // comes before the built-in plugins, so there 9.9.9 wins over 1.0.0.
  const auto run = kiln::test::run_kiln(
      {"plugins", "list"}, {{"KILN_PLUGIN_PATH", second.path().string()}, {"KILN_CACHE_DIR", cache.path().string()}});
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_NE(run.output.find("note: util.echo 1.0.0 in "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("is shadowed by " + fs::canonical(second.path()).string() +
                            "/shadow.so (earlier on the search path); the first library on the path wins"),
            std::string::npos)
      << run.output;
}

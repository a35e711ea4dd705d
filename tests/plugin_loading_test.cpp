// Loading libraries into this process: the version check and each broken
// library that is safe to load in-process (hostile ones: scanner_test).
#include <gtest/gtest.h>
#include <kiln/host/invoke.hpp>
#include <kiln/host/plugin_library.hpp>

#include "test_support.hpp"

using kiln::host::check_abi_version;
using kiln::host::PluginLibrary;
using kiln::host::PluginLoadError;
using kiln::test::fixture;

namespace {

std::string load_error(const std::filesystem::path& path) {
  try {
    PluginLibrary::load(path);
  } catch (const PluginLoadError& e) {
    return e.what();
  }
  return "loaded";
}

}  // namespace

TEST(VersionNegotiation, AcceptsEqualAndOlderMinor) {
  EXPECT_FALSE(check_abi_version(1, 0, 1, 0));
  EXPECT_FALSE(check_abi_version(1, 2, 1, 5));
  EXPECT_FALSE(check_abi_version(KILN_ABI_VERSION_MAJOR, KILN_ABI_VERSION_MINOR));
}

TEST(VersionNegotiation, RejectsNewerMinorNamingBothVersions) {
  const auto problem = check_abi_version(1, 6, 1, 5);
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("ABI 1.6"), std::string::npos) << *problem;
  EXPECT_NE(problem->find("ABI 1.5"), std::string::npos) << *problem;
}

TEST(VersionNegotiation, RejectsOtherMajorNamingBothVersions) {
  for (const auto& [major, host_major] : {std::pair{2u, 1u}, std::pair{0u, 1u}, std::pair{1u, 2u}}) {
    const auto problem = check_abi_version(major, 0, host_major, 3);
    ASSERT_TRUE(problem);
    EXPECT_NE(problem->find("ABI " + std::to_string(major) + ".0"), std::string::npos) << *problem;
    EXPECT_NE(problem->find("ABI " + std::to_string(host_major) + ".3"), std::string::npos) << *problem;
    EXPECT_NE(problem->find("major versions must match"), std::string::npos) << *problem;
  }
}

TEST(PluginLoading, LoadsAGoodRawCPlugin) {
  const auto library = PluginLibrary::load(fixture("fixture_good"));
  ASSERT_EQ(library->components().size(), 1u);
  EXPECT_EQ(library->components()[0].manifest.name, "fixture.raw");
  EXPECT_EQ(library->abi_major(), KILN_ABI_VERSION_MAJOR);
  EXPECT_EQ(PluginLibrary::load(fixture("fixture_good")).get(), library.get()) << "loaded twice";
}

TEST(PluginLoading, ReadsOnlyTheFieldsAnOlderStructHas) {
  const auto library = PluginLibrary::load(fixture("fixture_legacy_struct"));
  ASSERT_EQ(library->components().size(), 1u);
  EXPECT_EQ(library->components()[0].tuner, nullptr);  // past struct_size: never read
  EXPECT_EQ(library->components()[0].serving, nullptr);
  kiln::test::RecordingSink sink;
  const std::atomic<bool> not_cancelled{false};
  const auto outcome = kiln::host::invoke_component(library->components()[0], {}, sink, not_cancelled);
  EXPECT_TRUE(outcome.ok) << outcome.message;
  ASSERT_EQ(sink.logs.size(), 1u);
  EXPECT_EQ(sink.logs[0].second, "raw fixture ran");
}

TEST(PluginLoading, NotAPluginIsNamedAsSuch) {
  EXPECT_EQ(load_error(fixture("fixture_not_a_plugin")), "not a kiln plugin: it exports no 'kiln_plugin_entry' symbol");
}

TEST(PluginLoading, GarbageFileIsNotLoadable) {
  kiln::test::TempDir dir;
  kiln::test::write_text(dir / "garbage.so", "this is not ELF");
  const auto error = load_error(dir / "garbage.so");
  EXPECT_EQ(error.rfind("not a loadable library: ", 0), 0u) << error;
  EXPECT_NE(error.find("garbage.so"), std::string::npos) << error;
}

TEST(PluginLoading, OtherMajorIsRejected) {
  const auto error = load_error(fixture("fixture_abi_major_2"));
  EXPECT_NE(error.find("ABI 2.0"), std::string::npos) << error;
  EXPECT_NE(error.find("major versions must match"), std::string::npos) << error;
}

TEST(PluginLoading, NewerMinorIsRejected) {
  const auto error = load_error(fixture("fixture_abi_newer_minor"));
  EXPECT_NE(error.find("newer than this host's ABI"), std::string::npos) << error;
}

TEST(PluginLoading, InitErrorIsReported) {
  EXPECT_EQ(load_error(fixture("fixture_init_error")), "plugin init failed: fixture refuses to start: no GPU found");
}

TEST(PluginLoading, InvalidManifestIsReported) {
  const auto error = load_error(fixture("fixture_bad_manifest"));
  EXPECT_NE(error.find("component #0: invalid manifest"), std::string::npos) << error;
  EXPECT_NE(error.find("'1.0' is not a semantic version"), std::string::npos) << error;
}

TEST(PluginLoading, DuplicateComponentNamesAreRejected) {
  EXPECT_EQ(load_error(fixture("fixture_duplicate_names")), "two components are named 'fixture.misbehaving'");
}

TEST(PluginLoading, MissingFileIsReported) {
  const auto error = load_error("/nonexistent/kiln_nothing.so");
  EXPECT_EQ(error.rfind("not a loadable library", 0), 0u) << error;
}

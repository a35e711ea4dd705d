// A plugin package archive (registry/lib/archive.cpp, package.cpp): the input
// as a .kpkg file, extracted and checked as `kiln install` and the registry
// server do (any valid signature; component files in it parsed too; seed03
// holds one). Only ArchiveError and PackageError may come out.
#include <kiln/registry/package.hpp>

#include <kiln/host/files.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto archive = kiln::fuzz::scratch_dir() / "input.kpkg";
  const auto staging = kiln::fuzz::scratch_dir() / "staging";
  kiln::host::write_file_atomic(archive, kiln::fuzz::text_of(data, size));
  kiln::registry::ExtractLimits limits;
  limits.max_total_bytes = 4u << 20;
  try {
    const auto package = kiln::registry::open_package(archive, staging, nullptr, limits);
    std::filesystem::remove_all(package.dir);
  } catch (const kiln::registry::ArchiveError&) {
  } catch (const kiln::registry::PackageError&) {
  }
  if (std::filesystem::exists(staging)) kiln::fuzz::fail("the staging directory was left behind");
  return 0;
}

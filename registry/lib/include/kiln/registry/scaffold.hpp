// `kiln plugin new`: a standalone plugin project that builds out of tree
// against the installed SDK (find_package(Kiln), kiln_add_plugin).
#pragma once

#include <filesystem>
#include <string>

namespace kiln::registry {

// Writes CMakeLists.txt, src/<lib>.cpp (one component NAME of `kind`),
// test/<lib>_test.cpp (GoogleTest: runs the sample pipeline with kiln),
// pipeline.yaml, kiln-package.json and README.md into `dir`, which must not
// exist or be empty. Returns `dir`. Throws naming the bad argument.
std::filesystem::path scaffold_plugin(const std::string& name, const std::string& kind,
                                      const std::filesystem::path& dir);

}  // namespace kiln::registry

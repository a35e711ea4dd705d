#include <kiln/registry/scaffold.hpp>

#include <kiln/host/files.hpp>
#include <kiln/host/manifest.hpp>

#include <algorithm>
#include <stdexcept>

namespace kiln::registry {
namespace fs = std::filesystem;
namespace {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

const char* kCMake = R"(# @NAME@: a kiln plugin built against the installed kiln SDK.
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=<kiln install prefix> && cmake --build build && ctest --test-dir build
cmake_minimum_required(VERSION 3.22)
project(@LIB@ LANGUAGES CXX)

find_package(Kiln REQUIRED)

# The plugin library: build/plugins/@LIB@.so
kiln_add_plugin(@LIB@ SOURCES src/@LIB@.cpp OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/plugins)

enable_testing()
find_package(GTest)
if(GTest_FOUND)
  add_executable(@LIB@_test test/@LIB@_test.cpp)
  target_link_libraries(@LIB@_test PRIVATE GTest::gtest_main)
  target_compile_features(@LIB@_test PRIVATE cxx_std_17)
  target_compile_definitions(@LIB@_test PRIVATE
    KILN_EXE="${KILN_EXECUTABLE}"
    PLUGIN_DIR="${CMAKE_BINARY_DIR}/plugins"
    PIPELINE="${CMAKE_CURRENT_SOURCE_DIR}/pipeline.yaml"
    WORK_DIR="${CMAKE_BINARY_DIR}/test-work")
  add_dependencies(@LIB@_test @LIB@)
  add_test(NAME @LIB@_test COMMAND @LIB@_test)
endif()
)";

const char* kSource = R"(// @NAME@: one kiln component. docs/plugin-authoring.md explains the SDK.
#include <kiln/sdk.hpp>

#include <fstream>

struct Component {
  static kiln::Manifest manifest() {
    return kiln::Manifest("@NAME@", "0.1.0", kiln::Kind::@KIND@)
        .description("Writes a message to message.txt")
        .param(kiln::Param::String("message").default_value("hello").description("what to write"))
        .output(kiln::Port("text", "Text").description("message.txt"))
        .output_parameter(kiln::Port("length", "int"));
  }

  void run(kiln::Context& ctx) {
    const std::string message = ctx.param_string("message");
    std::ofstream out(ctx.output_path("text") / "message.txt");
    out << message << "\n";
    if (!out.flush()) throw kiln::Error("cannot write message.txt", KILN_ERROR_IO);
    ctx.set_output("length", static_cast<int64_t>(message.size()));
  }
};

KILN_PLUGIN(Component)
)";

const char* kTest = R"(// Runs pipeline.yaml with kiln against the freshly built plugin.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

TEST(Plugin, SamplePipelineRuns) {
  const std::string command = std::string("KILN_PLUGIN_PATH='") + PLUGIN_DIR + "' '" + KILN_EXE + "' run '" +
                              PIPELINE + "' --workdir '" + WORK_DIR + "'";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}
)";

const char* kPipeline = R"(# A sample pipeline using @NAME@:  kiln run pipeline.yaml
apiVersion: kiln/v1
kind: Pipeline
metadata:
  name: @LIB@-sample
steps:
  - name: say
    component: @NAME@@^0.1
    parameters: {message: hello from @NAME@}
)";

const char* kPackage = R"({
  "name": "@NAME@",
  "version": "0.1.0",
  "library": "build/plugins/@LIB@.so",
  "license": "Apache-2.0",
  "description": "@NAME@: a kiln plugin"
}
)";

const char* kReadme = R"(# @NAME@

A kiln plugin with one component, `@NAME@` (kind @KINDNAME@).

Build and test against an installed kiln (its prefix holds `lib/cmake/Kiln`):

    cmake -S . -B build -DCMAKE_PREFIX_PATH=/path/to/kiln/prefix
    cmake --build build
    ctest --test-dir build
    KILN_PLUGIN_PATH=build/plugins kiln run pipeline.yaml

Publish it (docs/registry.md):

    kiln keys generate                   # once
    kiln plugin pack .                   # signs @NAME@-0.1.0.kpkg
    kiln plugin publish @NAME@-0.1.0.kpkg --registry http://HOST:PORT

Layout: `src/` the component, `test/` a GoogleTest that runs `pipeline.yaml`,
`kiln-package.json` the package manifest `kiln plugin pack` reads.
)";

}  // namespace

fs::path scaffold_plugin(const std::string& name, const std::string& kind, const fs::path& dir) {
  if (!host::is_component_name(name))
    throw std::runtime_error("plugin name '" + name + "' must be lower-case dotted words, e.g. acme.scaler");
  const auto& kinds = host::component_kinds();
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
    throw std::runtime_error("--kind '" + kind + "' is not one of data, tune, train, evaluate, serve, generic");
  std::error_code ec;
  if (fs::exists(dir) && !fs::is_empty(dir, ec))
    throw std::runtime_error(dir.string() + " already exists and is not empty");
  std::string lib = name;
  std::replace(lib.begin(), lib.end(), '.', '_');
  std::replace(lib.begin(), lib.end(), '-', '_');
  std::string kind_enum = kind;
  kind_enum[0] = static_cast<char>(kind_enum[0] - 'a' + 'A');
  const auto fill = [&](const char* text) {
    return replace_all(replace_all(replace_all(replace_all(text, "@NAME@", name), "@LIB@", lib), "@KIND@", kind_enum),
                       "@KINDNAME@", kind);
  };
  // Into a sibling temporary dir first, so a failure leaves nothing half-written.
  const fs::path target = fs::absolute(dir);
  const fs::path temp = target.parent_path() / ("." + target.filename().string() + ".new");
  fs::remove_all(temp);
  try {
    host::write_file_atomic(temp / "CMakeLists.txt", fill(kCMake));
    host::write_file_atomic(temp / "src" / (lib + ".cpp"), fill(kSource));
    host::write_file_atomic(temp / "test" / (lib + "_test.cpp"), fill(kTest));
    host::write_file_atomic(temp / "pipeline.yaml", fill(kPipeline));
    host::write_file_atomic(temp / "kiln-package.json", fill(kPackage));
    host::write_file_atomic(temp / "README.md", fill(kReadme));
    if (fs::exists(target)) fs::remove(target);
    fs::rename(temp, target);
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }
  return target;
}

}  // namespace kiln::registry

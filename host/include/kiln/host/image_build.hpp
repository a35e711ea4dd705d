// `kiln image build`: an OCI image (a local image layout, written with umoci,
// no daemon) holding kiln, the plugins and component files a pipeline uses,
// the shared libraries they load (their closure, as the dynamic loader
// resolves it here: LibTorch, OpenBLAS, ...), the pipeline's directory and a
// non-root user. Compiled pods run it (docs/kubernetes.md), and so does the
// container executor (`image: oci:LAYOUT:TAG`): with the image's own kiln and
// plugins, which kiln_image.hpp's descriptor names.
#pragma once

#include <kiln/host/kiln_image.hpp>
#include <kiln/host/plan.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace kiln::host {

struct ImageBuildOptions {
  std::filesystem::path layout;  // the OCI image layout directory (created when absent)
  std::string tag = "latest";    // replaced when the layout has it already
  std::filesystem::path kiln;    // the kiln binary to put in the image
  std::vector<std::filesystem::path> components;  // plugin libraries and component files (plugins_of)
  std::filesystem::path pipeline_source;          // the pipeline's directory on this host ("" = none)
  // More host files or directories, each copied to an absolute path in the image (--add SRC:DEST).
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> extra;
  KilnImage image{"/opt/kiln/bin/kiln", "/opt/kiln/lib/kiln/plugins", "/kiln/pipeline", "kiln", 65532, 65532};
  std::function<void(const std::string&)> progress;  // one line per phase; may be empty
};

struct BuiltImage {
  std::string reference;  // oci:LAYOUT:TAG, as `image:` names it
  std::string digest;     // the manifest's digest
  std::vector<std::filesystem::path> libraries;  // the shared libraries copied (host paths)
  uint64_t bytes = 0;     // the size of the files put in the image, before compression
};

// The libraries and component files a plan loads: every step's component,
// every tuning step's tuner and trial steps, without repeats, in plan order.
std::vector<std::filesystem::path> plugins_of(const Plan& plan);

// Every shared library `elf_files` need, transitively, with the dynamic
// loader: `ldd`'s answer (absolute paths on this host, sorted, no repeats).
// Throws std::runtime_error naming the file and the library when one is not
// found.
std::vector<std::filesystem::path> shared_library_closure(const std::vector<std::filesystem::path>& elf_files);

// Builds it. Throws std::runtime_error naming what failed (a missing file,
// umoci missing or failing); a failed build leaves the layout's other tags as
// they were.
BuiltImage build_image(const ImageBuildOptions& options);

}  // namespace kiln::host

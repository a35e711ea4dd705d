#include "private_file.hpp"

#include <kiln/host/files.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace kiln::registry {
namespace fs = std::filesystem;

void write_private_file(const fs::path& path, const std::string& content) {
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::exists(parent)) {
    if (parent.has_parent_path()) fs::create_directories(parent.parent_path());
    if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error("cannot create " + parent.string() + ": " + std::strerror(errno));
  }
  host::write_file_atomic(path, content, 0600);
}

}  // namespace kiln::registry

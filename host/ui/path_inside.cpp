#include "path_inside.hpp"

namespace kiln::ui {

namespace fs = std::filesystem;

bool path_inside(const fs::path& path, const fs::path& dir) {
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) return false;
  const fs::path base = fs::canonical(dir, ec);
  if (ec) return false;
  auto r = real.begin();
  for (auto b = base.begin(); b != base.end(); ++b, ++r)
    if (r == real.end() || *r != *b) return false;
  return true;
}

}  // namespace kiln::ui

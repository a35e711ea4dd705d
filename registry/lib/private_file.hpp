// Files only their owner may read (private keys, the registry's token secret).
#pragma once

#include <filesystem>
#include <string>

namespace kiln::registry {

// Writes `content` to `path` atomically, mode 0600 from the first byte: the
// temporary file is created with O_CREAT|O_EXCL and mode 0600 (the umask can
// only narrow it), so no moment exists when another user could open it; no
// chmod follows. Creates parent directories (mode 0700 when new).
void write_private_file(const std::filesystem::path& path, const std::string& content);

}  // namespace kiln::registry

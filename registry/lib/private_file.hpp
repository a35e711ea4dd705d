// Files only their owner may read (private keys, the registry's token secret).
#pragma once

#include <filesystem>
#include <string>

namespace kiln::registry {

// Writes `content` to `path` atomically, mode 0600 from the first byte
// (host::write_file_atomic with mode 0600: the temporary file is created with
// O_CREAT|O_EXCL and that mode, which the umask can only narrow, so no moment
// exists when another user could open it; no chmod follows). Creates parent
// directories (the last one mode 0700 when new).
void write_private_file(const std::filesystem::path& path, const std::string& content);

}  // namespace kiln::registry

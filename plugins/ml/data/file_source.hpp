// Whole-file reading that undoes gzip transparently (CSV and IDX inputs are
// often shipped as .gz).
#pragma once

#include <filesystem>
#include <string>

namespace kiln::data {

// The file's bytes, gunzipped when it starts with gzip's magic bytes 1f 8b.
// Throws bad_input naming the file when it is missing, unreadable or a
// truncated/corrupt gzip stream.
std::string read_file_maybe_gzip(const std::filesystem::path& path);

}  // namespace kiln::data

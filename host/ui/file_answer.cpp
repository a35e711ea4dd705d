#include "file_answer.hpp"

namespace kiln::ui {

FileAnswer file_answer(const ConfinedFile& file, std::string file_name, const char* content_type,
                       const std::string* range, const std::string& whole_hint) {
  const uint64_t size = static_cast<uint64_t>(file.size());
  const http::ByteRange wanted = range ? http::parse_byte_range(*range, size) : http::ByteRange{};
  if (wanted.kind == http::ByteRange::Kind::Unsatisfiable)
    return FileAnswer{"", content_type, std::move(file_name), wanted, size};
  if (wanted.kind == http::ByteRange::Kind::Satisfiable) {
    if (wanted.length() > static_cast<uint64_t>(kMaxDownloadBytes))
      throw ApiError(413, "the range asks for " + std::to_string(wanted.length()) + " bytes; at most " +
                              std::to_string(kMaxDownloadBytes) + " are sent at once");
    return FileAnswer{file.read(static_cast<int64_t>(wanted.first), static_cast<int64_t>(wanted.length())),
                      content_type, std::move(file_name), wanted, size};
  }
  if (file.size() > kMaxDownloadBytes)
    throw ApiError(413, file_name + " has " + std::to_string(file.size()) + " bytes; at most " +
                            std::to_string(kMaxDownloadBytes) + " are sent whole (" + whole_hint + ")");
  return FileAnswer{file.read(0, file.size()), content_type, std::move(file_name), {}, size};
}

}  // namespace kiln::ui

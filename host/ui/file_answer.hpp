// A file's bytes as one answer: the whole file, or the one byte range a
// Range header asks for (host/http/byte_range.hpp), each at most
// kMaxDownloadBytes. Shared by artifact downloads and raw step logs; the
// router turns it into 200, 206 or 416 with Content-Range (ui_server.cpp).
#pragma once

#include "byte_range.hpp"
#include "confined_file.hpp"

#include <cstdint>
#include <string>

namespace kiln::ui {

inline constexpr int64_t kMaxDownloadBytes = 32 << 20;  // one file (or one range of it) sent at once

// A file's bytes and how to send them.
struct FileAnswer {
  std::string body;
  const char* content_type = "application/octet-stream";  // a static string
  std::string file_name;
  // With a Range request: what the body is (Satisfiable: those bytes, 206;
  // Unsatisfiable: none, 416) of a file of `size` bytes; Ignored: the whole file.
  http::ByteRange range{};
  uint64_t size = 0;
};

// `file` whole, or the range `range` (a Range header; null: none) asks for.
// ApiError 413 when the whole file, or the range, is over kMaxDownloadBytes;
// `whole_hint` ends the whole file's refusal ("ask for ranges", "kiln
// artifacts export copies it").
FileAnswer file_answer(const ConfinedFile& file, std::string file_name, const char* content_type,
                       const std::string* range, const std::string& whole_hint);

}  // namespace kiln::ui

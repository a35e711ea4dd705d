#include "file_source.hpp"

#include <zlib.h>

#include <fstream>
#include <iterator>
#include <memory>

#include "common.hpp"

namespace kiln::data {
namespace {

bool is_gzip(const std::string& bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

struct InflateStream {
  z_stream stream{};
  bool open = false;
  ~InflateStream() {
    if (open) inflateEnd(&stream);
  }
};

// Inflates every gzip member in turn (gzip allows concatenated members).
std::string gunzip(const std::string& bytes, const std::filesystem::path& path) {
  std::string out;
  InflateStream z;
  // 16 + MAX_WBITS: expect a gzip header and trailer, not raw zlib.
  if (inflateInit2(&z.stream, 16 + MAX_WBITS) != Z_OK) bad_input(path.string() + ": cannot start gzip decoding");
  z.open = true;
  z.stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.stream.avail_in = static_cast<uInt>(bytes.size());
  std::string chunk(1 << 16, '\0');
  int status = Z_OK;
  while (true) {
    z.stream.next_out = reinterpret_cast<Bytef*>(chunk.data());
    z.stream.avail_out = static_cast<uInt>(chunk.size());
    status = inflate(&z.stream, Z_NO_FLUSH);
    out.append(chunk.data(), chunk.size() - z.stream.avail_out);
    if (status == Z_STREAM_END) {
      if (z.stream.avail_in == 0) break;
      if (inflateReset(&z.stream) != Z_OK) bad_input(path.string() + ": corrupt gzip stream");
      continue;
    }
    if (status == Z_BUF_ERROR && z.stream.avail_in == 0)
      bad_input(path.string() + ": truncated gzip stream (the file ends before the compressed data does)");
    if (status != Z_OK)
      bad_input(path.string() + ": corrupt gzip stream: " + (z.stream.msg ? z.stream.msg : "inflate failed"));
  }
  return out;
}

}  // namespace

std::string read_file_maybe_gzip(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) bad_input(path.string() + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_input(path.string() + ": cannot open for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) bad_input(path.string() + ": read error");
  // inflate's avail_in is 32-bit; inputs beyond 4 GiB are out of scope here.
  if (bytes.size() > 0xffffffffu) bad_input(path.string() + ": files over 4 GiB are not supported");
  return is_gzip(bytes) ? gunzip(bytes, path) : bytes;
}

}  // namespace kiln::data

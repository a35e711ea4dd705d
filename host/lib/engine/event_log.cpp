#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <kiln/host/event_log.hpp>
#include <kiln/host/files.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace kiln::host {
namespace fs = std::filesystem;

namespace {


int64_t epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The whole lines of `text` and where the last one ends.
template <typename F>
size_t for_each_line(const std::string& text, F&& f) {
  size_t start = 0;
  for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    f(std::string_view(text).substr(start, nl - start));
    start = nl + 1;
  }
  return start;
}

std::string read_from(int fd, uint64_t offset, const fs::path& path) {
  std::string out;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::pread(fd, chunk, sizeof chunk, static_cast<off_t>(offset + out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_file_error("cannot read", path);
    if (n == 0) return out;
    out.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

EventLogWriter::EventLogWriter(const fs::path& path) : path_(path) {
  fs::create_directories(path.parent_path());
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_file_error("cannot open", path);
  const std::string existing = read_from(fd_, 0, path);
  uint64_t last = 0;
  const size_t whole = for_each_line(existing, [&](std::string_view line) {
    const Json event = Json::parse(line, nullptr, false);
    if (event.is_object() && event.contains("seq") && event["seq"].is_number_unsigned())
      last = event["seq"].get<uint64_t>();
  });
  if (whole != existing.size() && ::ftruncate(fd_, static_cast<off_t>(whole)) != 0) throw_file_error("cannot truncate", path);
  if (::lseek(fd_, 0, SEEK_END) < 0) throw_file_error("cannot seek", path);
  next_seq_ = last + 1;
}

EventLogWriter::~EventLogWriter() {
  try {
    flush(true);
  } catch (const std::exception&) {  // nothing to report to from a destructor
  }
  if (fd_ >= 0) ::close(fd_);
}

void EventLogWriter::on_event(uint64_t seq, const RunEvent& event) {
  Json line{{"v", kEventLogVersion}, {"seq", seq}, {"ts", epoch_ms()}};
  line.update(to_json(event));
  buffer_ += line.dump(-1, ' ', false, Json::error_handler_t::replace);
  buffer_ += '\n';
  next_seq_ = seq + 1;
}

void EventLogWriter::flush(bool final) {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_file_error("cannot write", path_);
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
  if (final && ::fsync(fd_) != 0) throw_file_error("cannot fsync", path_);
}

EventLogReader::EventLogReader(fs::path path, uint64_t from_seq) : path_(std::move(path)), next_seq_(from_seq) {}

std::vector<Json> EventLogReader::poll() {
  std::vector<Json> out;
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return out;  // not started yet
    throw_file_error("cannot open", path_);
  }
  std::string text;
  try {
    text = read_from(fd, offset_, path_);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  const size_t whole = for_each_line(text, [&](std::string_view line) {
    ++line_;
    Json event = Json::parse(line, nullptr, false);
    if (!event.is_object() || !event.contains("seq") || !event["seq"].is_number_unsigned())
      throw std::runtime_error(path_.string() + ":" + std::to_string(line_) + ": not an event log line");
    const uint64_t seq = event["seq"].get<uint64_t>();
    if (seq < next_seq_) return;
    next_seq_ = seq + 1;
    finished_ = event.value("type", "") == "run_finished";
    out.push_back(std::move(event));
  });
  offset_ += whole;
  return out;
}

}  // namespace kiln::host

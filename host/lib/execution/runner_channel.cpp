// The runner channel's host side: see runner_channel.hpp.
#include "runner_channel.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace kiln::host {
namespace fs = std::filesystem;

int open_log(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create " + path.string());
  return fd;
}

LazyLog::~LazyLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::string LazyLog::write(std::string_view bytes) {
  if (failed_) return "";
  const auto open = [&] { fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644); };
  if (fd_ < 0) open();
  if (fd_ < 0 && errno == ENOENT) {  // the step wrote before it made its directory
    std::error_code ignored;
    fs::create_directories(path_.parent_path(), ignored);
    open();
  }
  while (fd_ >= 0 && !bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  if (fd_ >= 0 && bytes.empty()) return "";
  failed_ = true;
  return "cannot write " + path_.string() + ": " + std::strerror(errno) + "; the rest of this log is dropped";
}

void AttemptState::expect_logs(const fs::path& stdout_file, const fs::path& stderr_file) {
  logs[0] = std::make_unique<LazyLog>(stdout_file);
  logs[1] = std::make_unique<LazyLog>(stderr_file);
  const std::lock_guard<std::mutex> lock(mutex_);
  open_logs_ = 2;
}

void AttemptState::on_log_closed(size_t which) {
  logs.at(which).reset();  // closes the file
  std::unique_lock<std::mutex> lock(mutex_);
  --open_logs_;
  finish_if_done(lock);
}

void AttemptState::on_channel_closed() {
  std::unique_lock<std::mutex> lock(mutex_);
  channel_closed_ = true;
  finish_if_done(lock);
}

void AttemptState::on_exit(ExitStatus status, std::string why) {
  std::unique_lock<std::mutex> lock(mutex_);
  exit_ = status;
  why_ = std::move(why);
  finish_if_done(lock);
}

void AttemptState::on_start_failed(const std::string& why) {
  // No process ever held the channel: nothing else writes the result.
  got_result = true;
  result.failure_class = "crash";
  result.message = "cannot start the step: " + why;
  ExitStatus failed;
  failed.code = 1;
  on_exit(failed);
}

void AttemptState::finish_if_done(std::unique_lock<std::mutex>& lock) {
  if (!channel_closed_ || open_logs_ > 0 || !exit_ || reported_) return;
  reported_ = true;
  lock.unlock();
  const auto describe = [&] {
    if (!why_.empty()) return why_;
    const ExitStatus& s = *exit_;
    return s.code == -1 && s.signal == 0 ? std::string("was lost (the step server died)") : s.describe();
  };
  if (!got_result) {
    result.failure_class = "crash";
    result.message = "the step's process " + describe() + " before reporting a result";
  } else if (!exit_->success() && result.ok()) {
    result.failure_class = "crash";
    result.message = "the step's process " + describe() + " after reporting success";
  }
  observer->on_finished(std::move(result));
}

namespace {

// A line from a step, quoted for a warning: invalid UTF-8 is replaced, never
// thrown on, and a long line is cut.
std::string quoted(std::string_view line) {
  constexpr size_t kShown = 200;
  const std::string shown(line.substr(0, kShown));
  return Json(shown).dump(-1, ' ', false, Json::error_handler_t::replace) +
         (line.size() > kShown ? " (" + std::to_string(line.size()) + " bytes)" : "");
}

}  // namespace

void apply_channel_line(std::string_view line, AttemptState& state) {
  DecodedLine decoded = decode(line);
  if (!decoded.ok()) {
    state.observer->on_event(warning_event("unreadable runner line: " + quoted(line) + ": " + decoded.error));
    return;
  }
  RunnerEvent& event = *decoded.event;
  if (auto* output = std::get_if<OutputParameterEvent>(&event)) {
    state.result.output_parameters[output->name] = std::move(output->value);
  } else if (auto* metadata = std::get_if<OutputMetadataEvent>(&event)) {
    state.result.output_metadata[metadata->name] = std::move(metadata->metadata);
  } else if (const auto* result = std::get_if<ResultEvent>(&event)) {
    state.got_result = true;
    if (!result->ok) {
      state.result.failure_class = result->code == KILN_ERROR_CANCELLED ? "cancelled" : "error";
      state.result.message = result->message;
    }
  } else if (const auto* hello = std::get_if<HelloEvent>(&event)) {
    if (hello->channel != kRunnerChannelVersion)
      state.observer->on_event(warning_event("the runner speaks channel version " + std::to_string(hello->channel) +
                                             ", this host " + std::to_string(kRunnerChannelVersion)));
  } else {
    state.observer->on_event(std::move(event));
  }
}

void apply_channel_bytes(std::string_view bytes, AttemptState& state) {
  state.lines.feed(
      bytes, [&](std::string_view line) { apply_channel_line(line, state); },
      [&] {
        state.observer->on_event(warning_event("dropped a runner line longer than the channel's limit of " +
                                               std::to_string(kMaxRunnerLineBytes) + " bytes"));
      });
}

ChannelReactor::ChannelReactor()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (epoll_ < 0 || wake_ < 0) throw std::system_error(errno, std::generic_category(), "epoll");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_;
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &event);
  thread_ = std::thread([this] { loop(); });
}

ChannelReactor::~ChannelReactor() {
  const uint64_t one = 1;
  (void)::write(wake_, &one, sizeof one);
  thread_.join();
  for (const auto& [fd, state] : watched_) ::close(fd);
  ::close(wake_);
  ::close(epoll_);
}

void ChannelReactor::watch(int fd, std::shared_ptr<AttemptState> state) {
  add(fd, Watched{std::move(state), kChannel});
}

void ChannelReactor::watch_logs(int stdout_fd, int stderr_fd, const fs::path& stdout_file,
                                const fs::path& stderr_file, const std::shared_ptr<AttemptState>& state) {
  state->expect_logs(stdout_file, stderr_file);
  add(stdout_fd, Watched{state, 0});
  add(stderr_fd, Watched{state, 1});
}

void ChannelReactor::add(int fd, Watched watched) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    watched_[fd] = std::move(watched);
  }
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0)
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
}

void ChannelReactor::loop() {
  std::array<epoll_event, 64> events;
  for (;;) {
    const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < n; ++i) {
      if (events[static_cast<size_t>(i)].data.fd == wake_) return;
      drain(events[static_cast<size_t>(i)].data.fd);
    }
  }
}

// Reads what is there; on end of file hands the attempt its closed channel (or log).
void ChannelReactor::drain(int fd) {
  std::shared_ptr<AttemptState> state;
  int stream = kChannel;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto it = watched_.find(fd);
    if (it == watched_.end()) {  // not ours (any more): stop epoll reporting it
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
      return;
    }
    state = it->second.state;
    stream = it->second.stream;
  }
  for (;;) {
    const ssize_t n = ::read(fd, chunk_.data(), chunk_.size());
    if (n > 0) {
      const std::string_view bytes(chunk_.data(), static_cast<size_t>(n));
      if (stream == kChannel) {
        apply_channel_bytes(bytes, *state);
      } else if (const std::string error = state->logs[static_cast<size_t>(stream)]->write(bytes); !error.empty()) {
        state->observer->on_event(warning_event(error));
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    break;  // end of file, or an error: the channel is over
  }
  {  // unregister before the number can be reused by a new step's pipe
    const std::lock_guard<std::mutex> lock(mutex_);
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    watched_.erase(fd);
    ::close(fd);
  }
  if (stream == kChannel)
    state->on_channel_closed();
  else
    state->on_log_closed(static_cast<size_t>(stream));
}

}  // namespace kiln::host

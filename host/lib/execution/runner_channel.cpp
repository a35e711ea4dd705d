// The runner channel's host side: see runner_channel.hpp.
#include "runner_channel.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace kiln::host {
namespace fs = std::filesystem;

int open_log(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create " + path.string());
  return fd;
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

void AttemptState::finish_if_done(std::unique_lock<std::mutex>& lock) {
  if (!channel_closed_ || !exit_ || reported_) return;
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

// Text from a step, safe to store: invalid UTF-8 is replaced, never thrown on.
std::string printable(const std::string& text) {
  return Json(text).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Turns one channel line into what the engine may trust: events of the kinds
// and field types of channel version 1. Anything else (a plugin or one of its
// children scribbling on fd 3) becomes a warning log line, never a crash.
std::optional<Json> checked_event(const Json& e) {
  if (!e.is_object() || !e.contains("event") || !e["event"].is_string()) return std::nullopt;
  const std::string kind = e["event"];
  const auto is_string = [&](const char* key) { return e.contains(key) && e[key].is_string(); };
  const auto is_number = [&](const char* key) { return e.contains(key) && e[key].is_number(); };
  if (kind == "log" && is_string("level") && is_string("message")) return e;
  if (kind == "metric" && is_string("name") && is_number("value") && e.contains("step") &&
      e["step"].is_number_integer())
    return e;
  if (kind == "progress" && is_number("fraction") && (!e.contains("message") || is_string("message"))) return e;
  if ((kind == "output_parameter" && is_string("name") && e.contains("value")) ||
      (kind == "output_metadata" && is_string("name") && e.contains("metadata") && e["metadata"].is_object()) ||
      (kind == "result" && e.contains("ok") && e["ok"].is_boolean() && e.contains("code") &&
       e["code"].is_number_integer() && is_string("message")) ||
      (kind == "hello"))
    return e;
  return std::nullopt;
}

}  // namespace

void apply_channel_line(const std::string& line, AttemptState& state) {
  std::optional<Json> event;
  try {
    event = checked_event(Json::parse(line));
  } catch (const std::exception&) {  // not JSON at all
  }
  if (!event) {
    state.observer->on_event(
        {{"event", "log"}, {"level", "warning"}, {"message", "unreadable runner line: " + printable(line)}});
    return;
  }
  const std::string kind = (*event)["event"];
  if (kind == "output_parameter") {
    state.result.output_parameters[(*event)["name"].get<std::string>()] = (*event)["value"];
  } else if (kind == "output_metadata") {
    state.result.output_metadata[(*event)["name"].get<std::string>()] = (*event)["metadata"];
  } else if (kind == "result") {
    state.got_result = true;
    if (!(*event)["ok"].get<bool>()) {
      state.result.failure_class = (*event)["code"].get<int64_t>() == KILN_ERROR_CANCELLED ? "cancelled" : "error";
      state.result.message = (*event)["message"].get<std::string>();
    }
  } else if (kind != "hello") {
    state.observer->on_event(std::move(*event));
  }
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
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    watched_[fd] = std::move(state);
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

// Reads what is there; on end of file hands the attempt its closed channel.
void ChannelReactor::drain(int fd) {
  std::shared_ptr<AttemptState> state;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto it = watched_.find(fd);
    if (it == watched_.end()) {  // not ours (any more): stop epoll reporting it
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
      return;
    }
    state = it->second;
  }
  for (;;) {
    const ssize_t n = ::read(fd, chunk_.data(), chunk_.size());
    if (n > 0) {
      state->buffer.append(chunk_.data(), static_cast<size_t>(n));
      size_t newline;
      while ((newline = state->buffer.find('\n')) != std::string::npos) {
        apply_channel_line(state->buffer.substr(0, newline), *state);
        state->buffer.erase(0, newline + 1);
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
  state->on_channel_closed();
}

}  // namespace kiln::host

// The host side of the runner channel, shared by the executors that run
// `kiln step` out of process (process, container): one epoll thread reads
// every attempt's lines (runner_event.hpp decodes them), and an AttemptState joins that channel with the
// runner's exit into one AttemptResult.
#pragma once

#include <kiln/host/executor.hpp>
#include <kiln/host/runner_event.hpp>
#include <kiln/host/subprocess.hpp>

#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace kiln::host {

// Creates (truncates) a step's log file; close-on-exec.
int open_log(const std::filesystem::path& path);

// A step's log file, created at the first bytes the step writes: a step that
// writes nothing leaves no file (readers take an absent log as empty).
class LazyLog {
 public:
  explicit LazyLog(std::filesystem::path path) : path_(std::move(path)) {}
  ~LazyLog();
  LazyLog(const LazyLog&) = delete;
  LazyLog& operator=(const LazyLog&) = delete;
  // Appends; returns an error message once when the file cannot be written
  // (the rest is dropped), else "".
  std::string write(std::string_view bytes);

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool failed_ = false;
};

// One attempt's outcome, assembled from its channel (read by the reactor)
// and its exit (reported by whoever waits for the runner); whichever comes
// last reports.
struct AttemptState {
  std::shared_ptr<AttemptObserver> observer;
  RunnerLineSplitter lines;  // holds a partial channel line (bounded)
  AttemptResult result;
  bool got_result = false;
  // stdout.log and stderr.log when the reactor copies them from pipes
  // (watch_logs); the attempt ends only once both pipes are closed too.
  std::array<std::unique_ptr<LazyLog>, 2> logs;

  void on_channel_closed();
  // The logs become files written from pipes (ChannelReactor::watch_logs).
  void expect_logs(const std::filesystem::path& stdout_file, const std::filesystem::path& stderr_file);
  void on_log_closed(size_t which);
  // `why`, when given, replaces the exit's own description in a failure
  // message (the container executor's "out of memory (limit 64 MiB)").
  void on_exit(ExitStatus status, std::string why = "");
  // The step's process could not be started (the step server's answer came
  // after start() returned): the attempt fails as a crash with `why`.
  void on_start_failed(const std::string& why);

 private:
  void finish_if_done(std::unique_lock<std::mutex>& lock);

  std::mutex mutex_;  // guards the four below
  bool channel_closed_ = false;
  int open_logs_ = 0;
  std::optional<ExitStatus> exit_;
  std::string why_;
  bool reported_ = false;
};

// Applies one channel line to the attempt: log, metric and progress events go
// to the observer, outputs and the result into state.result; a line that is
// not an event of channel version 1 becomes a warning log event.
void apply_channel_line(std::string_view line, AttemptState& state);

// Feeds bytes read from the channel: whole lines are applied, a line over
// kMaxRunnerLineBytes is dropped and reported as one warning.
void apply_channel_bytes(std::string_view bytes, AttemptState& state);

// One thread reading the channels of every running step (epoll): no thread
// per step to create and tear down.
class ChannelReactor {
 public:
  ChannelReactor();
  ~ChannelReactor();
  ChannelReactor(const ChannelReactor&) = delete;
  ChannelReactor& operator=(const ChannelReactor&) = delete;

  // Takes ownership of `fd`.
  void watch(int fd, std::shared_ptr<AttemptState> state);
  // Takes ownership of `stdout_fd` and `stderr_fd`, the read ends of the
  // step's stdout and stderr pipes, and copies them into `stdout_file` and
  // `stderr_file`, each created when the step first writes to it. Call before
  // watch(): the attempt is reported once its channel and both pipes closed.
  void watch_logs(int stdout_fd, int stderr_fd, const std::filesystem::path& stdout_file,
                  const std::filesystem::path& stderr_file, const std::shared_ptr<AttemptState>& state);

 private:
  static constexpr int kChannel = -1;  // a watched descriptor's stream: the channel, or logs[0] / logs[1]
  struct Watched {
    std::shared_ptr<AttemptState> state;
    int stream = kChannel;
  };
  void add(int fd, Watched watched);
  void loop();
  void drain(int fd);

  int epoll_, wake_;
  std::mutex mutex_;
  std::map<int, Watched> watched_;
  std::array<char, 65536> chunk_;  // only the reactor thread reads into it
  std::thread thread_;
};

}  // namespace kiln::host

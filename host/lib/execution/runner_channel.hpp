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

// One attempt's outcome, assembled from its channel (read by the reactor)
// and its exit (reported by whoever waits for the runner); whichever comes
// last reports.
struct AttemptState {
  std::shared_ptr<AttemptObserver> observer;
  RunnerLineSplitter lines;  // holds a partial channel line (bounded)
  AttemptResult result;
  bool got_result = false;

  void on_channel_closed();
  // `why`, when given, replaces the exit's own description in a failure
  // message (the container executor's "out of memory (limit 64 MiB)").
  void on_exit(ExitStatus status, std::string why = "");

 private:
  void finish_if_done(std::unique_lock<std::mutex>& lock);

  std::mutex mutex_;  // guards the four below
  bool channel_closed_ = false;
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

 private:
  void loop();
  void drain(int fd);

  int epoll_, wake_;
  std::mutex mutex_;
  std::map<int, std::shared_ptr<AttemptState>> watched_;
  std::array<char, 65536> chunk_;  // only the reactor thread reads into it
  std::thread thread_;
};

}  // namespace kiln::host

// The per-run event log, `runs/<id>/events.jsonl`: one JSON object per line,
// each with a gap-free sequence number, appended as the run goes on and
// continued by a resume. Another process follows a run by reading it from
// a byte offset; a line is only ever read whole. docs/events.md is the schema.
#pragma once

#include <kiln/host/run_events.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace kiln::host {

inline constexpr int kEventLogVersion = 1;
inline constexpr const char* kEventLogName = "events.jsonl";

// Writes the log. Lines are buffered and written (one write(2)) at each
// flush, that is whenever the engine is about to wait: a reader sees a step
// change within that pass. The final flush fsyncs.
class EventLogWriter : public RunObserver {
 public:
  // Creates `path`, or continues it (a resumed run): a partial last line a
  // killed writer left is cut off, and numbering goes on after the last whole line.
  explicit EventLogWriter(const std::filesystem::path& path);
  ~EventLogWriter() override;
  EventLogWriter(const EventLogWriter&) = delete;
  EventLogWriter& operator=(const EventLogWriter&) = delete;

  // The sequence number the next event gets (1 for a new log).
  uint64_t next_seq() const { return next_seq_; }
  void on_event(uint64_t seq, const RunEvent& event) override;
  void flush(bool final) override;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::string buffer_;
  uint64_t next_seq_ = 1;
};

// Follows a log: each poll returns the whole lines written since the last
// one, skipping events numbered below `from_seq`. Never blocks.
class EventLogReader {
 public:
  explicit EventLogReader(std::filesystem::path path, uint64_t from_seq = 1);
  // New events, in order. A line that is not a JSON object throws
  // std::runtime_error naming the file and line number.
  std::vector<Json> poll();
  // Whether the last event read ends the run (a resume may start it again).
  bool run_finished() const { return finished_; }
  // The sequence number of the next event this reader will return.
  uint64_t next_seq() const { return next_seq_; }

 private:
  std::filesystem::path path_;
  uint64_t offset_ = 0;  // bytes consumed: always at a line start
  uint64_t line_ = 0;    // lines consumed
  uint64_t next_seq_;
  bool finished_ = false;
};

}  // namespace kiln::host

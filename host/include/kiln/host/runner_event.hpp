// The events an attempt reports while it runs, typed, and their one wire
// encoding: the runner channel, JSON lines on fd 3 of `kiln step`. Every
// executor and the step runner build events here; only this file knows the
// JSON field names.
//
// Channel version 1 (one JSON object per line, unknown fields ignored):
//   {"event":"hello","channel":1,"pid":N}                       first
//   {"event":"log","level":"debug|info|warning|error","message":S}
//   {"event":"metric","name":S,"value":NUMBER,"step":INTEGER}
//   {"event":"progress","fraction":NUMBER,"message":S}          message optional
//   {"event":"output_parameter","name":S,"value":ANY}
//   {"event":"output_metadata","name":S,"metadata":OBJECT}
//   {"event":"result","ok":BOOL,"code":INTEGER,"message":S}     last
// The channel is untrusted (anything the plugin spawns can write fd 3): a
// reader keeps lines to kMaxRunnerLineBytes and values to kMaxRunnerValueDepth.
#pragma once

#include <kiln/plugin_api.h>
#include <kiln/host/json.hpp>
#include <kiln/host/json_bounded.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace kiln::host {

constexpr int kRunnerChannelVersion = 1;
// The longest channel line the host reads (without its newline); a longer one
// is dropped, reported as one warning, and the attempt goes on.
constexpr size_t kMaxRunnerLineBytes = size_t{1} << 20;
// The deepest nesting of an output parameter's value or an output's metadata
// (a scalar is 0, [1] is 1): deeper values are refused, never recursed into.
// The same limit as a step reporting through the host API (json_bounded.hpp).
constexpr int kMaxRunnerValueDepth = kMaxOutputValueDepth;

enum class LogLevel { Debug, Info, Warning, Error };
LogLevel log_level_from_abi(KilnLogLevel level);
const char* log_level_text(LogLevel level);  // "debug", "info", ...

struct HelloEvent {
  int64_t channel = kRunnerChannelVersion;
  int64_t pid = 0;
};
struct LogEvent {
  LogLevel level = LogLevel::Info;
  std::string message;
};
struct MetricEvent {
  std::string name;
  double value = 0;
  int64_t step = 0;
};
struct ProgressEvent {
  double fraction = 0;
  std::string message;
};
struct OutputParameterEvent {
  std::string name;
  Json value;
};
struct OutputMetadataEvent {
  std::string name;
  Json metadata = Json::object();
};
struct ResultEvent {
  bool ok = true;
  int64_t code = 0;  // a KilnErrorCode when !ok
  std::string message;
};

// In the order of RunnerEvent's alternatives.
enum class RunnerEventKind { Hello, Log, Metric, Progress, OutputParameter, OutputMetadata, Result };
using RunnerEvent = std::variant<HelloEvent, LogEvent, MetricEvent, ProgressEvent, OutputParameterEvent,
                                 OutputMetadataEvent, ResultEvent>;

RunnerEventKind kind_of(const RunnerEvent& event);
const char* event_name(RunnerEventKind kind);  // the wire name: "log", "output_parameter", ...

// A warning from the host itself about an attempt (a bad channel line...).
RunnerEvent warning_event(std::string message);

// The event as its wire object, fields in wire order (also what the engine
// records in an attempt's events.jsonl). Throws as require_shallow when a
// value or metadata is nested deeper than kMaxRunnerValueDepth.
Json event_json(const RunnerEvent& event);

// One channel line, without its newline (none inside: strings are escaped).
// Invalid UTF-8 in text is replaced, never thrown on; too deep values throw
// as in event_json.
std::string encode(const RunnerEvent& event);

// Either an event or why the line is not one.
struct DecodedLine {
  std::optional<RunnerEvent> event;
  std::string error;  // set when !event
  bool ok() const { return event.has_value(); }
};

// Reads one channel line (without its newline) of channel version 1: never
// throws, never recurses deeper than kMaxRunnerValueDepth; lines longer than
// kMaxRunnerLineBytes, non-JSON, unknown events and wrong field types are errors.
DecodedLine decode(std::string_view line);

// nested_deeper_than and require_shallow: kiln/host/json_bounded.hpp.

// Cuts a channel's bytes into lines, holding at most kMaxRunnerLineBytes of a
// partial line: a longer line is dropped as it arrives and reported once.
class RunnerLineSplitter {
 public:
  // Calls on_line(std::string_view) for each complete line, and
  // on_dropped() once for each line over the limit.
  template <typename OnLine, typename OnDropped>
  void feed(std::string_view bytes, OnLine&& on_line, OnDropped&& on_dropped) {
    while (!bytes.empty()) {
      const size_t newline = bytes.find('\n');
      const std::string_view piece = bytes.substr(0, newline);
      if (!dropping_ && partial_.size() + piece.size() > kMaxRunnerLineBytes) {
        dropping_ = true;
        std::string().swap(partial_);  // give the memory back now
        on_dropped();
      }
      if (newline == std::string_view::npos) {
        if (!dropping_) partial_.append(piece);
        return;
      }
      if (!dropping_ && partial_.empty()) {
        on_line(piece);
      } else if (!dropping_) {
        partial_.append(piece);
        on_line(std::string_view(partial_));
        partial_.clear();
      }
      dropping_ = false;
      bytes.remove_prefix(newline + 1);
    }
  }
  // What a partial line holds now (bounded by kMaxRunnerLineBytes).
  size_t buffered() const { return partial_.capacity(); }

 private:
  std::string partial_;
  bool dropping_ = false;  // inside a line over the limit, until its newline
};

}  // namespace kiln::host

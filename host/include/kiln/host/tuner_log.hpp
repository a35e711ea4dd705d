// A tuning step's tuner log, steps/<step>/tuner.jsonl: every call the
// engine made to the step's tuner that changes it (suggest and its answer,
// observe), one JSON line each, in order. `kiln resume` replays it into a
// new tuner with the same config and seed, so a model-based search (TPE, GP,
// CMA-ES) continues exactly where the interrupted one stood, with the same
// trials. Lines:
//   {"suggest":[{"trial":3,"parameters":{...}}, ...]}
//   {"observe":3,"step":2,"value":0.91}                 (intermediate)
//   {"observe":3,"step":-1,"value":0.93,"status":"succeeded"}   (final; value null: none)
//   {"observe":3,...,"status":"succeeded","values":[0.93,12.5]}   (several objectives: each one's
//                                                                   value, null: none; replayed
//                                                                   through observe_objectives first)
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/tuner_handle.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::host {

struct TunerRecord {
  enum class Kind { Suggest, Observe };
  Kind kind = Kind::Observe;
  std::vector<SuggestedTrial> trials;  // Suggest: the answer
  int trial = 0;                       // Observe
  int64_t step = -1;
  double value = 0;                    // NaN: none
  bool final = false;
  TrialStatus status = TrialStatus::Running;
  std::vector<double> values;          // final, several objectives: each one's value (NaN: none)

  std::string to_line() const;  // one JSON line, '\n' included
};

class TunerLog {
 public:
  // A log larger than this is refused (a search writes ~100 bytes per
  // observation: millions of epochs).
  static constexpr uintmax_t kMaxBytes = 64ull << 20;

  // The records in `text`; `name` (the file) prefixes errors. A last line
  // without '\n' (cut by a crash mid-write) is ignored. Throws
  // std::runtime_error "NAME:LINE: FIELD: ..." for anything else malformed,
  // or for text over kMaxBytes.
  static std::vector<TunerRecord> parse(std::string_view text, const std::string& name);
  // parse() of the file at `path`; none when it does not exist.
  static std::vector<TunerRecord> read(const std::filesystem::path& path);

  // Appends to `path` (created if absent). Throws std::runtime_error when it cannot be opened.
  explicit TunerLog(std::filesystem::path path);
  ~TunerLog();
  TunerLog(const TunerLog&) = delete;
  TunerLog& operator=(const TunerLog&) = delete;

  // Writes one record and flushes it to the kernel (a killed host keeps it;
  // not fsynced: a lost tail only means the resume replays less).
  void append(const TunerRecord& record);

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

}  // namespace kiln::host

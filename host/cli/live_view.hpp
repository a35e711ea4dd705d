// What `kiln run` shows while a run goes on: on a terminal, a block of
// per-step status lines with progress bars, redrawn in place; otherwise one
// plain line per change (logs and CI output stay readable).
#pragma once

#include <kiln/host/run_events.hpp>

#include <chrono>
#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace kiln::cli {

class LiveView : public host::RunObserver {
 public:
  LiveView(std::ostream& out, bool terminal) : out_(out), terminal_(terminal), started_(Clock::now()) {}
  // A run's event (an engine observer). Engine thread only.
  void on_event(uint64_t seq, const host::RunEvent& event) override;
  // Draws the final state.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  struct Line {
    std::string status = "pending";
    double fraction = -1;
    std::string message;
    int attempt = 0;
    Clock::time_point started;
    double last_printed_fraction = 0;
  };
  void cancelling();
  void progress(const std::string& step, double fraction, const std::string& message);
  void status(const std::string& step, const std::string& status, const std::string& message, int attempt = 0);
  void redraw(bool force);
  void print_plain(const std::string& step, const Line& line);
  std::string elapsed() const;
  void write(const std::string& text);

  std::ostream& out_;
  bool terminal_;
  Clock::time_point started_, last_draw_{};
  std::vector<std::string> order_;
  std::map<std::string, Line> lines_;
  size_t drawn_ = 0;
};

}  // namespace kiln::cli

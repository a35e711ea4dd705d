#include "live_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace kiln::cli {
namespace {

std::string symbol(const std::string& status) {
  if (status == "succeeded") return "\u2713";
  if (status == "cached") return "\u2261";  // identical to an earlier result
  if (status == "failed" || status == "upstream-failed") return "\u2717";
  if (status == "running") return "\u25b6";
  if (status == "retrying") return "\u21bb";
  if (status == "skipped") return "-";
  if (status == "cancelled") return "\u2300";
  return " ";
}

std::string bar(double fraction) {
  const int width = 20;
  const int filled = static_cast<int>(std::round(std::clamp(fraction, 0.0, 1.0) * width));
  char percent[8];
  std::snprintf(percent, sizeof percent, "%3d%%", static_cast<int>(std::round(fraction * 100)));
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '.') +
         "] " + percent;
}

}  // namespace

std::string LiveView::elapsed() const {
  char text[16];
  std::snprintf(text, sizeof text, "%7.2fs", std::chrono::duration<double>(Clock::now() - started_).count());
  return text;
}

void LiveView::on_event(uint64_t, const host::RunEvent& event) {
  namespace ev = host::events;
  const auto name = [](host::StepStatus s) { return std::string(host::to_string(s)); };
  if (std::get_if<ev::CancelRequested>(&event)) return cancelling();
  if (const auto* e = std::get_if<ev::Progress>(&event)) return progress(e->unit.display, e->fraction, e->message);
  if (const auto* e = std::get_if<ev::AttemptStarted>(&event)) return status(e->unit.display, "running", "", e->attempt);
  if (const auto* e = std::get_if<ev::RetryScheduled>(&event))
    return status(e->unit.display, "retrying", e->message, e->attempt);
  if (const auto* e = std::get_if<ev::StopRequested>(&event)) return status(e->unit.display, "stopping", e->reason);
  if (const auto* e = std::get_if<ev::UnitFinished>(&event)) return status(e->unit.display, name(e->status), e->message);
  if (const auto* e = std::get_if<ev::StepChanged>(&event))
    if (e->status != host::StepStatus::running) return status(e->step, name(e->status), e->message);
}

void LiveView::cancelling() {
  write(std::string(terminal_ ? "\n" : "") + "cancelling: asking running steps to stop (press Ctrl-C again to kill them)\n");
  drawn_ = 0;
}

void LiveView::progress(const std::string& step, double fraction, const std::string& message) {
  if (!lines_.count(step)) {
    order_.push_back(step);
    lines_[step].started = Clock::now();
  }
  Line& line = lines_[step];
  line.fraction = fraction;
  line.message = message;
  if (terminal_) return redraw(false);
  if (line.fraction - line.last_printed_fraction >= 0.25) {
    line.last_printed_fraction = line.fraction;
    write(elapsed() + "  " + step + "  " + bar(line.fraction) + (line.message.empty() ? "" : "  " + line.message) +
          "\n");
  }
}

void LiveView::status(const std::string& step, const std::string& status, const std::string& message, int attempt) {
  if (!lines_.count(step)) {
    order_.push_back(step);
    lines_[step].started = Clock::now();
  }
  Line& line = lines_[step];
  const bool changed = status != line.status;
  if (status == "running" && line.status != "running") line.started = Clock::now();
  line.status = status;
  line.message = message;
  if (attempt > 0) line.attempt = attempt;
  if (terminal_) return redraw(changed);
  if (changed) print_plain(step, line);
}

void LiveView::print_plain(const std::string& step, const Line& line) {
  std::ostringstream text;
  text << elapsed() << "  " << step << "  " << line.status;
  if (line.status == "running" && line.attempt > 1) text << " (attempt " << line.attempt << ")";
  if ((line.status == "succeeded" || line.status == "failed") && line.attempt > 0) {
    char duration[32];
    std::snprintf(duration, sizeof duration, " in %.3f s",
                  std::chrono::duration<double>(Clock::now() - line.started).count());
    text << duration;
  }
  if (!line.message.empty()) text << ": " << line.message;
  text << "\n";
  write(text.str());
}

void LiveView::redraw(bool force) {
  const auto now = Clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::ostringstream block;
  if (drawn_ > 0) block << "\x1b[" << drawn_ << "F";  // back to the first line of the block
  for (const auto& step : order_) {
    const Line& line = lines_[step];
    block << "\x1b[2K" << symbol(line.status) << " " << step << "  " << line.status;
    if (line.status == "running" && line.fraction >= 0) block << "  " << bar(line.fraction);
    if (!line.message.empty()) block << "  " << line.message.substr(0, 80);
    block << "\n";
  }
  drawn_ = order_.size();
  write(block.str());
}

// One write per line or block: the stream is usually std::cerr, unbuffered,
// where each << is a system call of its own (issue 16: 12 per step).
void LiveView::write(const std::string& text) {
  out_ << text;
  out_.flush();
}

void LiveView::finish() {
  if (terminal_) redraw(true);
}

}  // namespace kiln::cli

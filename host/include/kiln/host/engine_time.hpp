// The engine's clock. Real runs use the steady clock and block on the
// engine's inbox until a message or the next deadline. Tests may give the
// engine virtual time instead (tests/support/fake_executor.hpp): then the
// engine never blocks; when it has nothing to do it asks the clock to move
// to its next deadline or to the next thing a fake attempt does, whichever
// comes first, so scenarios of minutes run in microseconds, deterministically.
#pragma once

#include <chrono>
#include <optional>

namespace kiln::host {

class EngineTime {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~EngineTime() = default;
  virtual Clock::time_point now() const = 0;
  // Virtual time only (`is_virtual()`): nothing is waiting in the engine's
  // inbox; move time forward to `until` or to the next scheduled event
  // (which posts its messages while it runs), whichever is sooner. Returns
  // false when there is neither: nothing can ever happen again.
  virtual bool advance(std::optional<Clock::time_point> until) = 0;
  virtual bool is_virtual() const = 0;
};

// The steady clock; the engine blocks on its inbox.
class RealTime final : public EngineTime {
 public:
  Clock::time_point now() const override { return Clock::now(); }
  bool advance(std::optional<Clock::time_point>) override { return true; }
  bool is_virtual() const override { return false; }
};

}  // namespace kiln::host

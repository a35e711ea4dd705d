// Virtual time and a fake executor: the engine's scheduling (dependencies,
// conditions, loops, retries and backoff, timeouts and grace kills,
// cancellation, failure policies, finally steps, tuning) tested in-process
// and deterministically, with no process and no sleep. A fake attempt does
// what a script says at given virtual times; by default the script mimics
// the util plugin's components from their parameters.
#pragma once

#include <kiln/host/engine_time.hpp>
#include <kiln/host/executor.hpp>

#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <vector>

namespace kiln::test {

class VirtualTime final : public host::EngineTime {
 public:
  Clock::time_point now() const override { return now_; }
  bool is_virtual() const override { return true; }
  bool advance(std::optional<Clock::time_point> until) override;
  // Runs `f` at `when` (now, if that has passed); same-time events run in the order they were scheduled.
  void at(Clock::time_point when, std::function<void()> f);
  // Seconds since time began (the engine's run starts at 0).
  double seconds() const { return std::chrono::duration<double>(now_ - origin_).count(); }
  Clock::time_point after(double seconds) const;

 private:
  struct Event {
    Clock::time_point when;
    uint64_t order;
    std::function<void()> f;
    bool operator>(const Event& o) const { return when != o.when ? when > o.when : order > o.order; }
  };
  Clock::time_point origin_{std::chrono::hours(1)};
  Clock::time_point now_ = origin_;
  uint64_t next_order_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
};

// What one fake attempt does, in virtual seconds from its start.
struct FakeBehaviour {
  double seconds = 0;  // when it ends by itself
  bool fails = false;
  std::string failure_class = "error";  // error or crash
  std::string message;
  bool ignores_cancel = false;  // only a kill stops it (util.fail mode: hang)
  std::string metric;           // reported at each of `values`' times
  std::vector<std::pair<double, double>> values;  // (at seconds, value); the metric's step is 1, 2, ...
  host::Json outputs = host::Json::object();
};

// The behaviour of attempt `attempt` (1-based) of a launch.
using FakeScript = std::function<FakeBehaviour(const host::StepLaunch& launch, int attempt)>;

// util.sleep, util.fail, util.flaky, util.objective, util.echo and util.noop, from their parameters.
FakeBehaviour util_behaviour(const host::StepLaunch& launch, int attempt);

// What a fake executor did, for assertions: every start and end, in virtual seconds.
struct FakeRecord {
  std::string unit;
  int attempt = 0;
  double started = 0, ended = -1;
  std::string how;  // "", "succeeded", "failed", "cancelled", "killed"
  std::vector<int> gpus{};  // the GPUs the engine gave it
};

class FakeExecutor final : public host::Executor {
 public:
  explicit FakeExecutor(VirtualTime& time, FakeScript script = util_behaviour);
  std::unique_ptr<host::RunningAttempt> start(const host::StepLaunch& launch,
                                              std::shared_ptr<host::AttemptObserver> observer) override;
  const std::vector<FakeRecord>& records() const { return *records_; }
  // The most attempts that ran at once.
  int peak() const { return *peak_; }

 private:
  VirtualTime& time_;
  FakeScript script_;
  std::shared_ptr<std::vector<FakeRecord>> records_ = std::make_shared<std::vector<FakeRecord>>();
  std::shared_ptr<int> running_ = std::make_shared<int>(0), peak_ = std::make_shared<int>(0);
};

}  // namespace kiln::test

#include "fake_executor.hpp"

#include <kiln/host/runner_event.hpp>

#include <cmath>

namespace kiln::test {

using host::Json;
using Clock = host::EngineTime::Clock;

bool VirtualTime::advance(std::optional<Clock::time_point> until) {
  if (!queue_.empty() && (!until || queue_.top().when <= *until)) {
    Event next = queue_.top();
    queue_.pop();
    now_ = std::max(now_, next.when);
    next.f();
    return true;
  }
  if (!until) return false;
  now_ = std::max(now_, *until);
  return true;
}

void VirtualTime::at(Clock::time_point when, std::function<void()> f) {
  queue_.push(Event{std::max(when, now_), next_order_++, std::move(f)});
}

Clock::time_point VirtualTime::after(double seconds) const {
  return now_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

FakeBehaviour util_behaviour(const host::StepLaunch& launch, int attempt) {
  const Json& p = launch.parameters;
  const std::string& name = launch.component.manifest.name;
  FakeBehaviour b;
  if (name == "util.sleep") {
    b.seconds = p.value("seconds", 1.0);
  } else if (name == "util.fail") {
    const std::string mode = p.value("mode", "error");
    b.fails = true;
    b.message = p.value("message", "failing on purpose");
    if (mode == "hang") {
      b.seconds = 1e9;
      b.ignores_cancel = true;
    } else if (mode != "error" && mode != "throw") {
      b.failure_class = "crash";
      b.message = "killed by signal SIG" + std::string(mode == "segfault" ? "SEGV" : mode == "abort" ? "ABRT" : "KILL");
    }
  } else if (name == "util.flaky") {
    b.fails = attempt <= p.value("failures", 1);
    b.message = "flaky failure " + std::to_string(attempt);
    if (!b.fails) b.outputs["runs"] = attempt;
  } else if (name == "util.objective") {
    const double x = p.value("x", 0.0), y = static_cast<double>(p.value("y", 0));
    const int64_t epochs = p.value("epochs", int64_t{5});
    const double pause = p.value("epoch_seconds", 0.0);
    if (x > p.value("fail_above", 1e9)) {
      b.fails = true;
      b.message = "x = " + std::to_string(x) + " is above fail_above";
      return b;
    }
    b.metric = "loss";
    double loss = 0;
    for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
      loss = (x - 0.3) * (x - 0.3) + (y - 2) * (y - 2) / 10.0 + 1.0 / static_cast<double>(epoch);
      b.values.emplace_back(pause * static_cast<double>(epoch), loss);
    }
    b.seconds = pause * static_cast<double>(epochs);
    b.outputs["loss"] = loss;
  } else if (name == "util.echo") {
    b.outputs["message"] = p.value("message", "hello");
  }
  return b;
}

namespace {

// One fake attempt's state, shared by its scheduled events and its handle.
struct Attempt {
  VirtualTime* time = nullptr;
  std::shared_ptr<host::AttemptObserver> observer;
  FakeBehaviour behaviour;
  std::shared_ptr<std::vector<FakeRecord>> records;
  std::shared_ptr<int> running;
  size_t record = 0;
  bool done = false;

  void finish(host::AttemptResult result, const std::string& how) {
    if (done) return;
    done = true;
    --*running;
    (*records)[record].ended = time->seconds();
    (*records)[record].how = how;
    observer->on_finished(std::move(result));
  }
};

class Handle final : public host::RunningAttempt {
 public:
  explicit Handle(std::shared_ptr<Attempt> a) : a_(std::move(a)) {}
  void cancel() override {
    if (a_->done || a_->behaviour.ignores_cancel) return;
    auto a = a_;
    a_->time->at(a_->time->now(), [a] {
      host::AttemptResult r;
      r.failure_class = "error";
      r.message = "cancelled";
      a->finish(std::move(r), "cancelled");
    });
  }
  void kill() override {
    host::AttemptResult r;
    r.failure_class = "crash";
    r.message = "killed by signal SIGKILL";
    a_->finish(std::move(r), "killed");
  }

 private:
  std::shared_ptr<Attempt> a_;
};

int attempt_number(const host::StepLaunch& launch) {
  const std::string dir = launch.attempt_dir.filename().string();  // attempt-N
  return std::stoi(dir.substr(dir.find('-') + 1));
}

}  // namespace

FakeExecutor::FakeExecutor(VirtualTime& time, FakeScript script) : time_(time), script_(std::move(script)) {}

std::unique_ptr<host::RunningAttempt> FakeExecutor::start(const host::StepLaunch& launch,
                                                          std::shared_ptr<host::AttemptObserver> observer) {
  auto a = std::make_shared<Attempt>();
  a->time = &time_;
  a->observer = std::move(observer);
  a->behaviour = script_(launch, attempt_number(launch));
  a->records = records_;
  a->running = running_;
  a->record = records_->size();
  records_->push_back(FakeRecord{launch.step, attempt_number(launch), time_.seconds(), -1, "", launch.gpus});
  *peak_ = std::max(*peak_, ++*running_);
  const FakeBehaviour& b = a->behaviour;
  for (size_t i = 0; i < b.values.size(); ++i) {
    const auto [at, value] = b.values[i];
    time_.at(time_.after(at), [a, i, value = value] {
      if (!a->done)
        a->observer->on_event(host::MetricEvent{a->behaviour.metric, value, static_cast<int64_t>(i + 1)});
    });
  }
  time_.at(time_.after(b.seconds), [a] {
    host::AttemptResult r;
    if (a->behaviour.fails) {
      r.failure_class = a->behaviour.failure_class;
      r.message = a->behaviour.message;
    } else {
      r.output_parameters = a->behaviour.outputs;
    }
    a->finish(std::move(r), a->behaviour.fails ? "failed" : "succeeded");
  });
  return std::make_unique<Handle>(a);
}

}  // namespace kiln::test

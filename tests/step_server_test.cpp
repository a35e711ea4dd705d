// The step server's warm workers (step_server.cpp): steps asked with
// `reuse` run one after another in one forked process, which lets go of each
// step's pipes, takes only the stop meant for its step, dies with a SIGKILL
// or a crash (the next step gets a fresh one) and retires after 64 steps.
// Real processes and the fixture.warm plugin, which logs "TAG PID" per step.
#include <gtest/gtest.h>
#include <kiln/host/runner_event.hpp>
#include <kiln/host/step_server.hpp>
#include <kiln/host/subprocess.hpp>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <future>
#include <map>
#include <set>
#include <sstream>

#include "test_support.hpp"

using kiln::host::Json;
using kiln::host::StepServer;
using kiln::test::TempDir;
namespace fs = std::filesystem;

namespace {

// Reads `fd` to its end; "<no end>" when it stays open past 10 s (a worker
// that kept the step's pipe).
std::string read_to_end(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, 10000) <= 0) return text + "<no end>";
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return text;
    text.append(buffer, static_cast<size_t>(n));
  }
}

struct Finished {
  kiln::host::StepEnd end;
  std::string out, channel;
};

class StepServerTest : public ::testing::Test {
 protected:
  StepServerTest() : library_(dir_ / "warm.so"), log_(dir_ / "warm.log") {
    fs::copy_file(kiln::test::fixture("fixture_warm_up"), library_);
    ::setenv("KILN_TEST_WARM_LOG", log_.c_str(), 1);  // inherited by the server and its workers
    server_.emplace(kiln::test::kiln_exe());
  }
  ~StepServerTest() override {
    server_.reset();
    ::unsetenv("KILN_TEST_WARM_LOG");
  }

  // Starts step `tag`; `after_start` may signal it at once.
  struct Running {
    StepServer::ChildId id;
    std::future<kiln::host::StepEnd> end;
    kiln::host::Pipe out, err, channel;
  };
  // `in_file`: the request goes as the path of its file (as one over 32 KiB does).
  std::unique_ptr<Running> start(const std::string& tag, const std::string& mode, bool reuse, bool in_file = false) {
    auto running = std::make_unique<Running>();
    auto promise = std::make_shared<std::promise<kiln::host::StepEnd>>();
    running->end = promise->get_future();
    const fs::path cwd = dir_ / tag;
    const Json request{{"channel", kiln::host::kRunnerChannelVersion},
                       {"step", tag},
                       {"component", "fixture.warm"},
                       {"library", library_.string()},
                       {"parameters", {{"mode", mode}, {"tag", tag}}},
                       {"inputs", Json::object()},
                       {"output_dir", (cwd / "outputs").string()},
                       {"temp_dir", (cwd / "tmp").string()},
                       {"checkpoint_dir", ""},
                       {"grace_seconds", 1.0}};
    kiln::host::StepChildOptions options;
    options.reuse = reuse;
    std::string text = request.dump();
    if (in_file) {
      fs::create_directories(dir_ / "requests");
      const fs::path file = dir_ / "requests" / (tag + ".json");
      kiln::test::write_text(file, text);
      text = Json(file.string()).dump();
    }
    running->id = server_->start(library_, "fixture.warm", text, cwd, running->out.write_fd,
                                 running->err.write_fd, running->channel.write_fd,
                                 [promise](const kiln::host::StepEnd& end) { promise->set_value(end); }, options);
    running->out.close_write();
    running->err.close_write();
    running->channel.close_write();
    return running;
  }
  Finished finish(Running& running) {
    Finished f;
    f.out = read_to_end(running.out.read_fd);
    f.channel = read_to_end(running.channel.read_fd);
    EXPECT_EQ(running.end.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    f.end = running.end.get();
    return f;
  }
  Finished run(const std::string& tag, const std::string& mode = "run", bool reuse = true) {
    auto running = start(tag, mode, reuse);
    return finish(*running);
  }
  // The process that ran step `tag` (its line in the log), 0 if none did.
  int pid_of(const std::string& tag) const {
    std::istringstream lines(kiln::test::read_text(log_));
    std::string what;
    int pid = 0;
    while (lines >> what >> pid)
      if (what == tag) return pid;
    return 0;
  }
  bool started(const std::string& tag) const {
    return fs::exists(log_) && pid_of(tag) != 0;
  }

  TempDir dir_;
  fs::path library_, log_;
  std::optional<StepServer> server_;
};

bool cancelled(const Finished& f) {
  return f.channel.find("\"event\":\"result\"") != std::string::npos &&
         f.channel.find("\"message\":\"cancelled\"") != std::string::npos;
}

TEST_F(StepServerTest, AWorkerRunsOneStepAfterAnotherAndLetsGoOfEachStepsPipes) {
  for (const char* tag : {"a", "b", "c"}) {
    const Finished f = run(tag);
    EXPECT_TRUE(f.end.status.success()) << tag << ": " << f.end.status.describe();
    EXPECT_EQ(f.out, std::string("stdout of ") + tag + "\n");  // its own stdout, to its end
    EXPECT_NE(f.channel.find("\"ok\":true"), std::string::npos) << f.channel;
    EXPECT_EQ(f.channel.find("<no end>"), std::string::npos) << "the worker kept the step's channel";
  }
  EXPECT_NE(pid_of("a"), 0);
  EXPECT_EQ(pid_of("b"), pid_of("a")) << "the second step forked a process of its own";
  EXPECT_EQ(pid_of("c"), pid_of("a"));
  EXPECT_NE(pid_of("warm"), pid_of("a")) << "a step ran inside the server";
  ASSERT_TRUE(run("fresh", "run", /*reuse=*/false).end.status.success());
  EXPECT_NE(pid_of("fresh"), pid_of("a")) << "a step without reuse ran in the worker";
}

TEST_F(StepServerTest, AStopReachesOnlyTheStepItWasMeantFor) {
  // Cancelled while running: the step ends cancelled, the worker lives on
  // and its next step is not cancelled by it.
  auto waiting = start("a", "wait", true);
  ASSERT_TRUE(kiln::test::poll_until([&] { return started("a"); }));
  server_->signal(waiting->id, SIGTERM);
  const Finished a = finish(*waiting);
  EXPECT_FALSE(a.end.status.success());
  EXPECT_TRUE(cancelled(a)) << a.channel;
  const Finished b = run("b");
  EXPECT_TRUE(b.end.status.success()) << b.channel;
  EXPECT_EQ(pid_of("b"), pid_of("a"));
  // Cancelled as soon as asked for, before or just after the worker took
  // it: the stop is not lost (the step would wait 20 s and fail otherwise).
  auto early = start("c", "wait", true);
  server_->signal(early->id, SIGTERM);
  const Finished c = finish(*early);
  EXPECT_TRUE(cancelled(c)) << c.channel;
  const Finished d = run("d");
  EXPECT_TRUE(d.end.status.success()) << d.channel;
  EXPECT_EQ(pid_of("d"), pid_of("a"));
}

TEST_F(StepServerTest, AKilledOrCrashedWorkerEndsItsStepAndTheNextGetsAFreshOne) {
  auto waiting = start("a", "wait", true);
  ASSERT_TRUE(kiln::test::poll_until([&] { return started("a"); }));
  server_->signal(waiting->id, SIGKILL);
  const Finished a = finish(*waiting);
  EXPECT_EQ(a.end.status.signal, SIGKILL) << a.end.status.describe();
  ASSERT_TRUE(run("b").end.status.success());
  EXPECT_NE(pid_of("b"), pid_of("a"));
  const Finished c = run("c", "crash");
  EXPECT_EQ(c.end.status.signal, SIGABRT) << c.end.status.describe();
  EXPECT_EQ(pid_of("c"), pid_of("b"));
  ASSERT_TRUE(run("d").end.status.success());
  EXPECT_NE(pid_of("d"), pid_of("c"));
}

// A request in a file (too big to travel inline) runs in a fresh child,
// never a worker; a step that leaves a process behind retires its worker,
// whose group (the helper too) is killed, so the step's pipes still end.
TEST_F(StepServerTest, ABigRequestGetsAFreshChildAndAStrayProcessRetiresTheWorker) {
  ASSERT_TRUE(run("a").end.status.success());
  auto big = start("big", "run", /*reuse=*/true, /*in_file=*/true);
  const Finished b = finish(*big);
  EXPECT_TRUE(b.end.status.success()) << b.channel;
  EXPECT_NE(pid_of("big"), 0);
  EXPECT_NE(pid_of("big"), pid_of("a")) << "a request file was handed to the worker";
  const Finished s = run("spawn", "spawn");
  EXPECT_TRUE(s.end.status.success()) << s.channel;
  EXPECT_EQ(s.out.find("<no end>"), std::string::npos) << "the helper kept the step's stdout open";
  EXPECT_EQ(s.channel.find("<no end>"), std::string::npos);
  EXPECT_EQ(pid_of("spawn"), pid_of("a"));
  ASSERT_TRUE(run("after").end.status.success());
  EXPECT_NE(pid_of("after"), pid_of("spawn")) << "a worker with a process left behind took another step";
}

TEST_F(StepServerTest, AWorkerRetiresAfter64Steps) {
  std::map<int, int> steps_per_pid;
  for (int i = 0; i < 65; ++i) {
    const std::string tag = "s" + std::to_string(i);
    ASSERT_TRUE(run(tag).end.status.success()) << tag;
    ++steps_per_pid[pid_of(tag)];
  }
  ASSERT_EQ(steps_per_pid.size(), 2u);
  EXPECT_EQ(steps_per_pid.at(pid_of("s0")), 64);
  EXPECT_EQ(steps_per_pid.at(pid_of("s64")), 1);
}

}  // namespace

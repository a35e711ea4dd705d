// The process executor: each attempt in a `kiln step` child, talking JSON
// lines on fd 3. A reader thread turns the channel into observer events; the
// child's end (exit, signal) decides the result when no result line came.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <kiln/host/executor.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/gpus.hpp>
#include <kiln/host/step_server.hpp>
#include <kiln/host/subprocess.hpp>

#include "replica_group.hpp"
#include "runner_channel.hpp"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

namespace kiln::host {
namespace fs = std::filesystem;

Json step_request(const StepLaunch& launch) {
  Json inputs = Json::object();
  for (const auto& [name, artifact] : launch.inputs)
    inputs[name] = {{"path", artifact.path.string()}, {"metadata", artifact.metadata}};
  Json request{{"channel", kRunnerChannelVersion},
               {"step", launch.step},
               {"component", launch.component.manifest.name},
               {"library", launch.component.library.string()},
               {"parameters", launch.parameters},
               {"inputs", inputs},
               {"output_dir", launch.output_dir.string()},
               {"temp_dir", launch.temp_dir.string()},
               {"checkpoint_dir", launch.checkpoint_dir.string()},
               {"grace_seconds", launch.grace_seconds}};
  if (launch.replica)
    request["replica"] = {{"rank", launch.replica->rank},
                          {"world_size", launch.replica->world_size},
                          {"rendezvous", launch.replica->rendezvous}};
  return request;
}

void write_step_request(const StepLaunch& launch, const fs::path& request_file) {
  write_request_file(step_request(launch), request_file);
}

void write_request_file(const Json& request, const fs::path& request_file) {
  write_request_text(request.dump(), request_file);
}

void write_request_text(const std::string& request_json, const fs::path& request_file) {
  // Read once by the step's process, right after this: no fsync needed.
  std::ofstream out(request_file, std::ios::trunc);
  out << request_json;
  if (!out.flush()) throw std::runtime_error("cannot write " + request_file.string());
}

namespace {

// A request up to this size travels in the step server's start message (one
// file less per attempt); a bigger one is written to request.json.
constexpr size_t kInlineRequestBytes = 32 * 1024;

class ProcessAttempt : public RunningAttempt {
 public:
  ProcessAttempt(std::shared_ptr<StepServer> server, StepServer::ChildId child)
      : server_(std::move(server)), child_(child) {}
  void cancel() override { server_->signal(child_, SIGTERM); }
  void kill() override { server_->signal(child_, SIGKILL); }

 private:
  std::shared_ptr<StepServer> server_;
  StepServer::ChildId child_;
};

// A data-parallel attempt: cancel and kill reach every rank.
class ReplicaAttempt : public RunningAttempt {
 public:
  explicit ReplicaAttempt(std::shared_ptr<ReplicaGroup> group) : group_(std::move(group)) {}
  void cancel() override { group_->stop(SIGTERM); }
  void kill() override { group_->stop(SIGKILL); }

 private:
  std::shared_ptr<ReplicaGroup> group_;
};

class ProcessExecutor : public Executor {
 public:
  explicit ProcessExecutor(fs::path kiln_exe) : kiln_exe_(std::move(kiln_exe)) {}

  std::unique_ptr<RunningAttempt> start(const StepLaunch& launch, std::shared_ptr<AttemptObserver> observer) override {
    if (launch.replicas > 1) return start_replicas(launch, std::move(observer));
    const auto step_server = server();
    auto state = std::make_shared<AttemptState>();
    state->observer = std::move(observer);
    const StepServer::ChildId child = start_attempt(*step_server, launch, state, [state](const StepEnd& end) {
      if (end.start_error.empty())
        state->on_exit(end.status);
      else
        state->on_start_failed(end.start_error);
    });
    return std::make_unique<ProcessAttempt>(step_server, child);
  }

 private:
  // The step server, started on first use and again if it has died.
  std::shared_ptr<StepServer> server() {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!server_ || !server_->alive()) server_ = std::make_shared<StepServer>(kiln_exe_);
    return server_;
  }

  // How a step's child starts: it sees only its GPUs, and a step with GPUs
  // runs in a fresh `kiln step` exec'd by the forked child, whose CUDA owes
  // nothing to the server (see docs/gpu.md). A step without GPUs needs
  // nothing here: it inherits the server's CUDA_VISIBLE_DEVICES, which is
  // empty. `request_file`: where its request is written.
  StepChildOptions child_options(const StepLaunch& launch, const fs::path& request_file) const {
    StepChildOptions child;
    child.reuse = launch.reuse_process && launch.replicas <= 1;  // the server ignores it with env or exec
    if (launch.gpus.empty()) return child;
    child.env = {{"CUDA_VISIBLE_DEVICES", gpu_list_text(launch.gpus)}};
    // CUDA's indices in PCI bus order, as nvidia-smi and /dev/nvidiaN number them.
    if (std::getenv("CUDA_DEVICE_ORDER") == nullptr) child.env.emplace_back("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
    child.exec = {kiln_exe_.string(), "step", "--request", request_file.string()};
    return child;
  }

  // Starts `kiln step` for the attempt (or rank 0 of it): its channel to the
  // reactor, its logs in the attempt's directory.
  StepServer::ChildId start_attempt(StepServer& step_server, const StepLaunch& launch,
                                    const std::shared_ptr<AttemptState>& state,
                                    std::function<void(const StepEnd&)> on_end) {
    // The attempt directory is made by the step's process (its working
    // directory), unless a big request (or a fresh runner's) must be written there first.
    std::string request = step_request(launch).dump();
    if (request.size() > kInlineRequestBytes || !launch.gpus.empty()) {
      fs::create_directories(launch.attempt_dir);
      const auto file = launch.attempt_dir / "request.json";
      write_request_text(request, file);
      request = Json(file.string()).dump();
    }
    // Pipes, not files: a log file is made when the step first writes to it.
    Pipe channel, out, err;
    const StepServer::ChildId child = step_server.start(
        launch.component.library, launch.component.manifest.name, request, launch.attempt_dir, out.write_fd,
        err.write_fd, channel.write_fd, std::move(on_end), child_options(launch, launch.attempt_dir / "request.json"));
    channel.close_write();
    out.close_write();
    err.close_write();
    reactor_.watch_logs(out.read_fd, err.read_fd, launch.attempt_dir / "stdout.log", launch.attempt_dir / "stderr.log",
                        state);
    out.read_fd = err.read_fd = -1;  // the reactor owns them now
    reactor_.watch(channel.read_fd, state);
    channel.read_fd = -1;
    return child;
  }

  // Starts rank `rank` > 0 of a data-parallel attempt: it writes only logs,
  // its channel included (rank-K/events.jsonl), in its own directory.
  StepServer::ChildId start_replica(StepServer& step_server, StepLaunch launch, int rank,
                                    std::function<void(const StepEnd&)> on_end) {
    const fs::path dir = replica_dir(launch.attempt_dir, rank);
    launch.attempt_dir = dir;
    launch.output_dir = dir / "outputs";
    launch.temp_dir = dir / "tmp";
    launch.replica->rank = rank;
    fs::create_directories(dir);
    write_step_request(launch, dir / "request.json");
    const Pipe out(open_log(dir / "stdout.log")), err(open_log(dir / "stderr.log")),
        events(open_log(dir / "events.jsonl"));
    return step_server.start(launch.component.library, launch.component.manifest.name, Json((dir / "request.json").string()).dump(), dir,
                             out.read_fd, err.read_fd, events.read_fd, std::move(on_end),
                             child_options(launch, dir / "request.json"));
  }

  // N processes, one rendezvous: rank 0 is the attempt, the group joins their ends.
  std::unique_ptr<RunningAttempt> start_replicas(StepLaunch launch, std::shared_ptr<AttemptObserver> observer) {
    launch.replica = ReplicaPlace{0, launch.replicas, "127.0.0.1:" + std::to_string(free_local_port())};
    const auto step_server = server();
    auto group = std::make_shared<ReplicaGroup>(std::move(observer), step_server, launch.replicas, launch.attempt_dir);
    auto state = std::make_shared<AttemptState>();
    state->observer = group;
    // Rank 0 failing to start throws: nothing runs, the engine reports it.
    group->on_started(0, start_attempt(*step_server, launch, state, [state, group](const StepEnd& end) {
                        group->on_exit(0, end.status);
                        if (end.start_error.empty())
                          state->on_exit(end.status);
                        else
                          state->on_start_failed(end.start_error);
                      }));
    for (int rank = 1; rank < launch.replicas; ++rank) {
      try {
        group->on_started(rank, start_replica(*step_server, launch, rank, [group, rank](const StepEnd& end) {
                            if (end.start_error.empty())
                              group->on_exit(rank, end.status);
                            else
                              group->on_start_failed(rank, end.start_error);
                          }));
      } catch (const std::exception& e) {  // rank 0 runs: the group reports through it
        group->on_start_failed(rank, e.what(), launch.replicas - rank);
        break;
      }
    }
    return std::make_unique<ReplicaAttempt>(group);
  }

  fs::path kiln_exe_;
  ChannelReactor reactor_;
  std::mutex mutex_;
  std::shared_ptr<StepServer> server_;
};

}  // namespace

std::unique_ptr<Executor> make_process_executor(fs::path kiln_exe) {
  return std::make_unique<ProcessExecutor>(std::move(kiln_exe));
}

}  // namespace kiln::host

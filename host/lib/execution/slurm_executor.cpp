// The Slurm executor: each attempt is a batch job (sbatch --parsable) whose
// script runs `kiln step` with fd 3 appended to the attempt's channel.jsonl on
// the shared filesystem. One watcher thread follows every job of the executor:
// it reads the channel files as they grow (inotify, and a sweep for
// filesystems that do not report remote writes) and asks squeue about all
// unfinished jobs at once every kSqueueInterval, never per job.
// An attempt ends when its result line arrives, or when squeue reports its
// job in a final state (or forgets it) without one: then the state decides
// the failure class (slurm_job.hpp). Jobs are recorded under state_dir/jobs
// while they run, so that a kiln started after a host died cancels them.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <kiln/host/executor.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/subprocess.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "runner_channel.hpp"
#include "replica_group.hpp"
#include "slurm_job.hpp"

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kCommandTimeout = std::chrono::seconds(30);
constexpr auto kSqueueInterval = std::chrono::milliseconds(1000);
constexpr int kSweepMs = 250;  // reads every channel file even without inotify news (NFS)

std::string host_name() {
  std::array<char, 256> name{};
  ::gethostname(name.data(), name.size() - 1);
  return name.data();
}

// sbatch, squeue, scancel and scontrol, found once.
class SlurmClient {
 public:
  SlurmClient() {
    for (const char* name : {"sbatch", "squeue", "scancel", "scontrol", "srun"}) {
      const auto path = find_in_path(name);
      if (!path)
        throw std::runtime_error(std::string("the Slurm executor needs ") + name +
                                 " in PATH (Debian package slurm-client) and a reachable Slurm cluster; see "
                                 "docs/executors.md");
      binaries_[name] = *path;
    }
  }
  // Runs `tool args...`, stdout and stderr together in the result's output.
  CapturedRun run(const std::string& tool, std::vector<std::string> args) const {
    args.insert(args.begin(), binaries_.at(tool).string());
    return run_with_result_channel(args, kCommandTimeout);
  }

 private:
  std::map<std::string, fs::path> binaries_;
};

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.size() > 2000 ? text.substr(0, 2000) + "..." : text;
}

// One submitted attempt, shared by the watcher and the RunningAttempt.
struct SlurmJob {
  std::string id;
  StepLaunch launch;
  std::shared_ptr<AttemptState> state;
  fs::path channel, record;
  uintmax_t offset = 0;  // bytes of the channel applied so far
  int watch = -1;        // inotify watch of the attempt directory
  std::atomic<bool> finished{false}, cancelled_by_kiln{false}, started{false};
};

class SlurmAttempt : public RunningAttempt {
 public:
  SlurmAttempt(std::shared_ptr<const SlurmClient> client, std::shared_ptr<SlurmJob> job)
      : client_(std::move(client)), job_(std::move(job)) {}
  // A started `kiln step` turns SIGTERM into is_cancelled; a job still queued is simply removed.
  void cancel() override {
    if (job_->finished) return;
    if (!job_->started) return kill();
    job_->cancelled_by_kiln = true;
    client_->run("scancel", {"--batch", "--signal=TERM", job_->id});
  }
  void kill() override {
    if (job_->finished) return;
    job_->cancelled_by_kiln = true;
    client_->run("scancel", {job_->id});
  }

 private:
  std::shared_ptr<const SlurmClient> client_;
  std::shared_ptr<SlurmJob> job_;
};

class SlurmExecutor : public Executor {
 public:
  SlurmExecutor(fs::path kiln_exe, fs::path state_dir, SlurmOptions run_options)
      : kiln_exe_(fs::absolute(std::move(kiln_exe))),
        state_dir_(fs::absolute(std::move(state_dir))),
        run_options_(std::move(run_options)),
        client_(std::make_shared<const SlurmClient>()),
        inotify_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)),
        wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (inotify_ < 0 || wake_ < 0) throw std::runtime_error("the Slurm executor cannot create its watcher");
    fs::create_directories(jobs_dir());
    check_cluster();
    cancel_leftovers();
    check_shared_filesystem();
    watcher_ = std::thread([this] { watch(); });
  }
  ~SlurmExecutor() override {
    stopping_ = true;
    wake();
    watcher_.join();
    for (const auto& [id, job] : jobs_) {  // none, after a normal run: the engine waits for every attempt
      client_->run("scancel", {id});
      std::error_code ignored;
      fs::remove(job->record, ignored);
    }
    ::close(inotify_);
    ::close(wake_);
  }
  SlurmExecutor(const SlurmExecutor&) = delete;
  SlurmExecutor& operator=(const SlurmExecutor&) = delete;

  std::unique_ptr<RunningAttempt> start(const StepLaunch& launch, std::shared_ptr<AttemptObserver> observer) override {
    // A data-parallel step as one job of N tasks is designed (docs/executors.md), not built yet.
    require_one_replica(launch, "slurm");
    auto job = std::make_shared<SlurmJob>();
    job->launch = launch;
    job->state = std::make_shared<AttemptState>();
    job->state->observer = std::move(observer);
    fs::create_directories(launch.attempt_dir);
    fs::create_directories(launch.checkpoint_dir);
    const fs::path request = launch.attempt_dir / "request.json";
    write_step_request(launch, request);
    const fs::path script = launch.attempt_dir / "job.sh";
    write_file_atomic(script, slurm_job_script(kiln_exe_, request, launch.attempt_dir / kSlurmChannelFile), 0755,
                      FileSync::atomic);
    job->channel = launch.attempt_dir / kSlurmChannelFile;
    // A new file (inode): a job of a dead host still appending to the old one cannot reach it.
    std::error_code ignored;
    fs::remove(job->channel, ignored);
    std::ofstream(job->channel, std::ios::trunc).close();  // exists before inotify watches its directory
    job->watch = ::inotify_add_watch(inotify_, launch.attempt_dir.c_str(), IN_MODIFY | IN_CLOSE_WRITE);
    std::vector<std::string> args = sbatch_arguments(launch, run_options_);
    args.push_back(script.string());
    const CapturedRun submitted = client_->run("sbatch", args);
    const auto id = parse_sbatch_job_id(submitted.output);
    if (!submitted.status.success() || !id) {
      if (job->watch >= 0) ::inotify_rm_watch(inotify_, job->watch);
      throw std::runtime_error("sbatch " + submitted.status.describe() + ": " + trimmed(submitted.output));
    }
    job->id = *id;
    job->record = jobs_dir() / job->id;
    write_file_atomic(job->record, std::to_string(::getpid()) + " " + host_name() + "\n", 0644, FileSync::atomic);
    job->state->observer->on_event(LogEvent{LogLevel::Info, "submitted as Slurm job " + job->id});
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      jobs_[job->id] = job;
      if (job->watch >= 0) watches_[job->watch] = job;
    }
    wake();
    return std::make_unique<SlurmAttempt>(client_, job);
  }

 private:
  fs::path jobs_dir() const { return state_dir_ / "jobs"; }

  void wake() const {
    const uint64_t one = 1;
    const ssize_t ignored = ::write(wake_, &one, sizeof one);
    static_cast<void>(ignored);
  }

  void check_cluster() const {
    const CapturedRun ping = client_->run("scontrol", {"ping"});
    if (!ping.status.success() || ping.output.find("UP") == std::string::npos)
      throw std::runtime_error("the Slurm cluster does not answer (scontrol ping: " + trimmed(ping.output) +
                               "); is SLURM_CONF set and slurmctld running? See docs/executors.md");
  }

  // The workspace and kiln itself must be at the same paths on the compute
  // nodes: one short job reads a file written here and writes one back.
  void check_shared_filesystem() const {
    const fs::path probe = state_dir_ / ("probe-" + std::to_string(::getpid()));
    write_file_atomic(probe, "kiln\n", 0644, FileSync::atomic);
    std::vector<std::string> args{"--quiet", "--ntasks=1", "--time=1", "--job-name=kiln:probe"};
    for (auto& arg : run_options_.sbatch_args()) args.push_back(std::move(arg));
    args.insert(args.end(), {"/bin/sh", "-c", "test -r \"$0\" && test -x \"$1\" && touch \"$0.seen\"",
                             probe.string(), kiln_exe_.string()});
    const CapturedRun run = client_->run("srun", args);
    std::error_code ec;
    const bool seen = fs::exists(probe.string() + ".seen", ec);
    fs::remove(probe, ec);
    fs::remove(probe.string() + ".seen", ec);
    if (!seen)
      throw std::runtime_error("a Slurm job cannot read and write kiln's workspace " + state_dir_.parent_path().string() +
                               " or run " + kiln_exe_.string() +
                               " at the same paths on its node: the workspace and kiln must be on a filesystem "
                               "shared with the compute nodes (docs/executors.md). srun " +
                               run.status.describe() + (run.output.empty() ? "" : ": " + trimmed(run.output)));
  }

  // Jobs a kiln on this machine recorded and that kiln is gone (killed, crashed):
  // cancelled, so that a resumed run does not race its own steps' old attempts.
  void cancel_leftovers() const {
    std::error_code ec;
    const std::string me = host_name();
    std::vector<std::string> cancelled;
    for (const auto& entry : fs::directory_iterator(jobs_dir(), ec)) {
      std::istringstream record(read_file(entry.path()));
      pid_t pid = 0;
      std::string host;
      record >> pid >> host;
      if (host != me || pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
      client_->run("scancel", {entry.path().filename().string()});
      cancelled.push_back(entry.path().filename().string());
      fs::remove(entry.path(), ec);
    }
    wait_until_ended(cancelled);
  }

  // Waits (bounded) until none of `ids` runs any more: a resumed attempt may reuse their directories.
  void wait_until_ended(const std::vector<std::string>& ids) const {
    if (ids.empty()) return;
    std::string list;
    for (const auto& id : ids) list += (list.empty() ? "" : ",") + id;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      const CapturedRun run = client_->run("squeue", {"-h", "--states=all", "-j", list, "-o", "%i %T"});
      const auto states = parse_squeue_states(run.output);
      if (std::all_of(states.begin(), states.end(), [](const auto& s) { return slurm_state_final(s.second); }) &&
          !run.status.timed_out)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  // ---- the watcher thread ---------------------------------------------------------

  void watch() {
    auto next_squeue = Clock::now() + kSqueueInterval;
    auto next_sweep = Clock::now();
    std::array<pollfd, 2> fds{{{inotify_, POLLIN, 0}, {wake_, POLLIN, 0}}};
    while (!stopping_) {
      ::poll(fds.data(), fds.size(), kSweepMs);
      drain_wake();
      std::vector<std::shared_ptr<SlurmJob>> dirty = changed_jobs();
      if (Clock::now() >= next_sweep) {
        dirty = all_jobs();
        next_sweep = Clock::now() + std::chrono::milliseconds(kSweepMs);
      }
      for (const auto& job : dirty) read_channel(*job);
      if (Clock::now() >= next_squeue) {
        poll_states();
        next_squeue = Clock::now() + kSqueueInterval;
      }
    }
  }

  void drain_wake() const {
    uint64_t count = 0;
    while (::read(wake_, &count, sizeof count) > 0) {
    }
  }

  std::vector<std::shared_ptr<SlurmJob>> all_jobs() {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::shared_ptr<SlurmJob>> jobs;
    for (const auto& [id, job] : jobs_) jobs.push_back(job);
    return jobs;
  }

  // The jobs whose channel inotify reported written.
  std::vector<std::shared_ptr<SlurmJob>> changed_jobs() {
    alignas(inotify_event) std::array<char, 16384> buffer;
    std::vector<std::shared_ptr<SlurmJob>> changed;
    for (;;) {
      const ssize_t n = ::read(inotify_, buffer.data(), buffer.size());
      if (n <= 0) break;
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + at);
        at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        if (event->len == 0 || std::string(event->name) != kSlurmChannelFile) continue;
        const std::lock_guard<std::mutex> lock(mutex_);
        if (const auto it = watches_.find(event->wd); it != watches_.end()) changed.push_back(it->second);
      }
    }
    return changed;
  }

  // Applies what the channel gained since last time; reports the attempt when its result came.
  void read_channel(SlurmJob& job) {
    if (job.finished) return;
    std::ifstream in(job.channel, std::ios::binary);
    if (!in) return;
    in.seekg(static_cast<std::streamoff>(job.offset));
    std::array<char, 65536> chunk;
    while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0) {
      const auto n = static_cast<size_t>(in.gcount());
      job.offset += n;
      job.started = true;
      apply_channel_bytes(std::string_view(chunk.data(), n), *job.state);
    }
    if (job.state->got_result) finish(job, std::nullopt);
  }

  // One squeue for every unfinished job.
  void poll_states() {
    const auto jobs = all_jobs();
    if (jobs.empty()) return;
    std::string ids;
    for (const auto& job : jobs) ids += (ids.empty() ? "" : ",") + job->id;
    const CapturedRun run = client_->run("squeue", {"-h", "--states=all", "-j", ids, "-o", "%i %T"});
    if (run.status.timed_out) return;  // the controller is busy: ask again next time
    const bool all_gone = !run.status.success() && run.output.find("Invalid job id") != std::string::npos;
    if (!run.status.success() && !all_gone) return;
    const auto states = parse_squeue_states(run.output);
    for (const auto& job : jobs) {
      const auto it = states.find(job->id);
      if (it != states.end() && it->second == "RUNNING") job->started = true;
      if (it != states.end() && !slurm_state_final(it->second)) continue;
      read_channel(*job);  // the last lines written before the job ended
      if (!job->finished) finish(*job, it == states.end() ? "GONE" : it->second);
    }
  }

  // Reports the attempt: from its result line, or from the job's end state.
  void finish(SlurmJob& job, const std::optional<std::string>& end_state) {
    if (job.finished.exchange(true)) return;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      jobs_.erase(job.id);
      if (job.watch >= 0) {
        watches_.erase(job.watch);
        ::inotify_rm_watch(inotify_, job.watch);
      }
    }
    std::error_code ignored;
    fs::remove(job.record, ignored);
    AttemptResult result = std::move(job.state->result);
    if (!job.state->got_result && end_state) {
      const SlurmEnd end = slurm_end(job.id, *end_state, job.cancelled_by_kiln, job.launch);
      result.failure_class = end.failure_class;
      result.message = end.message;
    } else if (result.failure_class == "cancelled" && !job.cancelled_by_kiln) {
      // Only a stop signal makes a step report "cancelled"; kiln sent none: an
      // scancel (which signals before it kills) or an administrator did.
      const SlurmEnd end = slurm_end(job.id, "CANCELLED", false, job.launch);
      result.failure_class = end.failure_class;
      result.message = end.message + " (the step stopped: " + result.message + ")";
    }
    job.state->observer->on_finished(std::move(result));
  }

  fs::path kiln_exe_, state_dir_;
  SlurmOptions run_options_;
  std::shared_ptr<const SlurmClient> client_;
  int inotify_, wake_;
  std::mutex mutex_;  // guards jobs_ and watches_
  std::map<std::string, std::shared_ptr<SlurmJob>> jobs_;
  std::map<int, std::shared_ptr<SlurmJob>> watches_;
  std::atomic<bool> stopping_{false};
  std::thread watcher_;
};

}  // namespace

std::unique_ptr<Executor> make_slurm_executor(fs::path kiln_exe, fs::path state_dir, SlurmOptions run_options) {
  return std::make_unique<SlurmExecutor>(std::move(kiln_exe), std::move(state_dir), std::move(run_options));
}

}  // namespace kiln::host

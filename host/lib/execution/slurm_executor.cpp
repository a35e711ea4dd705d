// The Slurm executor. Each attempt runs a job script that runs `kiln step`
// with fd 3 appended to the attempt's channel.jsonl on the shared filesystem,
// launched one of two ways (docs/executors.md):
//   - allocation mode (the default): the run holds one allocation (salloc
//     --no-shell, taken at the first attempt, released when the executor
//     ends; its --time the pipeline's options.timeout, see salloc_arguments)
//     and each attempt is `srun --jobid=ALLOC --exact --overlap`, a
//     child of this process: immediate, no scheduling pass. Its end is the
//     srun child's exit (a pidfd in the watcher's poll), its failure class
//     read from srun's own messages (srun.log).
//   - batch mode (slurm: {mode: batch}, GPUs, a step's own partition...): a
//     job per attempt (sbatch --parsable), started at slurmctld's next
//     scheduling pass; its end comes from squeue.
// A data-parallel attempt (replicas N) is one srun step, or one batch job,
// of N tasks: the script takes its rank from SLURM_PROCID.
// One watcher thread follows every attempt of the executor:
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
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kiln/host/executor.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/subprocess.hpp>
#include <kiln/host/unique_fd.hpp>

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
#include "slurm_client.hpp"
#include "slurm_job.hpp"

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSqueueInterval = std::chrono::milliseconds(1000);
constexpr int kSweepMs = 250;  // reads every channel file even without inotify news (NFS)


constexpr auto kAllocationTimeout = std::chrono::seconds(60);

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// The request of one task: kiln's stop request (scancel --signal=TERM)
// reaches the task, `kiln step`, and nothing it started, so a component
// file's command leads a group of its own that `kiln step` passes the stop on
// to (executor.hpp). The kill after the grace period is Slurm's: every
// process of the step or job.
void write_slurm_request(const StepLaunch& launch, const fs::path& file) {
  Json request = step_request(launch);
  request["command_group"] = "own";
  write_request_file(request, file);
}

// One attempt, shared by the watcher and the RunningAttempt: a batch job
// (id set, srun empty) or an srun step in the run's allocation.
struct SlurmJob {
  std::string id;  // batch: the job id; allocation: the allocation's id
  StepLaunch launch;
  std::shared_ptr<AttemptState> state;
  fs::path channel, record;
  uintmax_t offset = 0;  // bytes of the channel applied so far
  int watch = -1;        // inotify watch of the attempt directory
  std::atomic<bool> finished{false}, cancelled_by_kiln{false}, started{false};
  // Allocation mode: the srun child, its pidfd, and where srun's own messages and the step id go.
  std::mutex srun_mutex;  // guards srun against a signal racing the reap
  std::optional<ChildProcess> srun;
  int pidfd = -1;
  fs::path srun_log, step_file;

  bool in_allocation() const { return !srun_log.empty(); }
  // "12.3" once the step has started (its script wrote it), else "".
  std::string step_id() const {
    std::error_code ec;
    if (!fs::exists(step_file, ec)) return "";
    std::string id = read_file(step_file);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id.find_first_not_of("0123456789.") == std::string::npos ? id : "";
  }
  std::string label() const {
    if (!in_allocation()) return "Slurm job " + id;
    const std::string step = step_id();
    return step.empty() ? "Slurm step in allocation " + id : "Slurm step " + step;
  }
  void signal_srun(int signal) {
    const std::lock_guard<std::mutex> lock(srun_mutex);
    if (srun) srun->kill_group(signal);
  }
};

class SlurmAttempt : public RunningAttempt {
 public:
  SlurmAttempt(std::shared_ptr<const SlurmClient> client, std::shared_ptr<SlurmJob> job)
      : client_(std::move(client)), job_(std::move(job)) {}
  // A started `kiln step` turns SIGTERM into is_cancelled; a job still queued is simply removed.
  void cancel() override {
    if (job_->finished) return;
    if (job_->in_allocation()) {
      const std::string step = job_->step_id();
      if (step.empty()) return kill();
      job_->cancelled_by_kiln = true;
      return client_->cancel(step, {"--signal=TERM"});
    }
    if (!job_->started) return kill();
    job_->cancelled_by_kiln = true;
    client_->cancel(job_->id, {"--batch", "--signal=TERM"});
  }
  void kill() override {
    if (job_->finished) return;
    job_->cancelled_by_kiln = true;
    if (!job_->in_allocation()) return client_->cancel(job_->id);
    job_->signal_srun(SIGTERM);  // srun ends its step
    if (const std::string step = job_->step_id(); !step.empty()) client_->cancel(step);
  }

 private:
  std::shared_ptr<const SlurmClient> client_;
  std::shared_ptr<SlurmJob> job_;
};

class SlurmExecutor : public Executor {
 public:
  SlurmExecutor(fs::path kiln_exe, fs::path state_dir, SlurmOptions run_options,
                std::optional<double> run_timeout_seconds)
      : kiln_exe_(fs::absolute(std::move(kiln_exe))),
        state_dir_(fs::absolute(std::move(state_dir))),
        run_options_(std::move(run_options)),
        run_timeout_seconds_(run_timeout_seconds),
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
    for (const auto& [key, job] : jobs_) {  // none, after a normal run: the engine waits for every attempt
      if (!job->in_allocation()) client_->cancel(job->id);
      std::error_code ignored;
      if (!job->record.empty()) fs::remove(job->record, ignored);
    }
    release_allocation();
    for (const auto& [fd, job] : sruns_) {  // their steps ended with the allocation: reaped (or killed) here
      const std::lock_guard<std::mutex> lock(job->srun_mutex);
      job->srun.reset();
      ::close(fd);
    }
    ::close(inotify_);
    ::close(wake_);
  }
  SlurmExecutor(const SlurmExecutor&) = delete;
  SlurmExecutor& operator=(const SlurmExecutor&) = delete;

  std::unique_ptr<RunningAttempt> start(const StepLaunch& launch, std::shared_ptr<AttemptObserver> observer) override {
    auto job = std::make_shared<SlurmJob>();
    job->launch = launch;
    job->state = std::make_shared<AttemptState>();
    job->state->observer = std::move(observer);
    fs::create_directories(launch.attempt_dir);
    fs::create_directories(launch.checkpoint_dir);
    const auto allocation = allocation_for(launch, *job->state->observer);
    if (allocation) {
      job->srun_log = launch.attempt_dir / "srun.log";
      job->step_file = launch.attempt_dir / "slurm-step";
      std::error_code ignored;
      fs::remove(job->step_file, ignored);  // a previous host's attempt may have left one
    }
    const fs::path script = write_scripts(launch, job->step_file);
    job->channel = launch.attempt_dir / kSlurmChannelFile;
    // A new file (inode): a job of a dead host still appending to the old one cannot reach it.
    std::error_code ignored;
    fs::remove(job->channel, ignored);
    std::ofstream(job->channel, std::ios::trunc).close();  // exists before inotify watches its directory
    job->watch = ::inotify_add_watch(inotify_, launch.attempt_dir.c_str(), IN_MODIFY | IN_CLOSE_WRITE);
    try {
      if (allocation)
        launch_step(*job, *allocation, script);
      else
        submit_job(*job, script);
    } catch (...) {
      if (job->watch >= 0) ::inotify_rm_watch(inotify_, job->watch);
      throw;
    }
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      jobs_[key_of(*job)] = job;
      if (job->watch >= 0) watches_[job->watch] = job;
      if (job->pidfd >= 0) sruns_[job->pidfd] = job;
    }
    wake();
    return std::make_unique<SlurmAttempt>(client_, job);
  }

 private:
  static std::string key_of(const SlurmJob& job) {
    return job.in_allocation() ? "srun:" + job.launch.attempt_dir.string() : job.id;
  }

  // The attempt's scripts: job.sh (one task, or each task of a data-parallel
  // step) and, for a data-parallel batch job, batch.sh that sruns its tasks.
  // Returns the one to launch.
  fs::path write_scripts(const StepLaunch& launch, const fs::path& step_file) const {
    const fs::path script = launch.attempt_dir / "job.sh";
    const std::optional<fs::path> step = step_file.empty() ? std::nullopt : std::optional<fs::path>(step_file);
    if (launch.replicas <= 1) {
      const fs::path request = launch.attempt_dir / "request.json";
      write_slurm_request(launch, request);
      write_file_atomic(script, slurm_job_script(kiln_exe_, request, launch.attempt_dir / kSlurmChannelFile, step),
                        0755, FileSync::atomic);
      return script;
    }
    write_slurm_request(launch, launch.attempt_dir / "request.json");
    for (int rank = 1; rank < launch.replicas; ++rank) {  // ranks > 0 write only logs, in their own directory
      StepLaunch other = launch;
      other.attempt_dir = replica_dir(launch.attempt_dir, rank);
      other.output_dir = other.attempt_dir / "outputs";
      other.temp_dir = other.attempt_dir / "tmp";
      fs::create_directories(other.attempt_dir);
      write_slurm_request(other, other.attempt_dir / "request.json");
    }
    // The rendezvous port is picked here: free on this machine, hopefully on
    // rank 0's node too (if not, rank 0 cannot serve its store and the attempt fails, retried).
    write_file_atomic(script, slurm_task_script(kiln_exe_, launch.attempt_dir, step, launch.replicas, free_local_port()),
                      0755, FileSync::atomic);
    if (!step_file.empty()) return script;
    const fs::path batch = launch.attempt_dir / "batch.sh";
    write_file_atomic(batch, slurm_tasks_batch_script(script, launch.replicas), 0755, FileSync::atomic);
    return batch;
  }

  void submit_job(SlurmJob& job, const fs::path& script) {
    std::vector<std::string> args = sbatch_arguments(job.launch, run_options_);
    args.push_back(script.string());
    const CapturedRun submitted = client_->run("sbatch", args);
    const auto id = parse_sbatch_job_id(submitted.output);
    if (!submitted.status.success() || !id)
      throw std::runtime_error("sbatch " + submitted.status.describe() + ": " + trimmed_output(submitted.output));
    job.id = *id;
    job.record = jobs_dir() / job.id;
    write_file_atomic(job.record, std::to_string(::getpid()) + " " + host_name() + "\n", 0644, FileSync::atomic);
    job.state->observer->on_event(LogEvent{LogLevel::Info, "submitted as Slurm job " + job.id});
  }

  // srun as a child of this process: its stdout and stderr (srun's own
  // messages; the step's output goes to the attempt's logs) into srun.log.
  void launch_step(SlurmJob& job, const SlurmAllocation& allocation, const fs::path& script) {
    std::vector<std::string> argv{client_->binary("srun").string()};
    for (auto& arg : srun_arguments(job.launch, allocation.id)) argv.push_back(std::move(arg));
    argv.insert(argv.end(), {"/bin/sh", script.string()});
    const UniqueFd log(::open(job.srun_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (log.get() < 0) throw std::runtime_error("cannot write " + job.srun_log.string());
    job.id = allocation.id;
    job.srun.emplace(ChildProcess::spawn({argv, {{1, log.get()}, {2, log.get()}}, {}, {}}));
    job.pidfd = pidfd_open(job.srun->pid());
    if (job.pidfd < 0) {
      job.srun.reset();  // killed and reaped
      throw std::runtime_error("the Slurm executor cannot watch srun (pidfd_open failed)");
    }
    job.state->observer->on_event(LogEvent{LogLevel::Info, "started as a step of Slurm allocation " + allocation.id});
  }

  // The allocation this attempt runs in, nullopt for a batch job. Taken at
  // the first attempt that can use one; when none is granted the run goes on
  // with batch jobs.
  std::optional<SlurmAllocation> allocation_for(const StepLaunch& launch, AttemptObserver& observer) {
    if (launch.slurm.over(run_options_).mode == SlurmMode::batch || launch.slurm.places_job()) return std::nullopt;
    const std::lock_guard<std::mutex> lock(allocation_mutex_);
    if (!allocation_ && !allocation_refused_) {
      try {
        allocation_ = client_->allocate(salloc_arguments(run_options_, run_timeout_seconds_, launch.grace_seconds),
                                       kAllocationTimeout);
        write_file_atomic(jobs_dir() / allocation_->id, std::to_string(::getpid()) + " " + host_name() + "\n", 0644,
                          FileSync::atomic);
        observer.on_event(LogEvent{LogLevel::Info, "holding Slurm allocation " + allocation_->id + " (" +
                                                       std::to_string(allocation_->cpus) + " cpus) for the run's steps"});
      } catch (const std::exception& e) {
        allocation_refused_ = true;
        observer.on_event(LogEvent{LogLevel::Warning, std::string("no Slurm allocation for this run (") + e.what() +
                                                          "): its steps run as batch jobs"});
      }
    }
    if (!allocation_ || !fits_allocation(launch, run_options_, *allocation_)) return std::nullopt;
    return allocation_;
  }

  // Cancels the run's allocation (its steps end with it); the next attempt takes a new one.
  void release_allocation(const std::optional<std::string>& only = std::nullopt) {
    const std::lock_guard<std::mutex> lock(allocation_mutex_);
    if (!allocation_ || (only && *only != allocation_->id)) return;
    client_->cancel(allocation_->id);
    std::error_code ignored;
    fs::remove(jobs_dir() / allocation_->id, ignored);
    allocation_.reset();
  }

  fs::path jobs_dir() const { return state_dir_ / "jobs"; }

  void wake() const {
    const uint64_t one = 1;
    const ssize_t ignored = ::write(wake_, &one, sizeof one);
    static_cast<void>(ignored);
  }

  void check_cluster() const {
    const CapturedRun ping = client_->run("scontrol", {"ping"});
    if (!ping.status.success() || ping.output.find("UP") == std::string::npos)
      throw std::runtime_error("the Slurm cluster does not answer (scontrol ping: " + trimmed_output(ping.output) +
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
                               run.status.describe() + (run.output.empty() ? "" : ": " + trimmed_output(run.output)));
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
      client_->cancel(entry.path().filename().string());
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
    while (!stopping_) {
      std::vector<pollfd> fds{{inotify_, POLLIN, 0}, {wake_, POLLIN, 0}};
      for (const int fd : srun_fds()) fds.push_back({fd, POLLIN, 0});
      ::poll(fds.data(), fds.size(), kSweepMs);
      drain_wake();
      std::vector<std::shared_ptr<SlurmJob>> dirty = changed_jobs();
      if (Clock::now() >= next_sweep) {
        dirty = all_jobs();
        next_sweep = Clock::now() + std::chrono::milliseconds(kSweepMs);
      }
      for (const auto& job : dirty) read_channel(*job);
      for (size_t i = 2; i < fds.size(); ++i)
        if (fds[i].revents != 0) on_srun_exit(fds[i].fd);
      if (Clock::now() >= next_squeue) {
        poll_states();
        next_squeue = Clock::now() + kSqueueInterval;
      }
    }
  }

  std::vector<int> srun_fds() {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::vector<int> fds;
    for (const auto& [fd, job] : sruns_) fds.push_back(fd);
    return fds;
  }

  // An srun child ended: reaped; its attempt ends now unless its result came
  // (then the class comes from srun's messages: out of memory, cancelled...).
  void on_srun_exit(int fd) {
    std::shared_ptr<SlurmJob> job;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      const auto it = sruns_.find(fd);
      if (it == sruns_.end()) return;
      job = it->second;
      sruns_.erase(it);
    }
    ExitStatus status;
    {
      const std::lock_guard<std::mutex> lock(job->srun_mutex);
      status = job->srun->wait();
      job->srun.reset();
      ::close(fd);
    }
    read_channel(*job);  // the last lines written before the step ended
    job->pidfd = -1;
    if (job->finished) return;
    const std::string messages = read_file(job->srun_log);
    const std::string said = "srun " + status.describe() + (messages.empty() ? "" : ": " + trimmed_output(messages));
    if (job->state->got_result) return finish(*job, std::nullopt, said);  // a data-parallel step's rank 0 failed
    const std::string state = srun_end_state(messages);
    if (state == "ALLOCATION_GONE") release_allocation(job->id);
    finish(*job, state, said);
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
    if (!job.state->got_result) return;
    // A data-parallel step's rank 0 that failed waits for srun: which task ended first is in srun's
    // messages (allocation mode: srun's exit; batch mode: the job's end, srun being its script's).
    if (job.launch.replicas > 1 && !job.state->result.ok() && (job.pidfd >= 0 || !job.in_allocation())) return;
    finish(job, std::nullopt);
  }

  // One squeue for every unfinished job.
  void poll_states() {
    auto jobs = all_jobs();
    jobs.erase(std::remove_if(jobs.begin(), jobs.end(), [](const auto& job) { return job->in_allocation(); }),
               jobs.end());
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
      if (job->finished) continue;
      // A data-parallel batch job: its script's srun names the task that ended first.
      const std::string said =
          job->launch.replicas > 1 ? srun_messages_of(job->launch.attempt_dir / "stderr.log") : std::string();
      finish(*job, it == states.end() ? "GONE" : it->second, trimmed_output(said));
    }
  }

  // Reports the attempt: from its result line, or from the job's end state;
  // `srun_said` (srun's exit and messages) is added to a failure's message.
  void finish(SlurmJob& job, const std::optional<std::string>& end_state, const std::string& srun_said = "") {
    if (job.finished.exchange(true)) return;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      jobs_.erase(key_of(job));
      if (job.watch >= 0) {
        watches_.erase(job.watch);
        ::inotify_rm_watch(inotify_, job.watch);
      }
    }
    std::error_code ignored;
    if (!job.record.empty()) fs::remove(job.record, ignored);
    AttemptResult result = std::move(job.state->result);
    if (!job.state->got_result && end_state) {
      const SlurmEnd end = slurm_end(job.label(), *end_state, job.cancelled_by_kiln, job.launch);
      result.failure_class = end.failure_class;
      result.message = end.message;
    } else if (result.failure_class == "cancelled" && !job.cancelled_by_kiln) {
      // Only a stop signal makes a step report "cancelled"; kiln sent none: an
      // scancel (which signals before it kills) or an administrator did.
      const SlurmEnd end = slurm_end(job.label(), "CANCELLED", false, job.launch);
      result.failure_class = end.failure_class;
      result.message = end.message + " (the step stopped: " + result.message + ")";
    }
    if (!result.ok() && !srun_said.empty() && result.failure_class != "cancelled") result.message += " (" + srun_said + ")";
    job.state->observer->on_finished(std::move(result));
  }

  fs::path kiln_exe_, state_dir_;
  SlurmOptions run_options_;
  std::optional<double> run_timeout_seconds_;  // the pipeline's options.timeout: the allocation's --time
  std::shared_ptr<const SlurmClient> client_;
  int inotify_, wake_;
  std::mutex mutex_;  // guards jobs_, watches_ and sruns_
  std::map<std::string, std::shared_ptr<SlurmJob>> jobs_;  // unfinished attempts (batch: by job id)
  std::map<int, std::shared_ptr<SlurmJob>> watches_;
  std::map<int, std::shared_ptr<SlurmJob>> sruns_;  // srun children not yet reaped, by pidfd
  std::mutex allocation_mutex_;  // guards the two below
  std::optional<SlurmAllocation> allocation_;
  bool allocation_refused_ = false;
  std::atomic<bool> stopping_{false};
  std::thread watcher_;
};

}  // namespace

std::unique_ptr<Executor> make_slurm_executor(fs::path kiln_exe, fs::path state_dir, SlurmOptions run_options,
                                              std::optional<double> run_timeout_seconds) {
  return std::make_unique<SlurmExecutor>(std::move(kiln_exe), std::move(state_dir), std::move(run_options),
                                         run_timeout_seconds);
}

}  // namespace kiln::host

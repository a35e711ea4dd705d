// Checking a workspace's store: SQLite's integrity check of the metadata
// database, every stored artifact re-hashed against its digest, and every
// artifact a run references present. Prints nothing: the caller (`kiln
// fsck`, a server) reports the result.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/store.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace kiln::host {

struct FsckOptions {
  // Move corrupt artifacts aside (artifacts/corrupt/, see
  // ArtifactStore::verify) so the next step that produces them, or a cache
  // hit's recompute, stores them again. Default: only report.
  bool repair = false;
};

struct FsckProblem {
  enum class Kind { database, corrupt_artifact, missing_artifact };
  Kind kind = Kind::database;
  std::string subject;  // the digest of an artifact; the integrity check's row for the database
  // With FsckOptions::repair, a corrupt artifact moved aside: the store no
  // longer serves it, and the next run that needs it recomputes it.
  bool repaired = false;
  // One line: "artifact <digest>: content does not match its digest",
  // "artifact <digest>: missing", "database: <integrity check row>".
  std::string message() const;
};

struct FsckReport {
  size_t artifacts_checked = 0;
  std::vector<FsckProblem> problems;  // database first, then corrupt, then missing artifacts
  bool clean() const { return problems.empty(); }
};

FsckReport check_store(Store& store, const FsckOptions& options = {});

// The problems in the rows of `PRAGMA integrity_check`: none for the single
// row "ok"; one per other row; one when there is no row at all.
std::vector<FsckProblem> integrity_problems(const std::vector<Json>& rows);

}  // namespace kiln::host

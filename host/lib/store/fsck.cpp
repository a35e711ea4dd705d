// What `kiln fsck` checks: the database, then every stored artifact's bytes,
// then that every referenced artifact is there.
#include <kiln/host/fsck.hpp>

#include <set>

namespace kiln::host {

std::string FsckProblem::message() const {
  switch (kind) {
    case Kind::database:
      return "database: " + subject;
    case Kind::corrupt_artifact:
      return "artifact " + subject + ": content does not match its digest";
    case Kind::missing_artifact:
      return "artifact " + subject + ": missing";
  }
  return subject;
}

std::vector<FsckProblem> integrity_problems(const std::vector<Json>& rows) {
  if (rows.empty()) return {{FsckProblem::Kind::database, "the integrity check returned no result", false}};
  std::vector<FsckProblem> problems;
  for (const auto& row : rows) {
    const bool ok = row.is_object() && row.size() == 1 && row.begin().value() == "ok";
    if (!ok) problems.push_back({FsckProblem::Kind::database, row.dump(), false});
  }
  return problems;
}

FsckReport check_store(Store& store, const FsckOptions& options) {
  FsckReport report;
  report.problems = integrity_problems(store.db.query("PRAGMA integrity_check"));
  const auto stored = store.artifacts.list();
  report.artifacts_checked = stored.size();
  for (const auto& digest : stored) {
    if (store.artifacts.check(digest)) continue;
    FsckProblem problem{FsckProblem::Kind::corrupt_artifact, digest, false};
    if (options.repair) problem.repaired = !store.artifacts.verify(digest) && !store.artifacts.contains(digest);
    report.problems.push_back(std::move(problem));
  }
  const std::set<std::string> present(stored.begin(), stored.end());
  for (const auto& r : store.db.query("SELECT DISTINCT digest FROM lineage WHERE digest NOT LIKE 'collection:%'"))
    if (!present.count(r["digest"]))
      report.problems.push_back({FsckProblem::Kind::missing_artifact, r["digest"].get<std::string>(), false});
  return report;
}

}  // namespace kiln::host

// A workspace's durable state: the artifact store and the metadata database.
//   <workspace>/kiln.db                         runs, steps, attempts, metrics, artifacts, lineage, cache
//   <workspace>/artifacts/sha256/<ab>/<digest>/ one immutable directory per artifact
//   <workspace>/runs/<run-id>/                  logs, events, run.json (a readable snapshot)
#pragma once

#include <kiln/host/artifact_store.hpp>
#include <kiln/host/metadata_db.hpp>

#include <filesystem>

namespace kiln::host {

struct Store {
  explicit Store(const std::filesystem::path& workspace_dir)
      : workspace(workspace_dir), artifacts(workspace_dir), db(workspace_dir / "kiln.db") {}
  std::filesystem::path workspace;
  ArtifactStore artifacts;
  MetadataDb db;
};

}  // namespace kiln::host

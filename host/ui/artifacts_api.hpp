// Artifacts and their lineage as the API shows them: an artifact's record
// (producer run, step and output, consumers, size, metadata, its files), one
// of its files downloaded or previewed (text, JSON, CSV head, a metrics
// table, a PNG image; size-limited), and the lineage graph upstream and
// downstream of an artifact or around a run, from the metadata database.
// A file is read only inside the artifact's directory (confined_file.hpp).
#pragma once

#include "file_answer.hpp"
#include "query_string.hpp"
#include "workspace_db.hpp"

#include <kiln/host/artifact_store.hpp>
#include <kiln/host/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace kiln::ui {

inline constexpr int64_t kMaxPreviewTextBytes = 64 << 10;  // text and CSV previews read this much
inline constexpr int64_t kMaxPreviewJsonBytes = 1 << 20;   // JSON (and metrics) parsed up to this size
inline constexpr int64_t kMaxPreviewImageBytes = 4 << 20;  // PNG images shown up to this size
inline constexpr size_t kMaxArtifactFiles = 1000;          // files listed per artifact
inline constexpr size_t kMaxLineageNodes = 500;            // nodes of one lineage graph

class ArtifactsApi {
 public:
  ArtifactsApi(std::filesystem::path workspace, WorkspaceDb& db);

  // GET /api/v1/artifacts/{digest}.
  host::Json info(const std::string& digest);
  // GET /api/v1/artifacts/{digest}/content?file=PATH, the Range header's
  // bytes when `range` is given (then at most kMaxDownloadBytes of them, from
  // a file of any size).
  FileAnswer content(const std::string& digest, const QueryParams& query, const std::string* range = nullptr);
  // GET /api/v1/artifacts/{digest}/preview?file=PATH&rows=N: JSON, or a PNG's bytes (`image` set).
  host::Json preview(const std::string& digest, const QueryParams& query, FileAnswer* image);
  // GET /api/v1/artifacts/{digest}/lineage?direction=&depth=.
  host::Json lineage(const std::string& digest, const QueryParams& query);
  // GET /api/v1/runs/{id}/lineage: the run's steps and the artifacts they read and wrote.
  host::Json run_lineage(const std::string& run_id);

 private:
  // The artifact's directory; ApiError 400 for a malformed digest, 404 when not stored.
  std::filesystem::path directory(const std::string& digest) const;
  // The file of the artifact that ?file= names (or its only file).
  std::filesystem::path chosen_file(const std::filesystem::path& dir, const QueryParams& query) const;

  const std::filesystem::path workspace_;
  const host::ArtifactStore store_;
  WorkspaceDb& db_;
};

}  // namespace kiln::ui

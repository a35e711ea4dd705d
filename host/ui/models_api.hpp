// A serving repository as kiln ui shows it (--models DIR, the layout `kiln
// serve` reads: DIR/<model>/[config.json]/<version>/, docs/serving.md): each
// model's config and versions, each version's model.json, size and source
// (the run and step of `serve.publish` that wrote it, and the Model artifact
// it copied, from the metadata database). Only the directory given at start
// is read: a client cannot point the server at another one.
#pragma once

#include "query_string.hpp"
#include "workspace_db.hpp"

#include <kiln/host/json.hpp>

#include <filesystem>

namespace kiln::ui {

inline constexpr size_t kMaxModels = 200;            // models listed
inline constexpr size_t kMaxModelVersions = 100;     // versions listed per model (the newest)
inline constexpr int64_t kMaxModelJsonBytes = 1 << 20;

class ModelsApi {
 public:
  ModelsApi(std::filesystem::path repository, WorkspaceDb& db) : repository_(std::move(repository)), db_(db) {}

  // GET /api/v1/models.
  host::Json list(const QueryParams& query);

 private:
  const std::filesystem::path repository_;
  WorkspaceDb& db_;
};

}  // namespace kiln::ui

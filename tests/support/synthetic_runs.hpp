// Test-only: many runs written straight into a workspace's metadata
// database (rows of the runs table, no run directories), for the runs list's
// tests and its benchmark. What was written is returned, so a test computes
// what it expects by itself, not through SQL.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace kiln::test {

struct SyntheticRun {
  std::string id, pipeline, status, message, started_at, finished_at;
  double duration_seconds = 0;
};

// Adds `count` finished runs (succeeded, failed, cancelled) of a few
// pipelines ("pipe-0".."pipe-9"), started over the 60 days before
// 2026-06-01, with distinct start times; failed ones have a message.
// Deterministic for a seed.
std::vector<SyntheticRun> add_synthetic_runs(const std::filesystem::path& workspace, int count, uint32_t seed = 1);

}  // namespace kiln::test

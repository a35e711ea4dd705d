#include "synthetic_runs.hpp"

#include <kiln/host/metadata_db.hpp>

#include <ctime>
#include <random>

namespace kiln::test {

namespace {

std::string utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

std::vector<SyntheticRun> add_synthetic_runs(const std::filesystem::path& workspace, int count, uint32_t seed) {
  std::mt19937 random(seed);
  const std::time_t end = 1780272000;  // 2026-06-01T00:00:00Z
  const std::time_t span = 60 * 24 * 3600;
  const char* statuses[] = {"succeeded", "succeeded", "succeeded", "failed", "cancelled"};
  std::vector<SyntheticRun> runs;
  host::MetadataDb db(workspace / "kiln.db");
  db.transaction(
      [&] {
        for (int i = 0; i < count; ++i) {
          SyntheticRun r;
          // Distinct start seconds: the i-th of `count` slots, jittered within its slot.
          const std::time_t slot = span / count;
          const std::time_t start =
              end - span + slot * i + static_cast<std::time_t>(random() % static_cast<uint32_t>(std::max<std::time_t>(1, slot)));
          r.pipeline = "pipe-" + std::to_string(random() % 10);
          r.id = "synthetic-" + std::to_string(100000 + i) + "-" + r.pipeline;
          r.status = statuses[random() % 5];
          if (r.status == "failed") r.message = "step 'train' failed: error " + std::to_string(random() % 100);
          r.duration_seconds = static_cast<double>(random() % 100000) / 100.0;
          r.started_at = utc(start);
          r.finished_at = utc(start + static_cast<std::time_t>(r.duration_seconds));
          db.execute(
              "INSERT INTO runs (id, pipeline, spec_file, spec_text, parameters, executor, run_dir, status, message,"
              " started_at, finished_at, duration_seconds, host, pid, boot_id, process_start)"
              " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
              {r.id, r.pipeline, "synthetic.yaml", "", "{}", "process", (workspace / "runs" / r.id).string(), r.status,
               r.message.empty() ? host::Json(nullptr) : host::Json(r.message), r.started_at, r.finished_at,
               r.duration_seconds, "synthetic-host", 1, "boot", "0"});
          runs.push_back(std::move(r));
        }
      },
      host::MetadataDb::Durability::process_crash);
  return runs;
}

}  // namespace kiln::test

#include <sys/random.h>
#include <kiln/host/files.hpp>
#include <kiln/host/host_identity.hpp>
#include <kiln/host/metadata_db.hpp>
#include <kiln/host/run_store.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>

namespace kiln::host {
namespace fs = std::filesystem;

fs::path workspace_dir(const std::string& option) {
  // Absolute, because steps run in other working directories and read their request files by this path.
  if (!option.empty()) return fs::absolute(option);
  if (const char* home = std::getenv("KILN_HOME"); home && *home) return fs::absolute(home);
  return fs::current_path() / ".kiln";
}

fs::path runs_dir(const fs::path& workspace) {
  return workspace / "runs";
}

namespace {

// 64 bits from the kernel's random source; std::random_device, read twice,
// where getrandom is unavailable.
uint64_t random_64() {
  uint64_t value = 0;
  ssize_t got = -1;
  do {
    got = ::getrandom(&value, sizeof value, 0);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof value)) return value;
  std::random_device random;
  return (static_cast<uint64_t>(random()) << 32) ^ static_cast<uint64_t>(random());
}

}  // namespace

bool is_run_id(const std::string& id) {
  bool valid = !id.empty() && id.size() <= 200 && id.front() != '.';
  for (const char c : id)
    valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  return valid;
}

std::string new_run_id(const std::string& pipeline_name, std::time_t now) {
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  char suffix[24];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random_64()));
  std::string name;
  for (const char c : pipeline_name.empty() ? std::string("run") : pipeline_name)
    name += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '-';
  return std::string(stamp) + "-" + name + "-" + suffix;
}

std::string new_run_id(const std::string& pipeline_name) {
  return new_run_id(pipeline_name, std::time(nullptr));
}

RunReader::RunReader(fs::path workspace) : workspace_(std::move(workspace)) {}

RunReader::~RunReader() = default;

std::optional<Json> RunReader::recorded_row(const std::string& run_id) {
  if (!opened_) {
    opened_ = true;
    const fs::path file = workspace_ / "kiln.db";
    std::error_code ec;
    if (!fs::exists(file, ec)) return std::nullopt;  // never create a database just to read
    try {
      db_ = std::make_unique<MetadataDb>(file);
    } catch (const std::exception&) {  // unreadable or newer than this kiln: the liveness is unknown
    }
  }
  if (!db_) return std::nullopt;
  try {
    return db_->query_one("SELECT host, pid, boot_id, process_start FROM runs WHERE id=?", {run_id});
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Json RunReader::read(const fs::path& run_dir) {
  Json record = Json::parse(read_file(run_dir / "run.json"));
  if (record.value("status", "") != "running") return record;
  HostState state = HostState::unknown;
  if (recorded_identity(record)) {
    state = liveness_of(record);
  } else if (const auto row = recorded_row(run_dir.filename().string())) {
    state = liveness_of(*row);
  }
  if (state == HostState::dead) record["status"] = "interrupted";
  return record;
}

Json read_run(const fs::path& run_dir) {
  return RunReader(run_dir.parent_path().parent_path()).read(run_dir);
}

std::vector<Json> list_runs(const fs::path& workspace) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(runs_dir(workspace), ec))
    if (fs::exists(entry.path() / "run.json")) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  RunReader reader(workspace);
  std::vector<Json> runs;
  for (const auto& dir : dirs) {
    try {
      runs.push_back(reader.read(dir));
    } catch (const std::exception&) {  // a run being created: its record is not there yet
    }
  }
  return runs;
}

fs::path find_run(const fs::path& workspace, const std::string& id) {
  std::vector<fs::path> matches;
  std::error_code ec;
  std::vector<fs::path> all;
  for (const auto& entry : fs::directory_iterator(runs_dir(workspace), ec)) all.push_back(entry.path());
  std::sort(all.begin(), all.end());
  if (id == "latest" && !all.empty()) return all.back();
  for (const auto& dir : all)
    if (dir.filename().string().rfind(id, 0) == 0) matches.push_back(dir);
  if (matches.size() == 1) return matches.front();
  if (matches.empty()) throw std::runtime_error("no run '" + id + "' in " + runs_dir(workspace).string());
  std::string names;
  for (const auto& m : matches) names += "\n  " + m.filename().string();
  throw std::runtime_error("'" + id + "' matches several runs:" + names);
}

}  // namespace kiln::host

#include <signal.h>
#include <unistd.h>
#include <kiln/host/files.hpp>
#include <kiln/host/run_store.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

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

bool process_alive(const Json& record) {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  if (record.value("host", "") != name) return true;  // another machine's run: cannot tell
  const int pid = record.value("pid", 0);
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

}  // namespace

Json read_run(const fs::path& run_dir) {
  Json record = Json::parse(read_file(run_dir / "run.json"));
  if (record.value("status", "") == "running" && !process_alive(record)) record["status"] = "interrupted";
  return record;
}

std::vector<Json> list_runs(const fs::path& workspace) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(runs_dir(workspace), ec))
    if (fs::exists(entry.path() / "run.json")) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  std::vector<Json> runs;
  for (const auto& dir : dirs) {
    try {
      runs.push_back(read_run(dir));
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

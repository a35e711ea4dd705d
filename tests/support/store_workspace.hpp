// A workspace for the store, cache and resume tests: a plugin dir holding
// one build of the store fixture plugin, input files, a run log, and helpers
// that run kiln against it and read its database.
#pragma once

#include <kiln/host/json.hpp>
#include <kiln/host/store.hpp>

#include <map>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace kiln::test {

class StoreWorkspace {
 public:
  StoreWorkspace();
  // Installs fixture_store_<variant> as the plugin providing fx.read / fx.step.
  void use_plugin(const std::string& variant);
  std::vector<std::pair<std::string, std::string>> env() const;
  std::filesystem::path workspace() const { return dir_ / "ws"; }
  std::filesystem::path path(const std::string& name) const { return dir_ / name; }
  // Writes a pipeline (steps etc. after the header); returns its path.
  std::string pipeline(const std::string& body) const;
  // `kiln run FILE --json ARGS...`: the parsed summary (fails the test on a bad exit).
  host::Json run(const std::string& file, const std::vector<std::string>& args = {}) const;
  host::CapturedRun kiln(std::vector<std::string> args,
                         const std::vector<std::pair<std::string, std::string>>& extra_env = {}) const;
  // The lines of the run log (one per component run).
  std::vector<std::string> log() const;
  // The content of output `data` of `step` in `run` (via the database).
  std::string output(const std::string& run, const std::string& step, const std::string& output = "data") const;

 private:
  TempDir dir_;
};

// Parses the JSON summary that follows any live-view text in `output`.
host::Json summary_of(const std::string& output);

}  // namespace kiln::test

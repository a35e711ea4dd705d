// samples/digits as the distributed-training tests run it (process executor
// in distributed_test.cpp, Slurm in slurm_distributed_test.cpp): the sample
// without its publish step, the run's record, and each rank's weight digest.
#pragma once

#include <chrono>
#include <filesystem>
#include <regex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace kiln::test::digits {

namespace fs = std::filesystem;
using kiln::host::Json;

// samples/digits without its publish step, its train step on `replicas`
// with `retries` and a checkpoint after every epoch (checkpoint_seconds: 0;
// the retry tests resume from epoch 2).
inline fs::path pipeline(const fs::path& dir, int replicas, const std::string& retries) {
  const fs::path source = KILN_TEST_SOURCE_DIR;
  std::string text = read_text(source / "samples" / "digits" / "pipeline.yaml");
  const auto replace = [&text](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    if (at == std::string::npos) throw std::runtime_error("samples/digits changed: no '" + from + "'");
    text.replace(at, from.size(), to);
  };
  replace("{{ pipeline.dir }}/../data", (source / "samples" / "data").string());
  text.resize(text.find("  - name: publish"));
  std::string train_fields = "    retries: " + retries + "\n";
  if (replicas > 1) train_fields += "    distributed: {replicas: " + std::to_string(replicas) + "}\n";
  replace("    retries: {limit: 2, on: [crash]}\n", train_fields);
  replace("      threads: \"{{ params.threads }}\"\n",
          "      threads: \"{{ params.threads }}\"\n      checkpoint_seconds: 0\n");
  const fs::path path = dir / ("digits-" + std::to_string(replicas) + ".yaml");
  write_text(path, text);
  return path;
}

struct Run {
  bool ok = false;
  std::string output;
  Json record;  // run.json
  fs::path dir;
};

// `kiln run PIPELINE --workdir W --param epochs=E [extra...]`, and the run it made.
inline Run run(const fs::path& pipeline, const fs::path& workdir, int epochs,
               const std::vector<std::pair<std::string, std::string>>& env = {},
               const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{
      "run", pipeline.string(), "--workdir", workdir.string(), "--param", "epochs=" + std::to_string(epochs)};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto ran = run_kiln(args, env, std::chrono::minutes(5));
  Run result;
  result.ok = ran.status.success();
  result.output = ran.output;
  std::error_code ec;
  for (auto it = fs::directory_iterator(workdir / "runs", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    result.dir = it->path();
    result.record = Json::parse(read_text(it->path() / "run.json"));
  }
  return result;
}

// "rank R of N: parameters digest HEX" from a rank's channel lines.
inline std::string digest_logged(const fs::path& channel) {
  static const std::regex pattern("rank [0-9]+ of [0-9]+: parameters digest ([0-9a-f]{16})");
  std::smatch match;
  const std::string text = read_text(channel);
  return std::regex_search(text, match, pattern) ? match[1].str() : "";
}

}  // namespace kiln::test::digits

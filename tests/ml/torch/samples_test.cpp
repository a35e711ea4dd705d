// The shipped samples through the real CLI: the digits pipeline trains the
// same model, to the same test accuracy, under the process and the container
// executors (the container's environment must not change a single float).
#include <gtest/gtest.h>

#include <kiln/host/subprocess.hpp>

#include <csignal>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using kiln::host::Json;
using kiln::test::TempDir;

namespace {

const std::string kDigits = std::string(KILN_TEST_SOURCE_DIR) + "/samples/digits/pipeline.yaml";

// The one run in `workdir`: its directory. Tests read its run.json rather
// than the --json summary in the captured output, where stderr (a
// sanitizer's note at exit, say) may land in the middle of it.
fs::path only_run(const fs::path& workdir) {
  fs::path found;
  for (const auto& entry : fs::directory_iterator(workdir / "runs")) found = entry.path();
  return found;
}

// Runs samples/digits with `executor` in a workspace of its own (more
// arguments in `extra`); the run record.
Json run_digits(const fs::path& workdir, const std::string& executor, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{"run", kDigits, "--workdir", workdir.string(), "--executor", executor, "--param",
                                "epochs=15", "--param", "model_repo=" + (workdir / "models").string()};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto run = kiln::test::run_kiln(args, {}, std::chrono::minutes(5));
  EXPECT_TRUE(run.status.success()) << run.output;
  for (const auto& entry : fs::directory_iterator(workdir / "runs"))
    return Json::parse(kiln::test::read_text(entry.path() / "run.json"));
  return Json::object();
}

}  // namespace

TEST(DigitsSample, TheContainerExecutorTrainsTheSameModelAsTheProcessExecutor) {
  const std::string why = kiln::test::cannot_run_containers();
  if (!why.empty()) KILN_TEST_SKIP("no containers: " << why);
  const TempDir process_dir, container_dir;
  const Json process = run_digits(process_dir.path(), "process");
  const Json container = run_digits(container_dir.path(), "container");
  ASSERT_EQ(process.value("status", ""), "succeeded");
  ASSERT_EQ(container.value("status", ""), "succeeded");
  EXPECT_EQ(container["steps"]["train"]["attempts"].back()["executor"], "container");
  const double accuracy = process["steps"]["evaluate"]["outputs"]["accuracy"];
  EXPECT_GT(accuracy, 0.9);  // 15 epochs: well trained, not yet the sample's full 0.97+
  EXPECT_EQ(container["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), accuracy);
  // Content-addressed: equal digests mean byte-identical weights.
  const auto digest = [](const Json& run) {
    return fs::path(run["steps"]["train"]["artifacts"]["model"].get<std::string>()).filename();
  };
  EXPECT_EQ(digest(container), digest(process));
  // The publish step ran in a process (it writes outside the store) and published version 1.
  EXPECT_EQ(container["steps"]["publish"]["attempts"].back()["executor"], "process");
  EXPECT_TRUE(fs::exists(container_dir.path() / "models" / "digits" / "1" / "model.json"));

  // The image `kiln image build` makes for the pipeline (kiln, the data and
  // torch plugins, LibTorch and every other library they load), its steps
  // run by the image's own kiln: the same weights again (docs/kubernetes.md).
  const TempDir image_dir;
  const std::string image = "oci:" + (image_dir.path() / "layout").string() + ":digits";
  const auto built = kiln::test::run_kiln({"image", "build", kDigits, "-o", image}, {}, std::chrono::minutes(10));
  ASSERT_TRUE(built.status.success()) << built.output;
  kiln::test::write_text(image_dir.path() / "kiln.yaml",
                         "apiVersion: kiln/v1\nkind: Workspace\nprofiles:\n  image:\n    container: {image: \"" +
                             image + "\"}\n");
  const Json imaged = run_digits(image_dir.path() / "w", "container",
                                 {"--config", (image_dir.path() / "kiln.yaml").string(), "--profile", "image"});
  ASSERT_EQ(imaged.value("status", ""), "succeeded") << imaged.dump(2);
  EXPECT_EQ(imaged["steps"]["train"]["attempts"].back()["image"], image);
  EXPECT_EQ(imaged["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), accuracy);
  EXPECT_EQ(digest(imaged), digest(process));
}

// samples/digits-tuning with a small budget (4 trials of 3 epochs): the tuning
// step's best parameters reach train, whose model is evaluated.
TEST(DigitsTuningSample, TunesTrainsTheBestAndEvaluates) {
  const TempDir dir;
  std::string text =
      kiln::test::read_text(fs::path(KILN_TEST_SOURCE_DIR) / "samples" / "digits-tuning" / "pipeline.yaml");
  const auto replace = [&text](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  replace("{{ pipeline.dir }}/..", std::string(KILN_TEST_SOURCE_DIR) + "/samples");  // the copy lives elsewhere
  replace("max_trials: 40", "max_trials: 6");
  replace("n_startup_trials: 10", "n_startup_trials: 3");  // TPE proposes the last three trials
  kiln::test::write_text(dir.path() / "pipeline.yaml", text);
  const auto run = kiln::test::run_kiln({"run", (dir.path() / "pipeline.yaml").string(), "--workdir",
                                         (dir.path() / "w").string(), "--param", "epochs=3", "--json"},
                                        {}, std::chrono::minutes(5));
  ASSERT_TRUE(run.status.success()) << run.output;
  const Json record = Json::parse(kiln::test::read_text(only_run(dir.path() / "w") / "run.json"));
  const Json& summary = record;
  const Json& tune = summary["steps"]["tune"]["outputs"];
  EXPECT_GT(tune["best_value"].get<double>(), 0.8) << tune.dump();
  EXPECT_EQ(record["steps"]["tune"]["units"].size(), 12u);  // 6 trials of train and evaluate
  // A trial that was not stopped evaluated its model on the validation split.
  int evaluated = 0;
  for (const auto& [key, unit] : record["steps"]["tune"]["units"].items())
    evaluated += key.find(".evaluate") != std::string::npos && unit.value("outputs", Json::object()).contains("accuracy");
  EXPECT_GT(evaluated, 0) << record["steps"]["tune"]["units"].dump();
  EXPECT_GT(summary["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), 0.8);
}

// samples/digits-tuning/pbt.yaml, 3 rounds of 2 epochs: population-based
// training on train.torch. Every trial after round 0 resumed a checkpoint
// (its curve starts after its donor's epochs), the worst member of each round
// continued the best one's, and the best model is sane on the test split.
TEST(DigitsTuningSample, PopulationBasedTrainingExploitsThroughTheCheckpoint) {
  const TempDir dir;
  std::string text = kiln::test::read_text(fs::path(KILN_TEST_SOURCE_DIR) / "samples" / "digits-tuning" / "pbt.yaml");
  const auto replace = [&text](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  replace("{{ pipeline.dir }}/..", std::string(KILN_TEST_SOURCE_DIR) + "/samples");
  replace("max_trials: 24", "max_trials: 12");
  kiln::test::write_text(dir.path() / "pipeline.yaml", text);
  const auto run = kiln::test::run_kiln({"run", (dir.path() / "pipeline.yaml").string(), "--workdir",
                                         (dir.path() / "w").string(), "--param", "interval=2", "--json"},
                                        {}, std::chrono::minutes(5));
  ASSERT_TRUE(run.status.success()) << run.output;
  const fs::path run_dir = only_run(dir.path() / "w");
  const Json record = Json::parse(kiln::test::read_text(run_dir / "run.json"));
  const Json& summary = record;
  const Json trials =
      Json::parse(kiln::test::read_text(run_dir / record["steps"]["tune"]["trials"].get<std::string>()))["trials"];
  ASSERT_EQ(trials.size(), 12u);
  int exploited = 0;
  for (const Json& row : trials) {
    ASSERT_EQ(row["status"], "succeeded") << row.dump();
    const int round = row["pbt"]["round"].get<int>();
    EXPECT_EQ(row["parameters"]["epochs"], 2 * (round + 1));
    ASSERT_EQ(row["curve"].size(), 2u) << row.dump();  // only its own round's epochs ran
    EXPECT_TRUE(row["curve"].contains(std::to_string(2 * round + 1))) << row.dump();
    if (row["pbt"]["exploited"].get<bool>()) {
      ++exploited;
      const Json& donor = trials[row["pbt"]["from"].get<size_t>()];
      EXPECT_NE(donor["pbt"]["member"], row["pbt"]["member"]);
      // The donor was the best of the last round, this member's own trial there the worst.
      const Json& own = trials[static_cast<size_t>(row["trial"].get<int>() - 4)];
      EXPECT_GE(donor["val_accuracy"].get<double>(), own["val_accuracy"].get<double>());
    }
  }
  EXPECT_EQ(exploited, 2);  // the worst of 4, in rounds 1 and 2
  EXPECT_GT(summary["steps"]["tune"]["outputs"]["best_value"].get<double>(), 0.85);
  EXPECT_GT(summary["steps"]["evaluate"]["outputs"]["accuracy"].get<double>(), 0.85);
}

// samples/digits-pytorch: a plain PyTorch script (a component file, Debian's
// python3-torch) trains on what kiln's data plugins wrote; the built-in
// evaluate step reads the kiln Model it wrote, and the TorchScript module
// beside it is the same network (same test accuracy, outside kiln).
TEST(DigitsPytorchSample, APyTorchScriptTrainsAndTheBuiltInEvaluateScoresItsModel) {
  constexpr const char* kPython = "/usr/bin/python3";  // Debian's, with python3-torch
  if (!fs::exists(kPython)) KILN_TEST_SKIP("no " << kPython);
  if (!kiln::host::run_with_result_channel({kPython, "-c", "import torch"}, std::chrono::minutes(1)).status.success())
    KILN_TEST_SKIP("no PyTorch for " << kPython << " (apt-get install python3-torch)");
  const TempDir dir;
  const std::string pipeline = std::string(KILN_TEST_SOURCE_DIR) + "/samples/digits-pytorch/pipeline.yaml";
  const auto run =
      kiln::test::run_kiln({"run", pipeline, "--workdir", (dir.path() / "w").string(), "--param", "epochs=5", "--param",
                            "model_repo=" + (dir.path() / "models").string(), "--json"},
                           {}, std::chrono::minutes(5));
  ASSERT_TRUE(run.status.success()) << run.output;
  const fs::path run_dir = only_run(dir.path() / "w");
  const Json record = Json::parse(kiln::test::read_text(run_dir / "run.json"));
  const Json& summary = record;
  const double accuracy = summary["steps"]["evaluate"]["outputs"]["accuracy"];
  EXPECT_GT(accuracy, 0.9) << summary["steps"].dump(2);  // 5 epochs: 0.950; 30 (the default): 0.964
  EXPECT_TRUE(summary["steps"]["evaluate"]["outputs"]["passed"].get<bool>());
  EXPECT_GT(summary["steps"]["train"]["outputs"]["val_accuracy"].get<double>(), 0.85);
  // Live metrics and progress from the script, one per epoch, in the run's event log.
  int losses = 0, progress = 0;
  std::istringstream events(kiln::test::read_text(run_dir / "events.jsonl"));
  for (std::string line; std::getline(events, line);) {
    const Json event = Json::parse(line);
    if (event.value("step", "") != "train") continue;
    losses += event.value("type", "") == "metric" && event.value("name", "") == "train_loss";
    progress += event.value("type", "") == "progress";
  }
  EXPECT_EQ(losses, 5);
  EXPECT_EQ(progress, 5);
  // The TorchScript module: the test rows' accuracy as evaluate found it.
  const fs::path model = record["steps"]["train"]["artifacts"]["model"].get<std::string>();
  const fs::path test = record["steps"]["transform"]["artifacts"]["test"].get<std::string>();
  EXPECT_TRUE(fs::exists(model / "transform" / "transform.json"));
  const auto scored =
      kiln::host::run_with_result_channel({kPython, "-c",
                                           "import json, struct, sys, numpy as np, torch\n"
                                           "raw = open(sys.argv[2] + '/data.safetensors', 'rb').read()\n"
                                           "n = struct.unpack('<Q', raw[:8])[0]; h = json.loads(raw[8:8 + n])\n"
                                           "def t(name, dtype):\n"
                                           "    lo, hi = h[name]['data_offsets']\n"
                                           "    return torch.from_numpy(np.frombuffer(raw[8 + n + lo:8 + n + hi], "
                                           "dtype=dtype).reshape(h[name]['shape']).copy())\n"
                                           "net = torch.jit.load(sys.argv[1] + '/model.pt')\n"
                                           "p = net(t('features', '<f4'))\n"
                                           "assert torch.allclose(p.sum(dim=1), torch.ones(len(p)), atol=1e-5)\n"
                                           "print((p.argmax(dim=1) == t('labels', '<i8')).double().mean().item())\n",
                                           model.string(), test.string()},
                                          std::chrono::minutes(2));
  ASSERT_TRUE(scored.status.success()) << scored.output;
  EXPECT_NEAR(std::stod(scored.output), accuracy, 1e-9) << scored.output;

  // Published, it serves: kiln serve on 127.0.0.1 answers the raw test rows
  // (before the transform, which the model applies) with evaluate's accuracy.
  ASSERT_TRUE(fs::exists(dir.path() / "models" / "digits-pytorch" / "1" / "model.json"));
  kiln::host::ChildProcess::Options serve;
  serve.argv = {kiln::test::kiln_exe().string(), "serve", "--model-repo", (dir.path() / "models").string(), "--port",
                "0", "--port-file", (dir.path() / "port").string(), "--access-log", "off"};
  serve.env = {{"KILN_CACHE_DIR", kiln::test::scan_cache().string()}};
  auto server = kiln::host::ChildProcess::spawn(serve);
  ASSERT_TRUE(kiln::test::poll_until([&] { return fs::exists(dir.path() / "port"); }, 6000)) << "kiln serve did not start";
  const fs::path raw_test = record["steps"]["split"]["artifacts"]["test"].get<std::string>();
  const auto served =
      kiln::host::run_with_result_channel({kPython, "-c",
                                           "import json, struct, sys, urllib.request, numpy as np\n"
                                           "raw = open(sys.argv[1] + '/data.safetensors', 'rb').read()\n"
                                           "n = struct.unpack('<Q', raw[:8])[0]; h = json.loads(raw[8:8 + n])\n"
                                           "def t(name, dtype):\n"
                                           "    lo, hi = h[name]['data_offsets']\n"
                                           "    return np.frombuffer(raw[8 + n + lo:8 + n + hi], dtype=dtype)"
                                           ".reshape(h[name]['shape'])\n"
                                           "x, y = t('features', '<f4'), t('labels', '<i8')\n"
                                           "body = {'inputs': [{'name': 'input', 'shape': list(x.shape), "
                                           "'datatype': 'FP32', 'data': x.flatten().tolist()}]}\n"
                                           "req = urllib.request.Request('http://127.0.0.1:' + sys.argv[2].strip() + "
                                           "'/v2/models/digits-pytorch/infer', json.dumps(body).encode(), "
                                           "{'Content-Type': 'application/json'})\n"
                                           "out = json.load(urllib.request.urlopen(req, timeout=60))['outputs'][0]\n"
                                           "assert out['name'] == 'probabilities', out['name']\n"
                                           "p = np.array(out['data']).reshape(out['shape'])\n"
                                           "print((p.argmax(axis=1) == y).mean())\n",
                                           raw_test.string(), kiln::test::read_text(dir.path() / "port")},
                                          std::chrono::minutes(2));
  ::kill(server.pid(), SIGTERM);
  EXPECT_TRUE(server.wait().success());
  ASSERT_TRUE(served.status.success()) << served.output;
  EXPECT_NEAR(std::stod(served.output), accuracy, 1e-9) << served.output;
}

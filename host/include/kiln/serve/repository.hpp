// The model repository of `kiln serve`: DIR/<model>/<version>/ directories,
// each loaded by a serving runtime (a plugin's KilnServingApi), polled for
// changes. A version that loads takes over atomically; versions leaving the
// policy are dropped from the table and unloaded once their last in-flight
// request finishes (shared ownership); a broken version is reported and never
// replaces a working one. Layout and config: docs/serving.md.
#pragma once

#include <kiln/plugin_api.h>
#include <kiln/host/json.hpp>
#include <kiln/serve/metrics.hpp>
#include <kiln/serve/tensor.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace kiln::serve {

// DIR/<model>/config.json (every field optional).
struct ModelConfig {
  std::string runtime = "serve.torch";
  std::string policy = "latest";  // latest | all | specific
  int64_t latest = 1;             // policy latest: how many versions
  std::set<int64_t> specific;     // policy specific: which versions
  int64_t max_batch_size = 1;     // > 1 turns on dynamic batching
  int64_t max_queue_delay_us = 500;
  int64_t max_queue_size = 1024;  // pending requests per version; more -> 503
  // Batches run by the I/O threads (ModelVersion::runs_on_caller): "auto"
  // (when they have been quick), "always" or "never".
  std::string io_thread_batches = "auto";
  host::Json raw = host::Json::object();  // handed to the runtime (with "threads" filled in)
};
// Throws std::runtime_error naming the file and the field.
ModelConfig parse_model_config(const std::string& text, const std::string& where);

struct InferRequest {
  std::vector<HostTensor> inputs;
  std::chrono::steady_clock::time_point deadline;
};

// What an inference produced: the outputs, or the failure (a ServeError with
// its status, or another exception: 500).
struct InferResult {
  std::vector<HostTensor> outputs;
  std::exception_ptr error;
};
using InferCallback = std::function<void(InferResult)>;

// One loaded version: the runtime's model, its metadata and its batcher.
class ModelVersion {
 public:
  ModelVersion(std::string model, int64_t version, const std::filesystem::path& dir, const KilnServingApi* api,
               const ModelConfig& config, Metrics* metrics);
  ~ModelVersion();
  ModelVersion(const ModelVersion&) = delete;
  ModelVersion& operator=(const ModelVersion&) = delete;

  const std::string& model() const { return model_; }
  int64_t version() const { return version_; }
  const host::Json& metadata() const { return metadata_; }  // {"platform", "inputs", "outputs", ...}
  // Checks the inputs against the metadata and throws ServeError at once (400;
  // 503 when the queue is full); otherwise `done` runs exactly once with the outputs or the
  // failure (ServeError 504 when the deadline passes in the queue, 500 ...).
  // It runs on the version's worker thread (the batcher; without batching it
  // takes one request per runtime call), so it must not block, and it must
  // not own this version (its last owner would join the worker from itself).
  void infer_async(InferRequest request, InferCallback done);
  size_t queue_depth() const;

  // The way around the worker for a fast batching model: an I/O thread
  // gathers the requests of one pass over its connections and runs them
  // itself as one batch, with no thread hand-off (two wake-ups per batch
  // otherwise). Allowed when the model batches with no queue delay to wait
  // for and its batches have been quick so far (a moving average under
  // 0.5 ms; config "io_thread_batches" can say "always" or "never"); the
  // first batches go through the worker, which measures them. Without
  // batching the worker stays: one runtime call per request on an I/O
  // thread would hold up its other connections for little gain. Calls run
  // this way are not counted against max_queue_size: an I/O thread holds at
  // most one request per connection.
  bool runs_on_caller() const;
  // Throws ServeError(400) when the inputs do not fit the metadata (what
  // infer_async checks before queueing).
  void check(const std::vector<HostTensor>& inputs) const;
  struct Call {
    InferRequest request;
    InferCallback done;
  };
  // Runs checked calls on this thread now, in batches of at most
  // max_batch_size rows; every `done` has run when this returns.
  void infer_now(std::vector<Call> calls);

 private:
  struct Pending;
  struct InputSpec {
    std::string name;
    KilnDataType datatype;
    std::string datatype_name;
    std::vector<int64_t> shape;  // -1: any size
  };
  std::vector<std::vector<HostTensor>> run_batch(const std::vector<const std::vector<HostTensor>*>& requests);
  void batch_loop();
  using Batch = std::vector<std::shared_ptr<Pending>>;
  std::shared_ptr<Pending> make_pending(InferRequest request, InferCallback done,
                                        std::chrono::steady_clock::time_point enqueued) const;
  Batch take_batch_locked();
  void run_pending(Batch batch, bool on_caller);
  void note_run_time(std::chrono::steady_clock::duration took);

  std::string model_;
  int64_t version_;
  const KilnServingApi* api_;
  KilnModel* handle_ = nullptr;
  host::Json metadata_;
  ModelConfig config_;
  Metrics* metrics_;
  bool batching_ = false;               // requests are concatenated; else one request per runtime call
  std::vector<InputSpec> input_specs_;  // from metadata_["inputs"]
  std::atomic<bool> fast_ = false;      // batches are quick: callers may run them (runs_on_caller)
  double average_run_us_ = -1;          // of batches, a moving average (under mutex_)

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Pending>> queue_;
  int64_t queued_rows_ = 0;  // rows in queue_
  bool stopping_ = false;
  std::thread batcher_;
};

class ModelRepository {
 public:
  // Finds the serving table of the runtime component called `name` (nullptr
  // when there is none).
  using RuntimeResolver = std::function<const KilnServingApi*(const std::string& name)>;

  struct Options {
    std::filesystem::path root;
    std::chrono::milliseconds poll_interval{1000};
    int64_t runtime_threads = 0;  // LibTorch intra-op threads when the config names none; 0 = all cores
  };

  ModelRepository(Options options, RuntimeResolver resolver, Metrics* metrics);
  ~ModelRepository();  // stops polling; unloads once in-flight requests finish
  ModelRepository(const ModelRepository&) = delete;
  ModelRepository& operator=(const ModelRepository&) = delete;

  // One scan: loads what the policies want, drops what they no longer want.
  void poll();
  // poll() now, then every poll_interval on a background thread.
  void start();
  void stop();

  // The version to serve: the newest loaded one, or `version` when given.
  // Throws ServeError 404 (unknown model or version) or 503 (not ready).
  std::shared_ptr<ModelVersion> find(const std::string& model, const std::string& version = "") const;
  // Whether the repository has a model of this name (ready or not).
  bool knows(const std::string& model) const;
  // Versions loaded now, ascending.
  std::vector<int64_t> versions(const std::string& model) const;
  bool all_ready() const;
  // Prometheus gauges: models and versions loaded, queue depths.
  std::string gauges() const;

 private:
  struct Entry {
    std::map<int64_t, std::shared_ptr<ModelVersion>> loaded;
    std::map<int64_t, std::string> broken;  // version -> why it failed to load
    std::set<int64_t> on_disk;
    std::string problem;  // why the model cannot be served, when it cannot
  };
  void poll_model(const std::string& name, const std::filesystem::path& dir);

  Options options_;
  RuntimeResolver resolver_;
  Metrics* metrics_;
  std::mutex poll_mutex_;  // one poll at a time
  mutable std::mutex mutex_;
  std::map<std::string, Entry> models_;
  std::condition_variable stop_wake_;
  bool stopping_ = false;
  std::thread poller_;
};

}  // namespace kiln::serve

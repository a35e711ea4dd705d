#include <kiln/host/error.hpp>
#include <kiln/host/files.hpp>
#include <kiln/host/step_context.hpp>
#include <kiln/serve/repository.hpp>
#include <kiln/serving.hpp>

#include "json_text.hpp"

#include <algorithm>
#include <cstring>
#include <iostream>
#include <thread>

namespace kiln::serve {

namespace fs = std::filesystem;
using host::Json;
using Clock = std::chrono::steady_clock;

namespace {

int status_of(KilnErrorCode code) {
  switch (code) {
    case KILN_ERROR_INVALID_ARGUMENT:
    case KILN_ERROR_TYPE_MISMATCH:
    case KILN_ERROR_UNSUPPORTED:
      return 400;
    default:
      return 500;
  }
}

bool numeric_name(const std::string& s) {
  return !s.empty() && s.size() < 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void log_line(const std::string& line) {
  std::cerr << "kiln serve: " + line + "\n" << std::flush;
}

int64_t positive(const Json& j, const char* key, int64_t fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0)
    throw std::runtime_error(where + ": \"" + key + "\" must be a non-negative integer");
  return j[key].get<int64_t>();
}

}  // namespace

ModelConfig parse_model_config(const std::string& text, const std::string& where) {
  ModelConfig c;
  try {
    c.raw = Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw std::runtime_error(where + ": not valid JSON: " + e.what());
  }
  if (!c.raw.is_object()) throw std::runtime_error(where + ": must be a JSON object");
  if (c.raw.contains("runtime")) c.runtime = c.raw["runtime"].get<std::string>();
  c.max_batch_size = std::max<int64_t>(1, positive(c.raw, "max_batch_size", 1, where));
  c.max_queue_delay_us = positive(c.raw, "max_queue_delay_us", c.max_queue_delay_us, where);
  c.max_queue_size = std::max<int64_t>(1, positive(c.raw, "max_queue_size", c.max_queue_size, where));
  if (c.raw.contains("io_thread_batches")) {
    const Json& mode = c.raw["io_thread_batches"];
    if (!mode.is_string() || (mode != "auto" && mode != "always" && mode != "never"))
      throw std::runtime_error(where + ": \"io_thread_batches\" must be \"auto\", \"always\" or \"never\"");
    c.io_thread_batches = mode.get<std::string>();
  }
  if (c.raw.contains("version_policy")) {
    const Json& p = c.raw["version_policy"];
    if (p.is_object() && p.contains("latest")) {
      c.policy = "latest";
      c.latest = std::max<int64_t>(1, positive(p["latest"], "num_versions", 1, where + ": version_policy.latest"));
    } else if (p.is_object() && p.contains("all")) {
      c.policy = "all";
    } else if (p.is_object() && p.contains("specific") && p["specific"].contains("versions") &&
               p["specific"]["versions"].is_array()) {
      c.policy = "specific";
      for (const auto& v : p["specific"]["versions"]) c.specific.insert(v.get<int64_t>());
    } else {
      throw std::runtime_error(where +
                               ": version_policy must be {\"latest\": {\"num_versions\": N}}, {\"all\": {}} or "
                               "{\"specific\": {\"versions\": [...]}}");
    }
  }
  return c;
}

// ---------------------------------------------------------------- versions

struct ModelVersion::Pending {
  std::vector<HostTensor> inputs;
  int64_t rows = 0;
  Clock::time_point enqueued;
  Clock::time_point deadline;
  InferCallback done;
};

ModelVersion::ModelVersion(std::string model, int64_t version, const fs::path& dir, const KilnServingApi* api,
                           const ModelConfig& config, Metrics* metrics)
    : model_(std::move(model)), version_(version), api_(api), config_(config), metrics_(metrics) {
  const std::string config_text = config.raw.dump();
  host::ErrorPtr error(api_->load(host::host_api(), dir.c_str(), config_text.c_str(), &handle_));
  if (error) throw std::runtime_error(error->message);
  const char* text = nullptr;
  error.reset(api_->metadata(handle_, &text));
  try {
    if (error) throw std::runtime_error(error->message);
    metadata_ = Json::parse(text != nullptr ? text : "");
    if (!metadata_.contains("inputs") || !metadata_.contains("outputs"))
      throw std::runtime_error("the runtime's metadata has no inputs/outputs");
    if (!metadata_.contains("platform")) metadata_["platform"] = config.runtime;
  } catch (const std::exception& e) {
    api_->unload(handle_);
    throw std::runtime_error(std::string("metadata: ") + e.what());
  }
  // Batching concatenates rows: every input must be [-1, fixed...].
  batching_ = config.max_batch_size > 1;
  for (const auto& input : metadata_["inputs"]) {
    InputSpec spec{input["name"].get<std::string>(), 0, input["datatype"].get<std::string>(),
                   input["shape"].get<std::vector<int64_t>>()};
    spec.datatype = datatype_from_name(spec.datatype_name);
    const auto& shape = spec.shape;
    if (shape.empty() || shape[0] != -1 || std::count(shape.begin(), shape.end(), -1) != 1) batching_ = false;
    input_specs_.push_back(std::move(spec));
  }
  // Every version has a worker, batching or not: an I/O thread only queues,
  // and never waits for a model (or for another thread's call into it).
  batcher_ = std::thread([this] { batch_loop(); });
}

ModelVersion::~ModelVersion() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (batcher_.joinable()) batcher_.join();
  api_->unload(handle_);
}

size_t ModelVersion::queue_depth() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void ModelVersion::check(const std::vector<HostTensor>& inputs) const {
  for (const auto& t : inputs) {
    const auto it =
        std::find_if(input_specs_.begin(), input_specs_.end(), [&](const InputSpec& d) { return d.name == t.name; });
    if (it == input_specs_.end())
      throw ServeError(400, "model '" + model_ + "' has no input '" + excerpt_text(t.name) + "'");
    if (t.datatype != it->datatype)
      throw ServeError(400,
                       "input '" + t.name + "' must be " + it->datatype_name + ", not " + datatype_name(t.datatype));
    const auto& want = it->shape;
    bool ok = want.size() == t.shape.size();
    for (size_t i = 0; ok && i < want.size(); ++i) ok = want[i] == -1 || want[i] == t.shape[i];
    if (!ok || (batching_ && t.shape[0] == 0))
      throw ServeError(400, "input '" + t.name + "' has shape " + json_excerpt(Json(t.shape)) + ", the model expects " +
                                Json(want).dump() + " (-1: any size)");
  }
  for (const auto& d : input_specs_)
    if (std::none_of(inputs.begin(), inputs.end(), [&](const HostTensor& t) { return t.name == d.name; }))
      throw ServeError(400, "input '" + d.name + "' is missing");
  if (batching_)
    for (const auto& t : inputs)
      if (t.shape[0] != inputs[0].shape[0]) throw ServeError(400, "inputs differ in their first (batch) dimension");
}

std::vector<std::vector<HostTensor>> ModelVersion::run_batch(
    const std::vector<const std::vector<HostTensor>*>& requests) {
  // Concatenate each input along the first dimension (one request: as is).
  std::vector<HostTensor> merged;
  std::vector<int64_t> rows;
  for (const auto* request : requests) rows.push_back(request->empty() ? 0 : (*request)[0].shape[0]);
  if (requests.size() == 1) {
    merged = *requests[0];
  } else {
    for (const auto& d : input_specs_) {
      const auto& name = d.name;
      HostTensor m;
      for (const auto* request : requests) {
        const auto& t =
            *std::find_if(request->begin(), request->end(), [&](const HostTensor& x) { return x.name == name; });
        if (m.shape.empty()) {
          m.name = t.name;
          m.datatype = t.datatype;
          m.shape = t.shape;
          m.shape[0] = 0;
        }
        m.shape[0] += t.shape[0];
        m.bytes.insert(m.bytes.end(), t.bytes.begin(), t.bytes.end());
      }
      merged.push_back(std::move(m));
    }
  }
  std::vector<KilnTensor> views;
  for (const auto& t : merged) views.push_back(t.view());
  const KilnTensor* outputs = nullptr;
  uint32_t count = 0;
  const host::ErrorPtr error(api_->infer(handle_, views.data(), static_cast<uint32_t>(views.size()), &outputs, &count));
  if (error) throw ServeError(status_of(error->code), error->message);
  std::vector<HostTensor> copies;
  try {
    for (uint32_t i = 0; i < count; ++i) copies.push_back(copy_tensor(outputs[i]));
  } catch (...) {
    api_->release_outputs(handle_, outputs, count);
    throw;
  }
  api_->release_outputs(handle_, outputs, count);
  if (requests.size() == 1) return {std::move(copies)};
  // Split every output back by rows.
  int64_t total = 0;
  for (const auto r : rows) total += r;
  std::vector<std::vector<HostTensor>> out(requests.size());
  for (const auto& o : copies) {
    if (o.shape.empty() || o.shape[0] != total)
      throw ServeError(500, "output '" + o.name + "' does not have one row per input row; set max_batch_size 1");
    const size_t row_bytes = total > 0 ? o.bytes.size() / static_cast<size_t>(total) : 0;
    size_t offset = 0;
    for (size_t r = 0; r < requests.size(); ++r) {
      HostTensor part{o.name, o.datatype, o.shape, {}};
      part.shape[0] = rows[r];
      const size_t n = row_bytes * static_cast<size_t>(rows[r]);
      part.bytes.assign(o.bytes.begin() + static_cast<std::ptrdiff_t>(offset),
                        o.bytes.begin() + static_cast<std::ptrdiff_t>(offset + n));
      offset += n;
      out[r].push_back(std::move(part));
    }
  }
  return out;
}

std::shared_ptr<ModelVersion::Pending> ModelVersion::make_pending(InferRequest request, InferCallback done,
                                                                  Clock::time_point enqueued) const {
  auto pending = std::make_shared<Pending>();
  pending->rows = batching_ ? request.inputs[0].shape[0] : 1;
  pending->inputs = std::move(request.inputs);
  pending->enqueued = enqueued;
  pending->deadline = request.deadline;
  pending->done = std::move(done);
  return pending;
}

void ModelVersion::infer_async(InferRequest request, InferCallback done) {
  check(request.inputs);
  auto pending = make_pending(std::move(request), std::move(done), Clock::now());
  bool wake = false;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<int64_t>(queue_.size()) >= config_.max_queue_size)
      throw ServeError(503, "model '" + model_ + "' is overloaded: its queue of " +
                                std::to_string(config_.max_queue_size) + " requests is full");
    // The batcher needs waking only for a first request (it starts the
    // delay) or a full batch; otherwise it sleeps until the delay ends. A
    // wake per request was a context switch per request.
    const int64_t before = queued_rows_;
    queued_rows_ += pending->rows;
    const int64_t batch_rows = batching_ ? config_.max_batch_size : 1;
    wake = queue_.empty() || (before < batch_rows && queued_rows_ >= batch_rows);
    queue_.push_back(std::move(pending));
  }
  if (wake) wake_.notify_one();
}

void ModelVersion::batch_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto delay = std::chrono::microseconds(batching_ ? config_.max_queue_delay_us : 0);
  const int64_t batch_rows = batching_ ? config_.max_batch_size : 1;
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    const auto until = queue_.front()->enqueued + delay;
    wake_.wait_until(lock, until, [&] { return stopping_ || queued_rows_ >= batch_rows; });
    Batch batch = take_batch_locked();
    lock.unlock();
    run_pending(std::move(batch), false);
    lock.lock();
  }
}

// Up to a batch's rows from the queue's front (at least one request).
ModelVersion::Batch ModelVersion::take_batch_locked() {
  const int64_t batch_rows = batching_ ? config_.max_batch_size : 1;
  Batch batch;
  int64_t rows = 0;
  while (!queue_.empty() && (batch.empty() || rows + queue_.front()->rows <= batch_rows)) {
    rows += queue_.front()->rows;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  queued_rows_ -= rows;
  return batch;
}

bool ModelVersion::runs_on_caller() const {
  if (!batching_ || config_.max_queue_delay_us != 0 || config_.io_thread_batches == "never") return false;
  return config_.io_thread_batches == "always" || fast_.load(std::memory_order_relaxed);
}

void ModelVersion::infer_now(std::vector<Call> calls) {
  const int64_t batch_rows = batching_ ? config_.max_batch_size : 1;
  const auto now = Clock::now();
  Batch batch;
  int64_t rows = 0;
  for (auto& call : calls) {
    auto pending = make_pending(std::move(call.request), std::move(call.done), now);
    if (!batch.empty() && rows + pending->rows > batch_rows) {
      run_pending(std::move(batch), true);
      batch.clear();
      rows = 0;
    }
    rows += pending->rows;
    batch.push_back(std::move(pending));
  }
  if (!batch.empty()) run_pending(std::move(batch), true);
}

// Whether callers may run batches: only while they are quick, since an I/O
// thread's other connections wait meanwhile.
void ModelVersion::note_run_time(Clock::duration took) {
  constexpr double kCallerBudgetUs = 500;
  const std::lock_guard<std::mutex> lock(mutex_);
  const double us = std::chrono::duration<double, std::micro>(took).count();
  average_run_us_ = average_run_us_ < 0 ? us : 0.9 * average_run_us_ + 0.1 * us;
  fast_.store(average_run_us_ < kCallerBudgetUs, std::memory_order_relaxed);
}

void ModelVersion::run_pending(Batch batch, bool on_caller) {
  const auto started = Clock::now();
  // Requests whose deadline passed while queued are answered, not run.
  const auto expired = std::stable_partition(batch.begin(), batch.end(),
                                             [&](const std::shared_ptr<Pending>& p) { return p->deadline > started; });
  for (auto it = expired; it != batch.end(); ++it)
    (*it)->done(InferResult{
        {}, std::make_exception_ptr(ServeError(504, "the request timed out waiting for model '" + model_ + "'"))});
  batch.erase(expired, batch.end());
  if (batch.empty()) return;
  std::vector<const std::vector<HostTensor>*> inputs;
  std::vector<double> queued;  // seconds
  int64_t rows = 0;
  for (const auto& p : batch) {
    inputs.push_back(&p->inputs);
    queued.push_back(std::chrono::duration<double>(started - p->enqueued).count());
    rows += p->inputs.empty() || p->inputs[0].shape.empty() ? 1 : p->inputs[0].shape[0];
  }
  if (metrics_ != nullptr) metrics_->observe_batch(model_, rows, queued, on_caller);
  std::vector<std::vector<HostTensor>> results;
  std::exception_ptr error;
  const auto run_started = Clock::now();  // not `started`: answering expired requests is not the model's time
  try {
    results = run_batch(inputs);
  } catch (...) {
    error = std::current_exception();
  }
  note_run_time(Clock::now() - run_started);
  for (size_t i = 0; i < batch.size(); ++i)
    batch[i]->done(error ? InferResult{{}, error} : InferResult{std::move(results[i]), nullptr});
}

// -------------------------------------------------------------- repository

ModelRepository::ModelRepository(Options options, RuntimeResolver resolver, Metrics* metrics)
    : options_(std::move(options)), resolver_(std::move(resolver)), metrics_(metrics) {}

ModelRepository::~ModelRepository() {
  stop();
}

void ModelRepository::start() {
  poll();
  poller_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      if (stop_wake_.wait_for(lock, options_.poll_interval, [&] { return stopping_; })) break;
      lock.unlock();
      try {
        poll();
      } catch (const std::exception& e) {
        log_line(std::string("polling the repository failed: ") + e.what());
      }
      lock.lock();
    }
  });
}

void ModelRepository::stop() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_wake_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void ModelRepository::poll() {
  const std::lock_guard<std::mutex> poll_lock(poll_mutex_);
  std::set<std::string> present;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(options_.root, ec)) {
    const auto name = item.path().filename().string();
    if (!item.is_directory() || name.empty() || name[0] == '.') continue;
    present.insert(name);
    poll_model(name, item.path());
  }
  if (ec) log_line("cannot read the model repository " + options_.root.string() + ": " + ec.message());
  std::vector<std::shared_ptr<ModelVersion>> dropped;  // unloaded outside the lock
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = models_.begin(); it != models_.end();) {
      if (present.count(it->first) == 0) {
        for (auto& [v, m] : it->second.loaded) dropped.push_back(std::move(m));
        log_line("model '" + it->first + "' removed");
        it = models_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void ModelRepository::poll_model(const std::string& name, const fs::path& dir) {
  Entry current;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    current = models_[name];
  }
  Entry next;
  next.broken = current.broken;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const auto v = item.path().filename().string();
    if (item.is_directory() && numeric_name(v) && std::stoll(v) > 0) next.on_disk.insert(std::stoll(v));
  }
  for (auto it = next.broken.begin(); it != next.broken.end();)  // a removed broken version is forgotten
    it = next.on_disk.count(it->first) ? std::next(it) : next.broken.erase(it);
  ModelConfig config;
  try {
    const auto config_path = dir / "config.json";
    if (fs::exists(config_path)) config = parse_model_config(host::read_file(config_path), config_path.string());
    if (!config.raw.contains("threads") && options_.runtime_threads > 0)
      config.raw["threads"] = options_.runtime_threads;
  } catch (const std::exception& e) {
    next.problem = e.what();
    next.loaded = current.loaded;  // keep serving what works
    if (current.problem != next.problem) log_line("model '" + name + "': " + next.problem);
    const std::lock_guard<std::mutex> lock(mutex_);
    models_[name] = std::move(next);
    return;
  }
  const KilnServingApi* api = resolver_(config.runtime);
  // Choose, load what is missing; a version that fails is marked broken and
  // the choice is made again without it (so "latest 1" falls back).
  for (;;) {
    std::vector<int64_t> candidates;
    for (const auto v : next.on_disk)
      if (next.broken.count(v) == 0) candidates.push_back(v);
    std::set<int64_t> wanted;
    if (config.policy == "all") {
      wanted.insert(candidates.begin(), candidates.end());
    } else if (config.policy == "specific") {
      for (const auto v : candidates)
        if (config.specific.count(v)) wanted.insert(v);
    } else {
      for (auto it = candidates.rbegin();
           it != candidates.rend() && static_cast<int64_t>(wanted.size()) < config.latest; ++it)
        wanted.insert(*it);
    }
    bool failed = false;
    for (const auto v : wanted) {
      if (next.loaded.count(v)) continue;
      if (current.loaded.count(v)) {
        next.loaded[v] = current.loaded[v];
        continue;
      }
      const std::string label = "model '" + name + "' version " + std::to_string(v);
      try {
        if (api == nullptr) throw std::runtime_error("no serving runtime called '" + config.runtime + "' is installed");
        next.loaded[v] = std::make_shared<ModelVersion>(name, v, dir / std::to_string(v), api, config, metrics_);
        log_line(label + " loaded");
      } catch (const std::exception& e) {
        next.broken[v] = e.what();
        if (metrics_ != nullptr) metrics_->count_load_failure(name, std::to_string(v));
        log_line(label + " failed to load: " + e.what());
        failed = true;
      }
    }
    for (auto it = next.loaded.begin(); it != next.loaded.end();)
      it = wanted.count(it->first) ? std::next(it) : next.loaded.erase(it);
    if (!failed) break;
  }
  if (next.loaded.empty()) {
    next.problem = next.on_disk.empty() ? "it has no version directories"
                                        : "no version could be loaded: " + next.broken.rbegin()->second;
    if (next.broken.empty() && !next.on_disk.empty()) next.problem = "no version is wanted by its version policy";
  }
  std::vector<std::shared_ptr<ModelVersion>> dropped;  // unloaded after the swap, once idle
  for (const auto& [v, m] : current.loaded)
    if (next.loaded.count(v) == 0) {
      dropped.push_back(m);
      log_line("model '" + name + "' version " + std::to_string(v) + " retired (unloads when its requests finish)");
    }
  current = Entry{};
  const std::lock_guard<std::mutex> lock(mutex_);
  models_[name] = std::move(next);
}

std::shared_ptr<ModelVersion> ModelRepository::find(const std::string& model, const std::string& version) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = models_.find(model);
  if (it == models_.end()) throw ServeError(404, "unknown model '" + model + "'");
  const Entry& e = it->second;
  if (version.empty()) {
    if (e.loaded.empty()) throw ServeError(503, "model '" + model + "' is not ready: " + e.problem);
    return e.loaded.rbegin()->second;
  }
  if (!numeric_name(version)) throw ServeError(404, "model '" + model + "' has no version '" + version + "'");
  const int64_t v = std::stoll(version);
  const auto loaded = e.loaded.find(v);
  if (loaded != e.loaded.end()) return loaded->second;
  const auto broken = e.broken.find(v);
  if (broken != e.broken.end())
    throw ServeError(503, "model '" + model + "' version " + version + " is not ready: " + broken->second);
  throw ServeError(404, "model '" + model + "' has no version '" + version + "' being served");
}

bool ModelRepository::knows(const std::string& model) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return models_.count(model) != 0;
}

std::vector<int64_t> ModelRepository::versions(const std::string& model) const {
  const std::lock_guard<std::mutex> lock(mutex_);
  std::vector<int64_t> out;
  const auto it = models_.find(model);
  if (it != models_.end())
    for (const auto& [v, m] : it->second.loaded) out.push_back(v);
  return out;
}

bool ModelRepository::all_ready() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return std::all_of(models_.begin(), models_.end(), [](const auto& m) { return !m.second.loaded.empty(); });
}

std::string ModelRepository::gauges() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  std::string out =
      "# HELP kiln_serve_model_versions_loaded versions loaded per model\n# TYPE kiln_serve_model_versions_loaded "
      "gauge\n";
  std::string queues =
      "# HELP kiln_serve_queue_depth requests waiting for a batch\n# TYPE kiln_serve_queue_depth gauge\n";
  size_t ready = 0;
  for (const auto& [name, e] : models_) {
    out += "kiln_serve_model_versions_loaded{" + prometheus_label("model", name) + "} " +
           std::to_string(e.loaded.size()) + "\n";
    if (!e.loaded.empty()) ++ready;
    for (const auto& [v, m] : e.loaded)
      queues += "kiln_serve_queue_depth{" + prometheus_label("model", name) + "," +
                prometheus_label("version", std::to_string(v)) + "} " + std::to_string(m->queue_depth()) + "\n";
  }
  out +=
      "# HELP kiln_serve_models_loaded models with at least one version loaded\n# TYPE kiln_serve_models_loaded "
      "gauge\nkiln_serve_models_loaded " +
      std::to_string(ready) + "\n";
  return out + queues;
}

}  // namespace kiln::serve

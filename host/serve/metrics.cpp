#include <kiln/serve/metrics.hpp>

#include <sstream>

namespace kiln::serve {
namespace {

const std::vector<double> kLatencyBuckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
const std::vector<double> kBatchBuckets{1, 2, 4, 8, 16, 32, 64, 128, 256};

std::string model_label(const std::string& model) {
  return prometheus_label("model", model);
}

template <class Family>
void render_histogram(std::ostringstream& out, const std::string& name, const std::string& help,
                      const std::vector<double>& bounds, const Family& family) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  for (const auto& [model, h] : family) {
    const std::string labels = model_label(model);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += h.counts[i];
      out << name << "_bucket{" << labels << ",le=\"" << bounds[i] << "\"} " << cumulative << "\n";
    }
    out << name << "_bucket{" << labels << ",le=\"+Inf\"} " << h.count << "\n";
    out << name << "_sum{" << labels << "} " << h.sum << "\n" << name << "_count{" << labels << "} " << h.count << "\n";
  }
}

// `family` maps label sets (as `labels_of` renders them) to values.
template <class Family, class Labels>
void render_counter(std::ostringstream& out, const std::string& name, const std::string& help, const Family& family,
                    Labels labels_of) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n";
  for (const auto& [key, value] : family) out << name << "{" << labels_of(key) << "} " << value << "\n";
}

}  // namespace

std::string prometheus_label(const std::string& name, const std::string& value) {
  std::string escaped;
  for (const char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return name + "=\"" + escaped + "\"";
}

namespace {

// The entry of `key` in `family`, or of `overflow` when `key` is new and
// the family already holds `max_series` label sets; a new entry is `make()`.
template <class Family, class Key, class Make>
auto series(Family& family, const Key& key, const Key& overflow, size_t max_series, Make make) {
  auto it = family.find(key);
  if (it != family.end()) return it;
  const Key& chosen = family.size() >= max_series ? overflow : key;
  it = family.find(chosen);
  return it != family.end() ? it : family.emplace(chosen, make()).first;
}

uint64_t zero() {
  return 0;
}

}  // namespace

void Metrics::observe(ByModel& family, const std::vector<double>& bounds, const std::string& model,
                      double value) const {
  const auto it = series(family, model, std::string(kOtherModel), max_series_,
                         [&] { return Histogram{std::vector<uint64_t>(bounds.size(), 0), 0, 0}; });
  auto& h = it->second;
  for (size_t i = 0; i < bounds.size(); ++i)
    if (value <= bounds[i]) {
      ++h.counts[i];
      break;
    }
  h.sum += value;
  ++h.count;
}

void Metrics::count_request_locked(const std::string& model, const std::string& version, int status) {
  const auto it = requests_.find(std::tie(model, version, status));  // no key built on the common path
  if (it != requests_.end()) {
    ++it->second;
    return;
  }
  ++series(requests_, RequestKey{model, version, status}, RequestKey{kOtherModel, "", status}, max_series_, zero)
        ->second;
}

void Metrics::count_request(const std::string& model, const std::string& version, int status) {
  const std::lock_guard<std::mutex> lock(mutex_);
  count_request_locked(model, version, status);
}

void Metrics::observe_request(const std::string& model, const std::string& version, int status, double seconds) {
  const std::lock_guard<std::mutex> lock(mutex_);
  count_request_locked(model, version, status);
  observe(latency_, kLatencyBuckets, model, seconds);
}

void Metrics::observe_batch(const std::string& model, int64_t rows, const std::vector<double>& queue_seconds,
                            bool on_io_thread) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = batches_.find(std::tie(model, on_io_thread));
  if (it != batches_.end())
    ++it->second;
  else
    ++series(batches_, std::tuple<std::string, bool>(model, on_io_thread),
             std::tuple<std::string, bool>(kOtherModel, on_io_thread), max_series_, zero)
          ->second;
  observe(batch_, kBatchBuckets, model, static_cast<double>(rows));
  for (const double seconds : queue_seconds) observe(queue_, kLatencyBuckets, model, seconds);
}

void Metrics::count_load_failure(const std::string& model, const std::string& version) {
  const std::lock_guard<std::mutex> lock(mutex_);
  ++series(load_failures_, std::pair<std::string, std::string>(model, version),
           std::pair<std::string, std::string>(kOtherModel, ""), max_series_, zero)
        ->second;
}

std::string Metrics::render(const std::string& extra) const {
  std::ostringstream out;
  const std::lock_guard<std::mutex> lock(mutex_);
  render_counter(out, "kiln_serve_requests_total", "HTTP requests by model, version and status", requests_,
                 [](const RequestKey& k) {
                   return model_label(std::get<0>(k)) + "," + prometheus_label("version", std::get<1>(k)) + "," +
                          prometheus_label("status", std::to_string(std::get<2>(k)));
                 });
  render_histogram(out, "kiln_serve_request_duration_seconds", "time from request to response", kLatencyBuckets,
                   latency_);
  render_histogram(out, "kiln_serve_batch_size", "rows per runtime call", kBatchBuckets, batch_);
  render_histogram(out, "kiln_serve_queue_seconds", "time a request waited for its batch", kLatencyBuckets, queue_);
  render_counter(out, "kiln_serve_batches_total", "runtime calls by who ran them (an I/O thread or the worker)",
                 batches_, [](const std::tuple<std::string, bool>& k) {
                   return model_label(std::get<0>(k)) + "," +
                          prometheus_label("runner", std::get<1>(k) ? "io_thread" : "worker");
                 });
  render_counter(out, "kiln_serve_model_load_failures_total", "versions that failed to load", load_failures_,
                 [](const std::pair<std::string, std::string>& k) {
                   return model_label(k.first) + "," + prometheus_label("version", k.second);
                 });
  out << extra;
  return out.str();
}

}  // namespace kiln::serve

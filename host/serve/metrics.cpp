#include <kiln/serve/metrics.hpp>

#include <sstream>

namespace kiln::serve {
namespace {

const std::vector<double> kLatencyBuckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
const std::vector<double> kBatchBuckets{1, 2, 4, 8, 16, 32, 64, 128, 256};

template <class Histogram>
void render_histogram(std::ostringstream& out, const std::string& name, const std::string& help,
                      const std::vector<double>& bounds, const std::map<std::string, Histogram>& family) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  for (const auto& [labels, h] : family) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += h.counts[i];
      out << name << "_bucket{" << labels << ",le=\"" << bounds[i] << "\"} " << cumulative << "\n";
    }
    out << name << "_bucket{" << labels << ",le=\"+Inf\"} " << h.count << "\n";
    out << name << "_sum{" << labels << "} " << h.sum << "\n" << name << "_count{" << labels << "} " << h.count << "\n";
  }
}

void render_counter(std::ostringstream& out, const std::string& name, const std::string& help,
                    const std::map<std::string, uint64_t>& family) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n";
  for (const auto& [labels, value] : family) out << name << "{" << labels << "} " << value << "\n";
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

void Metrics::observe(std::map<std::string, Histogram>& family, const std::vector<double>& bounds,
                      const std::string& labels, double value) {
  auto& h = family[labels];
  if (h.counts.empty()) h.counts.assign(bounds.size(), 0);
  for (size_t i = 0; i < bounds.size(); ++i)
    if (value <= bounds[i]) {
      ++h.counts[i];
      break;
    }
  h.sum += value;
  ++h.count;
}

void Metrics::count_request(const std::string& model, const std::string& version, int status) {
  const std::string labels = prometheus_label("model", model) + "," + prometheus_label("version", version) + "," +
                             prometheus_label("status", std::to_string(status));
  const std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[labels];
}

void Metrics::observe_latency(const std::string& model, double seconds) {
  const std::lock_guard<std::mutex> lock(mutex_);
  observe(latency_, kLatencyBuckets, prometheus_label("model", model), seconds);
}

void Metrics::observe_batch(const std::string& model, int64_t rows) {
  const std::lock_guard<std::mutex> lock(mutex_);
  observe(batch_, kBatchBuckets, prometheus_label("model", model), static_cast<double>(rows));
}

void Metrics::observe_queue(const std::string& model, double seconds) {
  const std::lock_guard<std::mutex> lock(mutex_);
  observe(queue_, kLatencyBuckets, prometheus_label("model", model), seconds);
}

void Metrics::count_load_failure(const std::string& model, const std::string& version) {
  const std::lock_guard<std::mutex> lock(mutex_);
  ++load_failures_[prometheus_label("model", model) + "," + prometheus_label("version", version)];
}

std::string Metrics::render(const std::string& extra) const {
  std::ostringstream out;
  const std::lock_guard<std::mutex> lock(mutex_);
  render_counter(out, "kiln_serve_requests_total", "HTTP requests by model, version and status", requests_);
  render_histogram(out, "kiln_serve_request_duration_seconds", "time from request to response", kLatencyBuckets,
                   latency_);
  render_histogram(out, "kiln_serve_batch_size", "rows per runtime call", kBatchBuckets, batch_);
  render_histogram(out, "kiln_serve_queue_seconds", "time a request waited for its batch", kLatencyBuckets, queue_);
  render_counter(out, "kiln_serve_model_load_failures_total", "versions that failed to load", load_failures_);
  out << extra;
  return out.str();
}

}  // namespace kiln::serve

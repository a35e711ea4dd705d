// Prometheus metrics of `kiln serve`: counters and histograms by label set,
// rendered in the text exposition format at /metrics. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kiln::serve {

class Metrics {
 public:
  // kiln_serve_requests_total{model, version, status}
  void count_request(const std::string& model, const std::string& version, int status);
  // kiln_serve_request_duration_seconds{model}
  void observe_latency(const std::string& model, double seconds);
  // kiln_serve_batch_size{model} and kiln_serve_queue_seconds{model}
  void observe_batch(const std::string& model, int64_t rows);
  void observe_queue(const std::string& model, double seconds);
  // kiln_serve_model_load_failures_total{model, version}
  void count_load_failure(const std::string& model, const std::string& version);

  // The exposition text; `extra` (gauges computed by the caller) is appended.
  std::string render(const std::string& extra) const;

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket, not cumulative
    double sum = 0;
    uint64_t count = 0;
  };
  void observe(std::map<std::string, Histogram>& family, const std::vector<double>& bounds, const std::string& labels,
               double value);

  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> requests_, load_failures_;
  std::map<std::string, Histogram> latency_, batch_, queue_;
};

// `name="value"` with Prometheus escaping.
std::string prometheus_label(const std::string& name, const std::string& value);

}  // namespace kiln::serve

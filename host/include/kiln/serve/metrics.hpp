// Prometheus metrics of `kiln serve`: counters and histograms by label set,
// rendered in the text exposition format at /metrics. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace kiln::serve {

class Metrics {
 public:
  // Label sets a family may hold: past it, new ones are counted under
  // model="_other" (and version=""), so no input can grow /metrics without
  // bound. The server labels only models of the repository; this bounds the
  // rest (versions over many reloads, a huge repository).
  static constexpr size_t kDefaultMaxSeries = 2000;
  static constexpr const char* kOtherModel = "_other";
  explicit Metrics(size_t max_series = kDefaultMaxSeries) : max_series_(max_series) {}

  // kiln_serve_requests_total{model, version, status}
  void count_request(const std::string& model, const std::string& version, int status);
  // The same and kiln_serve_request_duration_seconds{model}, under one lock.
  void observe_request(const std::string& model, const std::string& version, int status, double seconds);
  // kiln_serve_batch_size{model}, kiln_serve_queue_seconds{model} for each
  // request of the batch, and kiln_serve_batches_total{model, runner}
  // (runner: "io_thread" or "worker", see ModelVersion::runs_on_caller).
  void observe_batch(const std::string& model, int64_t rows, const std::vector<double>& queue_seconds,
                     bool on_io_thread);
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
  // Keyed by label values, not by rendered labels: the request path looks
  // them up without building strings (labels are written by render()).
  using RequestKey = std::tuple<std::string, std::string, int>;  // model, version, status
  using ByModel = std::map<std::string, Histogram, std::less<>>;
  void observe(ByModel& family, const std::vector<double>& bounds, const std::string& model, double value) const;
  void count_request_locked(const std::string& model, const std::string& version, int status);

  const size_t max_series_;
  mutable std::mutex mutex_;
  std::map<RequestKey, uint64_t, std::less<>> requests_;
  std::map<std::pair<std::string, std::string>, uint64_t> load_failures_;
  std::map<std::tuple<std::string, bool>, uint64_t, std::less<>> batches_;  // model, on an I/O thread
  ByModel latency_, batch_, queue_;
};

// `name="value"` with Prometheus escaping.
std::string prometheus_label(const std::string& name, const std::string& value);

}  // namespace kiln::serve

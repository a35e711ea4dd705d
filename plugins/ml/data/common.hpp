// Helpers every data.* component shares: errors with the right code, reading
// and writing Dataset ports, list/object parameters, a portable PRNG and
// small statistics.
#pragma once

#include <kiln/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "dataset.hpp"

namespace kiln::data {

// Every bad input is the caller's problem, so it carries INVALID_ARGUMENT.
[[noreturn]] void bad_input(const std::string& message);

// Loads input `port`; format problems become bad_input naming the port.
ml::Dataset read_dataset(const Context& ctx, const std::string& port);
// Saves `dataset` as output `port` and reports its row count as metadata.
// `extra` fields are merged into that metadata.
void write_dataset(const Context& ctx, const std::string& port, const ml::Dataset& dataset,
                   const nlohmann::json& extra = nlohmann::json::object());

// A list/object parameter parsed from its JSON.
nlohmann::json param_value(const Context& ctx, const std::string& name);
std::vector<std::string> param_strings(const Context& ctx, const std::string& name);

// Random numbers whose sequence is the same with every standard library:
// std::mt19937_64's output is fixed by the standard, but the std
// distributions and std::shuffle are not, so they are written out here.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t next() { return engine_(); }
  // Uniform in [0, n), n > 0, without modulo bias (rejection sampling).
  uint64_t below(uint64_t n);
  // Uniform integer in [-bound, bound].
  int64_t symmetric(int64_t bound);
  // Uniform in [0, 1) from the top 53 bits.
  double uniform();
  // Standard normal by the Box–Muller transform (one value per call).
  double normal();
  // Fisher–Yates, from the back.
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

 private:
  std::mt19937_64 engine_;
};

// Quantile of sorted values by linear interpolation (numpy's default).
template <class T>
double quantile_sorted(const std::vector<T>& sorted, double q) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double position = q * static_cast<double>(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(position));
  const auto above = std::min(below + 1, sorted.size() - 1);
  const double t = position - static_cast<double>(below);
  return static_cast<double>(sorted[below]) +
         (static_cast<double>(sorted[above]) - static_cast<double>(sorted[below])) * t;
}
// Shortest text that reads back as the same double ("3", "0.1", "1e+20").
std::string format_number(double value);
// In a long loop: every 4096 items, honours cancellation and reports progress.
void step_progress(const Context& ctx, int64_t done, int64_t total, const std::string& what);

}  // namespace kiln::data

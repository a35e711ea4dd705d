#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace kiln::data {

void bad_input(const std::string& message) {
  throw Error(message, KILN_ERROR_INVALID_ARGUMENT);
}

ml::Dataset read_dataset(const Context& ctx, const std::string& port) {
  const auto dir = ctx.input_path(port);
  try {
    return ml::load_dataset(dir);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    bad_input("input '" + port + "' is not a usable Dataset: " + e.what());
  }
}

void write_dataset(const Context& ctx, const std::string& port, const ml::Dataset& dataset,
                   const nlohmann::json& extra) {
  ml::save_dataset(ctx.output_path(port), dataset);
  nlohmann::json meta = {{"rows", dataset.rows()}, {"feature_shape", dataset.schema.feature_shape}};
  if (dataset.schema.label) {
    meta["task"] = ml::task_name(dataset.schema.label->task);
    if (dataset.schema.label->task == ml::Task::Classification) meta["classes"] = dataset.schema.label->classes.size();
  }
  meta.update(extra);
  ctx.output_metadata(port, meta.dump());
}

nlohmann::json param_value(const Context& ctx, const std::string& name) {
  return nlohmann::json::parse(ctx.param_json(name));
}

std::vector<std::string> param_strings(const Context& ctx, const std::string& name) {
  const auto value = param_value(ctx, name);
  std::vector<std::string> out;
  if (value.is_null()) return out;
  if (!value.is_array()) bad_input("parameter '" + name + "' must be a list of strings");
  for (const auto& item : value) {
    if (item.is_string())
      out.push_back(item.get<std::string>());
    else if (item.is_number())
      out.push_back(item.dump());
    else
      bad_input("parameter '" + name + "' must be a list of strings, not " + value.dump());
  }
  return out;
}

uint64_t Rng::below(uint64_t n) {
  // 2^64 mod n values at the bottom are rejected so every residue is equally likely.
  const uint64_t threshold = (0 - n) % n;
  uint64_t x = next();
  while (x < threshold) x = next();
  return x % n;
}

int64_t Rng::symmetric(int64_t bound) {
  if (bound <= 0) return 0;
  return static_cast<int64_t>(below(static_cast<uint64_t>(2 * bound + 1))) - bound;
}

double Rng::uniform() {
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

double Rng::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1], so the log is finite
  const double u2 = uniform();
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}

std::string format_number(double value) {
  char buffer[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

void step_progress(const Context& ctx, int64_t done, int64_t total, const std::string& what) {
  constexpr int64_t kEvery = 4096;
  if (done % kEvery != 0 || total <= 0) return;
  ctx.throw_if_cancelled();
  ctx.progress(std::min(1.0, static_cast<double>(done) / static_cast<double>(total)), what);
}

}  // namespace kiln::data

// Search spaces of a tuning step and the portable random source the
// algorithms draw from. Pure C++ (no host, no LibTorch), so the algorithms can
// be unit-tested on synthetic objectives.
#pragma once

#include <kiln/sdk/search.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::tune {

// The SDK's search types (kiln/sdk/search.hpp): JSON, configuration errors
// ("space.lr.low: ..."), and the portable random source (splitmix64).
using search::ConfigError;
using search::Json;
using search::Rng;

enum class ParamType { Uniform, LogUniform, Int, Categorical };

// A parameter that exists only when `parent` took one of `values`.
struct Condition {
  std::string parent;
  std::vector<Json> values;
};

struct ParamDef {
  std::string name;
  ParamType type = ParamType::Uniform;
  double low = 0, high = 1;   // Uniform, LogUniform, Int (inclusive)
  int64_t step = 1;           // Int: values low, low+step, ... <= high
  std::vector<Json> choices;  // Categorical: any JSON values
  int grid_points = 0;        // Uniform/LogUniform under grid search; 0 = the algorithm's default
  std::optional<Condition> when;

  bool is_float() const { return type == ParamType::Uniform || type == ParamType::LogUniform; }
  // Number of distinct values (Int, Categorical); 0 for continuous types.
  size_t cardinality() const;
  // The i-th distinct value of an Int or Categorical parameter.
  Json value_at(size_t i) const;
  // Maps a value into [0, 1] (log scale for LogUniform, index for discrete).
  double to_unit(const Json& value) const;
  // The inverse of to_unit, snapped to a legal value.
  Json from_unit(double u) const;
  // Whether `value` has the parameter's type and lies in its bounds.
  bool contains(const Json& value) const;
};

class SearchSpace {
 public:
  // Parses {"name": {"type": "uniform"|"log_uniform"|"int"|"categorical", ...}}.
  // Parameters come out in dependency order: a conditional parameter follows
  // its parent.
  static SearchSpace from_json(const Json& space);

  const std::vector<ParamDef>& params() const { return params_; }
  // Whether `param` is active given the values chosen so far.
  static bool active(const ParamDef& param, const Json& chosen);
  // One uniform draw (log-uniform for LogUniform); inactive parameters are absent.
  Json sample(Rng& rng) const;
  // The point whose active parameters take from_unit(unit[i]), i the
  // parameter's index in params(); unit.size() == params().size().
  Json from_units(const std::vector<double>& unit) const;
  // The inverse: each active parameter's to_unit, `fill` for inactive ones.
  std::vector<double> to_units(const Json& assignment, double fill) const;
  // Whether `assignment` is a legal point: every active parameter present and
  // in bounds, no inactive or unknown one.
  bool contains(const Json& assignment) const;
  // Every grid point, in a fixed order (the first parameter varies slowest).
  std::vector<Json> grid(int default_points) const;

 private:
  std::vector<ParamDef> params_;
};

}  // namespace kiln::tune

#include "space.hpp"

#include <algorithm>
#include <cmath>
#include <set>

namespace kiln::tune {

size_t ParamDef::cardinality() const {
  if (type == ParamType::Categorical) return choices.size();
  if (type == ParamType::Int)
    return static_cast<size_t>((static_cast<int64_t>(high) - static_cast<int64_t>(low)) / step) + 1;
  return 0;
}

Json ParamDef::value_at(size_t i) const {
  if (type == ParamType::Categorical) return choices.at(i);
  return static_cast<int64_t>(low) + static_cast<int64_t>(i) * step;
}

double ParamDef::to_unit(const Json& value) const {
  switch (type) {
    case ParamType::Uniform:
      return high > low ? (value.get<double>() - low) / (high - low) : 0.5;
    case ParamType::LogUniform:
      return high > low ? (std::log(value.get<double>()) - std::log(low)) / (std::log(high) - std::log(low)) : 0.5;
    case ParamType::Int:
    case ParamType::Categorical: {
      const size_t n = cardinality();
      size_t index = 0;
      if (type == ParamType::Int)
        index = static_cast<size_t>((value.get<int64_t>() - static_cast<int64_t>(low)) / step);
      else
        index = static_cast<size_t>(std::find(choices.begin(), choices.end(), value) - choices.begin());
      return (static_cast<double>(index) + 0.5) / static_cast<double>(n);
    }
  }
  return 0;
}

Json ParamDef::from_unit(double u) const {
  u = std::clamp(u, 0.0, 1.0);
  switch (type) {
    case ParamType::Uniform:
      return std::clamp(low + u * (high - low), low, high);
    case ParamType::LogUniform:
      return std::clamp(std::exp(std::log(low) + u * (std::log(high) - std::log(low))), low, high);
    case ParamType::Int:
    case ParamType::Categorical: {
      const size_t n = cardinality();
      const size_t index = std::min(n - 1, static_cast<size_t>(u * static_cast<double>(n)));
      return value_at(index);
    }
  }
  return nullptr;
}

bool ParamDef::contains(const Json& value) const {
  switch (type) {
    case ParamType::Uniform:
    case ParamType::LogUniform:
      return value.is_number_float() && value.get<double>() >= low && value.get<double>() <= high;
    case ParamType::Int: {
      if (!value.is_number_integer()) return false;
      const int64_t v = value.get<int64_t>();
      return v >= static_cast<int64_t>(low) && v <= static_cast<int64_t>(high) &&
             (v - static_cast<int64_t>(low)) % step == 0;
    }
    case ParamType::Categorical:
      return std::find(choices.begin(), choices.end(), value) != choices.end();
  }
  return false;
}

namespace {

double number_field(const Json& def, const std::string& where, const char* key) {
  if (!def.contains(key) || !def[key].is_number()) throw ConfigError(where + "." + key + ": a number is required");
  return def[key].get<double>();
}

ParamDef parse_param(const std::string& name, const Json& def) {
  const std::string where = "space." + name;
  if (!def.is_object()) throw ConfigError(where + ": expected a mapping with a `type`");
  ParamDef p;
  p.name = name;
  const std::string type = def.value("type", "");
  static const std::set<std::string> known{"type", "low", "high", "step", "values", "grid_points", "when"};
  for (const auto& item : def.items())
    if (!known.count(item.key())) throw ConfigError(where + "." + item.key() + ": unknown field");
  if (type == "uniform" || type == "log_uniform") {
    p.type = type == "uniform" ? ParamType::Uniform : ParamType::LogUniform;
    p.low = number_field(def, where, "low");
    p.high = number_field(def, where, "high");
    if (!(p.low <= p.high)) throw ConfigError(where + ".high: must be >= low");
    if (p.type == ParamType::LogUniform && p.low <= 0) throw ConfigError(where + ".low: must be > 0 for log_uniform");
  } else if (type == "int") {
    p.type = ParamType::Int;
    for (const char* key : {"low", "high"})
      if (!def.contains(key) || !def[key].is_number_integer())
        throw ConfigError(where + "." + key + ": an integer is required");
    p.low = static_cast<double>(def["low"].get<int64_t>());
    p.high = static_cast<double>(def["high"].get<int64_t>());
    if (def.contains("step")) {
      if (!def["step"].is_number_integer() || def["step"].get<int64_t>() < 1)
        throw ConfigError(where + ".step: a positive integer is required");
      p.step = def["step"].get<int64_t>();
    }
    if (p.low > p.high) throw ConfigError(where + ".high: must be >= low");
  } else if (type == "categorical") {
    p.type = ParamType::Categorical;
    if (!def.contains("values") || !def["values"].is_array() || def["values"].empty())
      throw ConfigError(where + ".values: a non-empty list is required");
    p.choices.assign(def["values"].begin(), def["values"].end());
  } else {
    throw ConfigError(where + ".type: expected uniform, log_uniform, int or categorical, got '" + type + "'");
  }
  if (def.contains("grid_points")) {
    if (!def["grid_points"].is_number_integer() || def["grid_points"].get<int>() < 1)
      throw ConfigError(where + ".grid_points: a positive integer is required");
    p.grid_points = def["grid_points"].get<int>();
  }
  if (def.contains("when")) {
    // when: {parent: [values...]} (or a single value)
    const Json& when = def["when"];
    if (!when.is_object() || when.size() != 1)
      throw ConfigError(where + ".when: expected {parent: [values]} naming one parent parameter");
    Condition c;
    c.parent = when.begin().key();
    const Json& values = when.begin().value();
    if (values.is_array())
      c.values.assign(values.begin(), values.end());
    else
      c.values.push_back(values);
    p.when = std::move(c);
  }
  return p;
}

}  // namespace

SearchSpace SearchSpace::from_json(const Json& space) {
  if (!space.is_object() || space.empty()) throw ConfigError("space: a non-empty mapping of parameters is required");
  std::vector<ParamDef> pending;
  for (const auto& item : space.items()) pending.push_back(parse_param(item.key(), item.value()));
  // Order by dependency: a parameter is placed once its parent is.
  SearchSpace out;
  std::set<std::string> placed;
  while (!pending.empty()) {
    const auto ready = std::find_if(pending.begin(), pending.end(),
                                    [&](const ParamDef& p) { return !p.when || placed.count(p.when->parent) > 0; });
    if (ready == pending.end()) {
      const ParamDef& p = pending.front();
      if (!space.contains(p.when->parent))
        throw ConfigError("space." + p.name + ".when: no parameter '" + p.when->parent + "' in the space");
      throw ConfigError("space." + p.name + ".when: conditions form a cycle");
    }
    placed.insert(ready->name);
    out.params_.push_back(std::move(*ready));
    pending.erase(ready);
  }
  return out;
}

bool SearchSpace::active(const ParamDef& param, const Json& chosen) {
  if (!param.when) return true;
  if (!chosen.contains(param.when->parent)) return false;
  const Json& v = chosen[param.when->parent];
  return std::find(param.when->values.begin(), param.when->values.end(), v) != param.when->values.end();
}

Json SearchSpace::sample(Rng& rng) const {
  Json out = Json::object();
  for (const ParamDef& p : params_)
    if (active(p, out)) out[p.name] = p.from_unit(rng.uniform());
  return out;
}

Json SearchSpace::from_units(const std::vector<double>& unit) const {
  Json out = Json::object();
  for (size_t i = 0; i < params_.size(); ++i)
    if (active(params_[i], out)) out[params_[i].name] = params_[i].from_unit(unit.at(i));
  return out;
}

std::vector<double> SearchSpace::to_units(const Json& assignment, double fill) const {
  std::vector<double> out(params_.size(), fill);
  for (size_t i = 0; i < params_.size(); ++i)
    if (assignment.contains(params_[i].name)) out[i] = params_[i].to_unit(assignment[params_[i].name]);
  return out;
}

bool SearchSpace::contains(const Json& assignment) const {
  if (!assignment.is_object()) return false;
  size_t seen = 0;
  for (const ParamDef& p : params_) {
    if (!active(p, assignment)) {
      if (assignment.contains(p.name)) return false;
      continue;
    }
    if (!assignment.contains(p.name) || !p.contains(assignment[p.name])) return false;
    ++seen;
  }
  return seen == assignment.size();
}

std::vector<Json> SearchSpace::grid(int default_points) const {
  std::vector<Json> points{Json::object()};
  for (const ParamDef& p : params_) {
    std::vector<Json> values;
    if (p.is_float()) {
      const int n = p.grid_points > 0 ? p.grid_points : default_points;
      for (int i = 0; i < n; ++i) values.push_back(p.from_unit(n == 1 ? 0.5 : static_cast<double>(i) / (n - 1)));
    } else {
      for (size_t i = 0; i < p.cardinality(); ++i) values.push_back(p.value_at(i));
    }
    std::vector<Json> next;
    for (const Json& point : points) {
      if (!active(p, point)) {
        next.push_back(point);
        continue;
      }
      for (const Json& v : values) {
        Json extended = point;
        extended[p.name] = v;
        next.push_back(std::move(extended));
      }
    }
    points = std::move(next);
  }
  return points;
}

}  // namespace kiln::tune

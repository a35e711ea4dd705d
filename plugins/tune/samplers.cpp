// The sampler factory and the model-free samplers: random, grid, Sobol.
#include "sampler.hpp"

#include <array>

namespace kiln::tune {
namespace {

// Uniform (log-uniform) independent draws.
class RandomSampler : public Sampler {
 public:
  explicit RandomSampler(const SearchSpace& space) : space_(space) {}
  std::optional<Json> next(int64_t, const Trials&, Rng& rng) override { return space_.sample(rng); }
  bool uses_history() const override { return false; }

 private:
  SearchSpace space_;
};

// Every point of the grid once, in SearchSpace::grid order. Continuous
// parameters get settings.points values (default 3) unless they set grid_points.
class GridSampler : public Sampler {
 public:
  GridSampler(const SearchSpace& space, const Json& settings)
      : points_(space.grid(static_cast<int>(setting_int(settings, "points", 3, 1)))) {}
  std::optional<Json> next(int64_t, const Trials&, Rng&) override {
    if (next_ >= points_.size()) return std::nullopt;
    return points_[next_++];
  }
  bool uses_history() const override { return false; }

 private:
  std::vector<Json> points_;
  size_t next_ = 0;
};

// Sobol's sequence (Joe & Kuo's direction numbers, new-joe-kuo-6.21201, for
// the first 16 dimensions), one dimension per parameter in params() order,
// with a random digital shift drawn from the seed (so seeds differ while
// every prefix of 2^k points keeps its stratification). Point i of the
// sequence is trial i's.
class SobolSampler : public Sampler {
 public:
  static constexpr size_t kMaxDims = 16;

  SobolSampler(const SearchSpace& space, const Json& settings) : space_(space) {
    if (space.params().size() > kMaxDims)
      throw ConfigError("settings.sampler: sobol supports up to " + std::to_string(kMaxDims) + " parameters, the space has " +
                        std::to_string(space.params().size()));
    scramble_ = setting_bool(settings, "scramble", true);
    for (size_t d = 0; d < space.params().size(); ++d) directions_.push_back(directions(d));
  }

  std::optional<Json> next(int64_t id, const Trials&, Rng& rng) override {
    if (shift_.empty()) {
      for (size_t d = 0; d < directions_.size(); ++d) shift_.push_back(scramble_ ? static_cast<uint32_t>(rng.next() >> 32) : 0);
    }
    std::vector<double> unit;
    for (size_t d = 0; d < directions_.size(); ++d) unit.push_back(point(static_cast<uint64_t>(id), d));
    return space_.from_units(unit);
  }
  bool uses_history() const override { return false; }

  // Coordinate d of point i (Gray-code free form: XOR of the direction
  // numbers of i's set bits), shifted; in [0, 1).
  double point(uint64_t i, size_t d) const {
    uint32_t x = 0;
    for (size_t bit = 0; bit < 32 && (i >> bit) != 0; ++bit)
      if ((i >> bit) & 1) x ^= directions_[d][bit];
    x ^= shift_.empty() ? 0 : shift_[d];
    return static_cast<double>(x) * 0x1.0p-32;
  }

 private:
  struct Primitive {
    unsigned degree, a;
    std::array<uint32_t, 6> m;
  };

  // 32 direction numbers (scaled to 32 bits) of dimension d.
  static std::array<uint32_t, 32> directions(size_t d) {
    static const Primitive table[] = {
        {1, 0, {1}},           {2, 1, {1, 3}},           {3, 1, {1, 3, 1}},         {3, 2, {1, 1, 1}},
        {4, 1, {1, 1, 3, 3}},  {4, 4, {1, 3, 5, 13}},     {5, 2, {1, 1, 5, 5, 17}},  {5, 4, {1, 1, 5, 5, 5}},
        {5, 7, {1, 1, 7, 11, 19}}, {5, 11, {1, 1, 5, 1, 1}}, {5, 13, {1, 1, 1, 3, 11}}, {5, 14, {1, 3, 5, 5, 31}},
        {6, 1, {1, 3, 3, 9, 7, 49}}, {6, 13, {1, 1, 1, 15, 21, 21}}, {6, 16, {1, 3, 1, 13, 27, 49}}};
    std::array<uint32_t, 32> v{};
    if (d == 0) {  // the van der Corput sequence
      for (unsigned k = 0; k < 32; ++k) v[k] = 1u << (31 - k);
      return v;
    }
    const Primitive& p = table[d - 1];
    for (unsigned k = 0; k < 32; ++k) {
      if (k < p.degree) {
        v[k] = p.m[k] << (31 - k);
        continue;
      }
      uint32_t x = v[k - p.degree] ^ (v[k - p.degree] >> p.degree);
      for (unsigned j = 1; j < p.degree; ++j)
        if ((p.a >> (p.degree - 1 - j)) & 1) x ^= v[k - j];
      v[k] = x;
    }
    return v;
  }

  SearchSpace space_;
  bool scramble_ = true;
  std::vector<std::array<uint32_t, 32>> directions_;
  std::vector<uint32_t> shift_;
};

}  // namespace

std::unique_ptr<Sampler> make_sobol_sampler(const SearchSpace& space, const Json& settings) {
  return std::make_unique<SobolSampler>(space, settings);
}

std::unique_ptr<Sampler> make_sampler(const std::string& name, const SearchSpace& space, const Json& settings) {
  if (name == "random") return std::make_unique<RandomSampler>(space);
  if (name == "grid") return std::make_unique<GridSampler>(space, settings);
  if (name == "sobol") return make_sobol_sampler(space, settings);
  if (name == "tpe") return make_tpe_sampler(space, settings);
  if (name == "gp") return make_gp_sampler(space, settings);
  if (name == "cmaes") return make_cmaes_sampler(space, settings);
  if (name == "nsga2") return make_nsga2_sampler(space, settings);
  throw ConfigError("settings.sampler: expected random, grid, sobol, tpe, gp, cmaes or nsga2, got '" + name + "'");
}

}  // namespace kiln::tune

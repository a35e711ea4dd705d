// The tune plugin (kiln_tune.so): tune.search composes any sampler with any
// scheduler (settings.sampler, settings.scheduler); tune.random, tune.grid,
// tune.tpe, tune.asha and tune.hyperband are fixed pairs kept for existing
// pipelines, tune.nsga2 the multi-objective genetic algorithm alone. Each offers only the KilnTunerApi table (no run function).
// Median-stop is an option of every one of them (config "early_stopping").
#include "tuner.hpp"

#include <kiln/sdk.hpp>

#include <memory>
#include <string>

namespace kiln::tune {
namespace {

// One algorithm (make_tuner's name) as a factory for the SDK's search_table.
template <const char* Algorithm>
struct AlgorithmFactory {
  static std::unique_ptr<search::Search> create(const Json& config) { return make_tuner(Algorithm, config); }
};

template <const char* Algorithm>
const KilnTunerApi* table() {
  return search::search_table<AlgorithmFactory<Algorithm>>();
}

constexpr char kSearch[] = "search";
constexpr char kRandom[] = "random";
constexpr char kGrid[] = "grid";
constexpr char kTpe[] = "tpe";
constexpr char kNsga2[] = "nsga2";
constexpr char kAsha[] = "asha";
constexpr char kHyperband[] = "hyperband";
constexpr char kPbt[] = "pbt";

Manifest tuner_manifest(const std::string& algorithm, const std::string& description) {
  return Manifest("tune." + algorithm, "0.1.0", Kind::Tune).description(description);
}

}  // namespace

struct SearchTuner {
  static Manifest manifest() {
    return tuner_manifest(kSearch,
                          "Any sampler (settings.sampler: random, grid, sobol, tpe, gp, cmaes, nsga2) with any scheduler "
                          "(settings.scheduler: none, median, asha, hyperband, pbt)");
  }
  static const KilnTunerApi* tuner() { return table<kSearch>(); }
};
struct RandomTuner {
  static Manifest manifest() {
    return tuner_manifest(kRandom, "Random search: independent uniform / log-uniform draws from the space");
  }
  static const KilnTunerApi* tuner() { return table<kRandom>(); }
};
struct GridTuner {
  static Manifest manifest() {
    return tuner_manifest(kGrid,
                          "Grid search: every combination once; continuous parameters get settings.points values");
  }
  static const KilnTunerApi* tuner() { return table<kGrid>(); }
};
struct TpeTuner {
  static Manifest manifest() {
    return tuner_manifest(kTpe, "Tree-structured Parzen estimator after n_startup_trials random trials");
  }
  static const KilnTunerApi* tuner() { return table<kTpe>(); }
};
struct Nsga2Tuner {
  static Manifest manifest() {
    return tuner_manifest(kNsga2,
                          "NSGA-II: generations of settings.population_size trials bred from the best earlier ones "
                          "by non-dominated sorting and crowding distance; learns from every objective");
  }
  static const KilnTunerApi* tuner() { return table<kNsga2>(); }
};
struct AshaTuner {
  static Manifest manifest() {
    return tuner_manifest(kAsha, "Random x asynchronous successive halving: trials stopped at rungs min_resource*eta^k");
  }
  static const KilnTunerApi* tuner() { return table<kAsha>(); }
};
struct HyperbandTuner {
  static Manifest manifest() {
    return tuner_manifest(kHyperband,
                          "Random x Hyperband: asynchronous successive halving over brackets with first rungs at "
                          "min_resource*eta^s, trials dealt by the paper's budget per bracket");
  }
  static const KilnTunerApi* tuner() { return table<kHyperband>(); }
};

struct PbtTuner {
  static Manifest manifest() {
    return tuner_manifest(kPbt,
                          "Random x population-based training: settings.population members train in rounds of "
                          "settings.interval epochs; the bottom quantile copy a top member's checkpoint and perturb "
                          "its parameters");
  }
  static const KilnTunerApi* tuner() { return table<kPbt>(); }
};

}  // namespace kiln::tune

KILN_PLUGIN(kiln::tune::SearchTuner, kiln::tune::RandomTuner, kiln::tune::GridTuner, kiln::tune::TpeTuner,
            kiln::tune::Nsga2Tuner, kiln::tune::AshaTuner, kiln::tune::HyperbandTuner, kiln::tune::PbtTuner)

// The tune plugin (kiln_tune.so): one component per search algorithm, each
// offering only the KilnTunerApi table (no run function). Median-stop is an
// option of every one of them (config "early_stopping").
#include "tuner.hpp"

#include <kiln/sdk.hpp>

#include <memory>
#include <string>

// The plugin-owned state behind the ABI's opaque KilnTuner handle.
struct KilnTuner {
  const KilnHostApi* host = nullptr;
  std::unique_ptr<kiln::tune::Tuner> impl;
  std::string last_json;  // what suggest handed out, valid until the next call
};

namespace kiln::tune {
namespace {

// Must be called inside a catch block.
KilnError* current_error(const KilnHostApi* host) noexcept {
  try {
    throw;
  } catch (const ConfigError& e) {
    return host->error_new(KILN_ERROR_INVALID_ARGUMENT, e.what());
  } catch (const Json::exception& e) {
    return host->error_new(KILN_ERROR_INVALID_ARGUMENT, (std::string("tuner config: ") + e.what()).c_str());
  } catch (...) {
    return kiln::detail::error_from_current_exception(host);
  }
}

template <const char* Algorithm>
KilnError* create(const KilnHostApi* host, const char* config_json, KilnTuner** tuner_out) noexcept {
  try {
    auto tuner = std::make_unique<KilnTuner>();
    tuner->host = host;
    tuner->impl = make_tuner(Algorithm, Json::parse(config_json == nullptr ? "{}" : config_json));
    *tuner_out = tuner.release();  // owned by the host until destroy
    return nullptr;
  } catch (...) {
    return current_error(host);
  }
}

KilnError* suggest(KilnTuner* tuner, uint32_t max_count, const char** json_out) noexcept {
  try {
    tuner->last_json = tuner->impl->suggest(max_count).dump();
    *json_out = tuner->last_json.c_str();
    return nullptr;
  } catch (...) {
    return current_error(tuner->host);
  }
}

KilnError* observe(KilnTuner* tuner, int64_t trial, int64_t step, double value, int32_t is_final,
                   const char* status) noexcept {
  try {
    // `status` is a JSON string ("succeeded"); a bare word is accepted too.
    std::string text = status == nullptr ? "" : status;
    if (!text.empty() && text.front() == '"') text = Json::parse(text).get<std::string>();
    tuner->impl->observe(trial, step, value, is_final != 0, is_final != 0 ? text : "running");
    return nullptr;
  } catch (...) {
    return current_error(tuner->host);
  }
}

KilnError* should_stop(KilnTuner* tuner, int64_t trial, int32_t* stop_out) noexcept {
  try {
    *stop_out = tuner->impl->should_stop(trial) ? 1 : 0;
    return nullptr;
  } catch (...) {
    return current_error(tuner->host);
  }
}

void destroy(KilnTuner* tuner) noexcept {
  std::unique_ptr<KilnTuner> owned(tuner);  // NULL is a no-op
}

template <const char* Algorithm>
const KilnTunerApi* table() {
  static const KilnTunerApi api{sizeof(KilnTunerApi), 0,       &create<Algorithm>, &suggest, &observe,
                                &should_stop,         &destroy};
  return &api;
}

constexpr char kRandom[] = "random";
constexpr char kGrid[] = "grid";
constexpr char kTpe[] = "tpe";
constexpr char kAsha[] = "asha";
constexpr char kHyperband[] = "hyperband";

Manifest tuner_manifest(const std::string& algorithm, const std::string& description) {
  return Manifest("tune." + algorithm, "0.1.0", Kind::Tune).description(description);
}

}  // namespace

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
struct AshaTuner {
  static Manifest manifest() {
    return tuner_manifest(kAsha, "Asynchronous successive halving: random trials stopped at rungs min_resource*eta^k");
  }
  static const KilnTunerApi* tuner() { return table<kAsha>(); }
};
struct HyperbandTuner {
  static Manifest manifest() {
    return tuner_manifest(kHyperband,
                          "Hyperband: asynchronous successive halving over brackets with first rungs at "
                          "min_resource*eta^s, trials dealt round-robin");
  }
  static const KilnTunerApi* tuner() { return table<kHyperband>(); }
};

}  // namespace kiln::tune

KILN_PLUGIN(kiln::tune::RandomTuner, kiln::tune::GridTuner, kiln::tune::TpeTuner, kiln::tune::AshaTuner,
            kiln::tune::HyperbandTuner)

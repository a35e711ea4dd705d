// Population-based training (plugins/tune/pbt.cpp) on its own: explore stays
// in the space, a round waits for the whole population, the bottom quantile
// copy a top member and perturb its parameters, decisions do not depend on
// the order results arrive in, and PBT beats the same population left alone
// on an objective whose optimum moves.
#include "pbt.hpp"
#include "tuner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace kiln::tune {
namespace {

const Json kSpace = Json::parse(R"({
  "x": {"type": "log_uniform", "low": 0.5, "high": 12},
  "n": {"type": "int", "low": 2, "high": 20, "step": 2},
  "act": {"type": "categorical", "values": ["relu", "tanh", "gelu"]}})");

Json pbt_config(int64_t population, int64_t rounds, uint64_t seed, Json settings = Json::object()) {
  settings["population"] = population;
  settings["interval"] = 2;
  return {{"objective", {{"metric", "loss"}, {"goal", "minimize"}}},
          {"space", kSpace},
          {"settings", settings},
          {"max_trials", population * rounds},
          {"seed", seed}};
}

TEST(TunePbt, ExploreStaysInTheSpaceAndMovesByTheFactors) {
  const SearchSpace space = SearchSpace::from_json(kSpace);
  Rng rng(3);
  int moved_categorical = 0;
  for (int i = 0; i < 500; ++i) {
    const Json start = space.sample(rng);
    const Json p = pbt_perturb(space, start, 0.5, rng);
    ASSERT_TRUE(space.contains(p)) << p.dump();
    const double ratio = p["x"].get<double>() / start["x"].get<double>();
    const bool clipped = p["x"] == 0.5 || p["x"] == 12.0;
    EXPECT_TRUE(clipped || std::abs(ratio - 0.8) < 1e-12 || std::abs(ratio - 1.2) < 1e-12) << start << " -> " << p;
    EXPECT_EQ(p["n"].get<int64_t>() % 2, 0);
    EXPECT_LE(std::abs(p["n"].get<double>() - start["n"].get<double>()), 0.2 * start["n"].get<double>() + 1) << p;
    if (p["act"] != start["act"]) ++moved_categorical;
  }
  // p = 0.5 redraws half of them, and a redraw keeps the value one time in three.
  EXPECT_GT(moved_categorical, 100);
  EXPECT_LT(moved_categorical, 230);
  Rng again(3);
  const Json start = space.sample(again);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(pbt_perturb(space, start, 0.0, again)["act"], start["act"]);
}

TEST(TunePbt, ExploreKeepsConditionalParametersConsistent) {
  const SearchSpace space = SearchSpace::from_json(Json::parse(R"({
    "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
    "momentum": {"type": "uniform", "low": 0.5, "high": 0.99, "when": {"optimizer": ["sgd"]}}})"));
  Rng rng(8);
  int appeared = 0, dropped = 0;
  for (int i = 0; i < 300; ++i) {
    const Json start = space.sample(rng);
    const Json p = pbt_perturb(space, start, 1.0, rng);  // every categorical value redrawn
    ASSERT_TRUE(space.contains(p)) << start << " -> " << p;
    appeared += !start.contains("momentum") && p.contains("momentum");
    dropped += start.contains("momentum") && !p.contains("momentum");
  }
  EXPECT_GT(appeared, 0);
  EXPECT_GT(dropped, 0);
}

// Runs a whole PBT search with `finish_order` deciding in which order a
// round's members report (a permutation of 0..population-1), and
// `parallel` trials asked for at a time; returns every suggestion.
Json run_search(uint64_t seed, const std::vector<int>& finish_order, uint32_t parallel,
                const std::string& algorithm = "pbt", Json settings = Json::object(), Json extra = Json::object()) {
  const int64_t population = static_cast<int64_t>(finish_order.size());
  Json config = pbt_config(population, 4, seed, std::move(settings));
  config.update(extra);
  const auto tuner = make_tuner(algorithm, config);
  Json all = Json::array();
  std::vector<Json> running;
  for (;;) {
    Json batch = tuner->suggest(parallel - static_cast<uint32_t>(running.size()));
    for (Json& t : batch) {
      all.push_back(t);
      running.push_back(t);
    }
    if (running.empty()) break;
    // Finish the running trial that comes first in finish_order.
    const auto pick = std::min_element(running.begin(), running.end(), [&](const Json& a, const Json& b) {
      const auto rank = [&](const Json& t) {
        return std::find(finish_order.begin(), finish_order.end(), t["parameters"]["kiln.pbt"]["member"].get<int>()) -
               finish_order.begin();
      };
      return rank(a) < rank(b);
    });
    const Json& p = (*pick)["parameters"];
    const double loss = std::abs(std::log(p["x"].get<double>() / 3.0)) + 0.01 * p["n"].get<double>();
    tuner->observe((*pick)["trial"], -1, loss, true, "succeeded");
    running.erase(pick);
  }
  return all;
}

TEST(TunePbt, ARoundWaitsForThePopulationThenTheBottomCopyTheTop) {
  const auto tuner = make_tuner("pbt", pbt_config(4, 3, 11));
  const Json first = tuner->suggest(8);
  ASSERT_EQ(first.size(), 4u);  // round 1 waits for round 0
  for (int m = 0; m < 4; ++m) {
    EXPECT_EQ(first[m]["trial"], m);
    EXPECT_EQ(first[m]["parameters"]["epochs"], 2);
    const Json lineage = {{"member", m}, {"round", 0}, {"from", nullptr}, {"exploited", false}};
    EXPECT_EQ(first[m]["parameters"]["kiln.pbt"], lineage);
  }
  const double losses[] = {0.5, 0.1, 0.9, 0.3};  // best: member 1; worst: member 2
  for (int m = 0; m < 3; ++m) tuner->observe(m, -1, losses[m], true, "succeeded");
  EXPECT_TRUE(tuner->suggest(4).empty());  // member 3 still runs
  tuner->observe(3, -1, losses[3], true, "succeeded");
  const Json second = tuner->suggest(4);
  ASSERT_EQ(second.size(), 4u);
  for (int m = 0; m < 4; ++m) {
    const Json& p = second[m]["parameters"];
    EXPECT_EQ(second[m]["trial"], 4 + m);
    EXPECT_EQ(p["epochs"], 4);
    EXPECT_EQ(p["kiln.pbt"]["round"], 1);
    if (m == 2) {  // quantile 0.25 of 4: the worst copies the best and explores
      EXPECT_EQ(p["kiln.pbt"]["from"], 1);
      EXPECT_EQ(p["kiln.pbt"]["exploited"], true);
      const double ratio = p["x"].get<double>() / first[1]["parameters"]["x"].get<double>();
      EXPECT_TRUE(std::abs(ratio - 0.8) < 1e-12 || std::abs(ratio - 1.2) < 1e-12 || p["x"] == 0.5 || p["x"] == 12.0);
    } else {  // the others continue their own checkpoint with their own parameters
      EXPECT_EQ(p["kiln.pbt"]["from"], m);
      EXPECT_EQ(p["kiln.pbt"]["exploited"], false);
      Json own = first[m]["parameters"];
      own.erase("epochs");
      own.erase("kiln.pbt");
      Json now = p;
      now.erase("epochs");
      now.erase("kiln.pbt");
      EXPECT_EQ(now, own);
    }
  }
}

TEST(TunePbt, TheLineageIsTheSameForASeedWhateverTheOrderAndParallelism) {
  const Json a = run_search(5, {0, 1, 2, 3, 4, 5, 6, 7}, 8);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(run_search(5, {7, 6, 5, 4, 3, 2, 1, 0}, 8), a);
  EXPECT_EQ(run_search(5, {3, 0, 6, 1, 7, 2, 5, 4}, 3), a);
  EXPECT_EQ(run_search(5, {0, 1, 2, 3, 4, 5, 6, 7}, 1), a);
  EXPECT_NE(run_search(6, {0, 1, 2, 3, 4, 5, 6, 7}, 8), a);
  int exploited = 0;
  for (const Json& t : a) exploited += t["parameters"]["kiln.pbt"]["exploited"].get<bool>();
  EXPECT_GT(exploited, 0);
}

// With the Search's determinism rule on (parallel_trials > 1 gives a
// history lag, docs/tuning.md) no round is hidden: PBT sees the whole
// previous round, and a TPE round 0 learns only from trials 0 ... id - lag,
// so the search is the same whatever the order its trials finish in.
TEST(TunePbt, AHistoryLagHidesNoRoundAndTheSearchStaysTheSame) {
  const Json tpe = {{"scheduler", "pbt"}, {"sampler", "tpe"}, {"n_startup_trials", 2}};
  const Json lag = {{"parallel_trials", 3}};
  const Json a = run_search(5, {0, 1, 2, 3, 4, 5}, 3, "search", tpe, lag);
  EXPECT_EQ(a.size(), 24u);  // 4 rounds of 6: none lost to the lag
  EXPECT_EQ(run_search(5, {5, 4, 3, 2, 1, 0}, 3, "search", tpe, lag), a);
  EXPECT_EQ(run_search(5, {2, 5, 0, 4, 1, 3}, 3, "search", tpe, lag), a);
  EXPECT_EQ(a.back()["parameters"]["kiln.pbt"]["round"], 3);
  // Median early stopping reads other trials too (so suggestions wait for the
  // lag): the rounds still all come.
  const Json median = run_search(5, {0, 1, 2, 3, 4, 5}, 3, "pbt", Json::object(),
                                 {{"parallel_trials", 3}, {"early_stopping", {{"rule", "median"}}}});
  EXPECT_EQ(median.size(), 24u);
  EXPECT_EQ(run_search(5, {3, 1, 5, 0, 2, 4}, 3, "pbt", Json::object(),
                       {{"parallel_trials", 3}, {"early_stopping", {{"rule", "median"}}}}),
            median);
}

// The drifting objective of util.objective (drift > 0), simulated: each
// epoch adds exp(-((x - target) / (0.2 target))^2), target = exp(drift * (epoch - 1)).
double gain_of_epoch(double x, int64_t epoch, double drift) {
  const double target = std::exp(drift * static_cast<double>(epoch - 1));
  const double z = (x - target) / (0.2 * target);
  return std::exp(-z * z);
}

// The best gain a search reaches: PBT (the checkpoint is the gain, copied
// on exploit), or the same population without exploit/explore.
double best_gain(uint64_t seed, bool pbt) {
  const int64_t population = 8, rounds = 8, interval = 2;
  const double drift = 0.08;
  Json settings = {{"population", population}, {"interval", interval}};
  Json config = {{"objective", {{"metric", "loss"}, {"goal", "minimize"}}},
                 {"space", {{"x", {{"type", "log_uniform"}, {"low", 0.5}, {"high", 12.0}}}}},
                 {"settings", settings},
                 {"max_trials", pbt ? population * rounds : population},
                 {"seed", seed}};
  const auto tuner = make_tuner(pbt ? "pbt" : "random", config);
  std::map<int64_t, double> gain;  // by trial: its checkpoint
  double best = 0;
  for (;;) {
    const Json batch = tuner->suggest(static_cast<uint32_t>(population));
    if (batch.empty()) break;
    for (const Json& t : batch) {
      const Json& p = t["parameters"];
      const double x = p["x"].get<double>();
      double g = 0;
      int64_t from_epoch = 1, to_epoch = rounds * interval;
      if (pbt) {
        const Json& from = p["kiln.pbt"]["from"];
        if (!from.is_null()) g = gain.at(from.get<int64_t>());
        to_epoch = p["epochs"].get<int64_t>();
        from_epoch = to_epoch - interval + 1;
      }
      for (int64_t e = from_epoch; e <= to_epoch; ++e) g += gain_of_epoch(x, e, drift);
      gain[t["trial"].get<int64_t>()] = g;
      best = std::max(best, g);
      tuner->observe(t["trial"], -1, 1.0 / (1.0 + g), true, "succeeded");
    }
  }
  return best;
}

TEST(TunePbt, BeatsTheSamePopulationWithoutExploitAndExploreOnAMovingOptimum) {
  double with = 0, without = 0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    const double p = best_gain(seed, true), b = best_gain(seed, false);
    EXPECT_GE(p, b) << "seed " << seed;  // never worse: the best lineage is never exploited
    with += p;
    without += b;
  }
  EXPECT_GT(with, 1.3 * without) << "PBT " << with / 5 << " vs " << without / 5;
}

TEST(TunePbt, ConfigurationErrorsNameTheField) {
  const auto error_of = [](const Json& settings, int64_t max_trials) {
    Json config = pbt_config(4, 2, 0);
    config["max_trials"] = max_trials;
    config["settings"].update(settings);
    try {
      make_tuner("pbt", config);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_of(Json::object(), 6).rfind("max_trials: 6 is not a multiple of settings.population (4)", 0), 0u);
  EXPECT_EQ(error_of({{"population", 1}}, 6).rfind("settings.population:", 0), 0u);
  EXPECT_EQ(error_of({{"quantile", 0.7}}, 8).rfind("settings.quantile:", 0), 0u);
  EXPECT_EQ(error_of({{"resample_probability", 2}}, 8).rfind("settings.resample_probability:", 0), 0u);
  EXPECT_EQ(error_of({{"budget_parameter", ""}}, 8).rfind("settings.budget_parameter:", 0), 0u);
  // PBT ranks its population by one objective: several are refused at their field.
  Json two = pbt_config(4, 2, 0);
  two["objectives"] = {{{"metric", "loss"}, {"goal", "minimize"}}, {{"metric", "cost"}, {"goal", "minimize"}}};
  try {
    make_tuner("pbt", two);
    ADD_FAILURE() << "two objectives accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("objectives:", 0), 0u) << e.what();
  }
  // Any sampler draws round 0: tune.search with scheduler pbt.
  const auto composed = make_tuner("search", pbt_config(4, 2, 0, {{"scheduler", "pbt"}, {"sampler", "sobol"}}));
  EXPECT_EQ(composed->suggest(8).size(), 4u);
}

}  // namespace
}  // namespace kiln::tune

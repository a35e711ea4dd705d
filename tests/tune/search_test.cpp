// tune.search's samplers and schedulers, each on a function or curves with a
// known answer: Sobol's stratification, TPE (independent and multivariate),
// GP-EI and CMA-ES against random search on Branin and a quadratic over
// fixed seeds, Hyperband's brackets, budget shares and per-bracket
// promotion, ASHA's promotion rule, a composed TPE x ASHA pair, and the
// configuration errors.
#include "tuner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <set>

namespace kiln::tune {
namespace {

Json search_config(const Json& space, int64_t max_trials, uint64_t seed, const Json& settings) {
  return {{"objective", {{"metric", "loss"}, {"goal", "minimize"}}},
          {"space", space},
          {"settings", settings},
          {"max_trials", max_trials},
          {"seed", seed}};
}

Json unit_space(size_t dims) {
  Json space = Json::object();
  for (size_t d = 0; d < dims; ++d) space["x" + std::to_string(d)] = {{"type", "uniform"}, {"low", 0.0}, {"high", 1.0}};
  return space;
}

// Branin on x in [-5, 10], y in [0, 15]: minimum 0.397887 at three points.
double branin(const Json& p) {
  const double x = p["x"].get<double>(), y = p["y"].get<double>();
  const double b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, t = 1 / (8 * M_PI);
  return std::pow(y - b * x * x + c * x - 6, 2) + 10 * (1 - t) * std::cos(x) + 10;
}
const Json kBraninSpace = Json::parse(R"({"x": {"type": "uniform", "low": -5, "high": 10},
                                          "y": {"type": "uniform", "low": 0, "high": 15}})");

// A shifted, ill-conditioned quadratic in 4 dimensions: minimum 0 at (0.3, 0.7, 0.2, 0.6).
double quadratic(const Json& p) {
  const double centre[] = {0.3, 0.7, 0.2, 0.6}, scale[] = {1, 4, 9, 16};
  double sum = 0;
  for (int d = 0; d < 4; ++d) sum += scale[d] * std::pow(p["x" + std::to_string(d)].get<double>() - centre[d], 2);
  return sum;
}

// Runs a search one trial at a time to the end; the best loss found.
double best_of(const std::string& sampler, const Json& space, double (*loss)(const Json&), int64_t trials,
               uint64_t seed, Json settings = Json::object()) {
  settings["sampler"] = sampler;
  const auto tuner = make_tuner("search", search_config(space, trials, seed, settings));
  double best = 1e300;
  for (;;) {
    const Json batch = tuner->suggest(1);
    if (batch.empty()) break;
    const double value = loss(batch[0]["parameters"]);
    best = std::min(best, value);
    tuner->observe(batch[0]["trial"], 1, value, true, "succeeded");
  }
  return best;
}

// The mean best over seeds 1..n.
double mean_best(const std::string& sampler, const Json& space, double (*loss)(const Json&), int64_t trials,
                 int seeds, const Json& settings = Json::object()) {
  double total = 0;
  for (int seed = 1; seed <= seeds; ++seed) total += best_of(sampler, space, loss, trials, seed, settings);
  return total / seeds;
}

TEST(TuneSobol, EveryPowerOfTwoPrefixIsStratified) {
  for (const bool scramble : {false, true}) {
    const auto tuner =
        make_tuner("search", search_config(unit_space(16), 64, 5, {{"sampler", "sobol"}, {"scramble", scramble}}));
    const Json trials = tuner->suggest(64);
    ASSERT_EQ(trials.size(), 64u);
    for (const size_t n : {8u, 16u, 32u, 64u}) {
      for (size_t d = 0; d < 16; ++d) {
        std::set<int> bins;  // one point per interval [k/n, (k+1)/n) in every dimension
        for (size_t i = 0; i < n; ++i) bins.insert(static_cast<int>(trials[i]["parameters"]["x" + std::to_string(d)].get<double>() * n));
        EXPECT_EQ(bins.size(), n) << "dimension " << d << ", first " << n << " points, scramble " << scramble;
      }
      // The first two dimensions form a (0, m, 2)-net: one point per square.
      const size_t side = n == 16 || n == 64 ? static_cast<size_t>(std::sqrt(n)) : 0;
      if (side == 0) continue;
      std::set<std::pair<int, int>> cells;
      for (size_t i = 0; i < n; ++i)
        cells.insert({static_cast<int>(trials[i]["parameters"]["x0"].get<double>() * side),
                      static_cast<int>(trials[i]["parameters"]["x1"].get<double>() * side)});
      EXPECT_EQ(cells.size(), n) << "first " << n << " points";
    }
  }
  // Different seeds shift differently; the same seed repeats.
  auto first = [](uint64_t seed) {
    return make_tuner("search", search_config(unit_space(3), 4, seed, {{"sampler", "sobol"}}))->suggest(4);
  };
  EXPECT_EQ(first(1), first(1));
  EXPECT_NE(first(1), first(2));
}

TEST(TuneSobol, RefusesMoreDimensionsThanItHasDirectionNumbersFor) {
  try {
    make_tuner("search", search_config(unit_space(17), 4, 1, {{"sampler", "sobol"}}));
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("settings.sampler: sobol supports up to 16 parameters"), std::string::npos);
  }
}

// Model-based samplers against random search with the same trial budget,
// averaged over the same seeds.
TEST(TuneSamplers, GaussianProcessBeatsRandomOnBranin) {
  const double gp = mean_best("gp", kBraninSpace, branin, 30, 5);
  const double random = mean_best("random", kBraninSpace, branin, 30, 5);
  EXPECT_LT(gp, random);
  EXPECT_LT(gp, 0.6);  // within 0.2 of the optimum 0.398 after 30 evaluations
}

TEST(TuneSamplers, CmaEsBeatsRandomOnAQuadratic) {
  const Json space = unit_space(4);
  const double cmaes = mean_best("cmaes", space, quadratic, 120, 5);
  const double random = mean_best("random", space, quadratic, 120, 5);
  EXPECT_LT(cmaes, random / 4);
  EXPECT_LT(cmaes, 0.02);
}

TEST(TuneSamplers, TpeBeatsRandomOnBraninIndependentAndMultivariate) {
  const double random = mean_best("random", kBraninSpace, branin, 60, 5);
  const double tpe = mean_best("tpe", kBraninSpace, branin, 60, 5);
  const double multivariate = mean_best("tpe", kBraninSpace, branin, 60, 5, {{"multivariate", true}});
  EXPECT_LT(tpe, random);
  EXPECT_LT(multivariate, random);
}

TEST(TuneSamplers, EverySamplerIsReproducibleForASeedAndStaysInTheSpace) {
  const Json space = Json::parse(R"({
    "lr": {"type": "log_uniform", "low": 1e-4, "high": 1e-1},
    "batch_size": {"type": "int", "low": 16, "high": 128, "step": 16},
    "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
    "momentum": {"type": "uniform", "low": 0.5, "high": 0.99, "when": {"optimizer": ["sgd"]}}})");
  const SearchSpace parsed = SearchSpace::from_json(space);
  for (const std::string sampler : {"random", "grid", "sobol", "tpe", "gp", "cmaes", "nsga2"}) {
    auto run = [&](uint64_t seed) {
      const auto tuner = make_tuner(
          "search", search_config(space, 25, seed, {{"sampler", sampler}, {"n_startup_trials", 5}, {"population_size", 5}}));
      Json all = Json::array();
      for (;;) {
        const Json batch = tuner->suggest(2);
        if (batch.empty()) break;
        for (const Json& s : batch) {
          EXPECT_TRUE(parsed.contains(s["parameters"])) << sampler << ": " << s.dump();
          const double lr = s["parameters"]["lr"].get<double>();
          tuner->observe(s["trial"], 1, std::pow(std::log10(lr) + 2, 2), true, "succeeded");
          all.push_back(s);
        }
      }
      return all;
    };
    const Json first = run(11);
    EXPECT_GE(first.size(), sampler == "grid" ? 2u : 25u) << sampler;
    EXPECT_EQ(first, run(11)) << sampler;
  }
}

// Curves where trial i's score at every step is its index: each trial is
// worse than every earlier one, so at every rung all but the first trial of
// each bracket stop, at that bracket's first rung.
std::map<int64_t, int64_t> run_worsening_curves(Tuner& tuner, int64_t count, int64_t max_step) {
  std::map<int64_t, int64_t> stopped_at;
  const Json trials = tuner.suggest(static_cast<size_t>(count));
  for (const Json& s : trials) {
    const int64_t id = s["trial"];
    for (int64_t step = 1; step <= max_step; ++step) {
      tuner.observe(id, step, static_cast<double>(id), false, "");
      if (tuner.should_stop(id)) {
        stopped_at[id] = step;
        tuner.observe(id, step, static_cast<double>(id), true, "early-stopped");
        break;
      }
    }
    if (!stopped_at.count(id)) tuner.observe(id, max_step, static_cast<double>(id), true, "succeeded");
  }
  return stopped_at;
}

TEST(TuneHyperband, BracketsAllHaveRungsAndGetThePapersShareOfTrials) {
  // 1..27, eta 3: s_max = 3; brackets with first rungs 1, 3, 9 (the paper's
  // s = 3, 2, 1: ceil(4/4 * 27) = 27, ceil(4/3 * 9) = 12, ceil(4/2 * 3) = 6
  // configurations); its s = 0 bracket (27 full epochs, no rung) is left out.
  const Json settings{{"scheduler", "hyperband"}, {"min_resource", 1}, {"max_resource", 27}, {"reduction_factor", 3}};
  const auto tuner = make_tuner("search", search_config(unit_space(1), 45, 1, settings));
  const auto stopped_at = run_worsening_curves(*tuner, 45, 27);
  std::map<int64_t, int> by_step;
  for (const auto& entry : stopped_at) ++by_step[entry.second];
  // Each bracket's first trial continues; every later one stops at its bracket's first rung.
  EXPECT_EQ(by_step, (std::map<int64_t, int>{{1, 26}, {3, 11}, {9, 5}}));
  EXPECT_EQ(stopped_at.size(), 42u);
}

TEST(TuneAsha, PromotesTheTopFloorNOverEtaOfARung) {
  // One rung at step 1 (max 3, eta 3). A trial continues only if it ranks
  // in the top max(1, floor(n / eta)) of the n scores at the rung (its own
  // included; lower is better), an equal score that reached the rung before
  // it ranking ahead of it.
  const Json settings{{"scheduler", "asha"}, {"min_resource", 1}, {"max_resource", 3}, {"reduction_factor", 3}};
  const auto tuner = make_tuner("search", search_config(unit_space(1), 10, 1, settings));
  const Json trials = tuner->suggest(10);
  const double scores[] = {5, 5, 4, 4.5, 3, 3.5, 3.8, 0, 0, 3};
  std::vector<bool> stopped;
  for (int i = 0; i < 10; ++i) {
    tuner->observe(trials[i]["trial"], 1, scores[i], false, "");
    stopped.push_back(tuner->should_stop(trials[i]["trial"]));
  }
  // n=1: quota 1, none ahead, go; n=2 (5, a tie with trial 0): quota 1, the
  // earlier 5 ranks ahead, stop; n=3 (4): best, go; n=4 (4.5): quota 1, 1
  // ahead, stop (top ceil(4/3) = 2 would keep it); n=5 (3): best, go; n=6
  // (3.5): quota 2, 1 ahead, go; n=7 (3.8): quota 2, 2 ahead, stop
  // (ceil(7/3) = 3 would keep it); n=8 (0): best, go; n=9 (0, a tie with
  // the best): quota 3, 1 ahead, go; n=10 (3, a tie with trial 4): quota 3,
  // 0, 0 and the earlier 3 ahead, stop. Optuna's pruner keeps ties: it would
  // let trials 1 and 9 go on.
  EXPECT_EQ(stopped, (std::vector<bool>{false, true, false, true, false, false, true, false, false, true}));
}

TEST(TuneHyperband, EachBracketPromotesTheTopFloorNOverEtaOfItsOwnRung) {
  // 1..27, eta 3: the brackets' first rungs are 1, 3, 9 and trials 0..11 go
  // to brackets 0 1 0 2 0 0 1 0 0 1 0 2 (the weighted round robin, 27:12:6).
  // The bracket-1 and -2 trials report a far better score at step 1, below
  // their first rung: they never stop there, and bracket 0's rung 1 does
  // not count them. Each row: trial, step, score, whether it stops.
  const Json settings{{"scheduler", "hyperband"}, {"min_resource", 1}, {"max_resource", 27}, {"reduction_factor", 3}};
  const auto tuner = make_tuner("search", search_config(unit_space(1), 12, 1, settings));
  ASSERT_EQ(tuner->suggest(12).size(), 12u);
  struct Report {
    int64_t trial, step;
    double score;
    bool stops;
  };
  const Report reports[] = {
      {0, 1, 5, false},     // bracket 0, rung 1: n=1
      {1, 1, -100, false},  // bracket 1: no rung at 1
      {1, 3, 2, false},     // bracket 1, rung 3: n=1
      {2, 1, 6, true},      // rung 1: n=2, 1 better
      {3, 1, -100, false},  // bracket 2: no rung at 1 or 3
      {3, 3, -100, false},
      {3, 9, 7, false},     // bracket 2, rung 9: n=1
      {4, 1, 4, false},     // rung 1: n=3, best
      {5, 1, 4.5, true},    // n=4: quota 1, 1 better
      {6, 1, -100, false},
      {6, 3, 1, false},     // bracket 1, rung 3: n=2, best
      {7, 1, 3, false},     // rung 1: n=5, best
      {8, 1, 3.5, false},   // n=6: quota 2, 1 better
      {9, 3, 1, true},      // bracket 1, rung 3: n=3, ties trial 6, which ranks ahead
      {10, 1, 3.8, true},   // rung 1: n=7: quota 2, 2 better
      {11, 9, 8, true},     // bracket 2, rung 9: n=2, 1 better
  };
  for (const Report& r : reports) {
    tuner->observe(r.trial, r.step, r.score, false, "");
    EXPECT_EQ(tuner->should_stop(r.trial), r.stops) << "trial " << r.trial << " at step " << r.step;
  }
}

// Trial curves: Branin(params) + 1/step, so early rungs rank as the end does.

struct Spent {
  double best = 1e300;
  int64_t epochs = 0;
  std::map<int64_t, int64_t> stopped_at;
};

Spent run_search(const Json& settings, uint64_t seed, size_t parallel) {
  const auto tuner = make_tuner("search", search_config(kBraninSpace, 60, seed, settings));
  Spent spent;
  for (;;) {
    const Json batch = tuner->suggest(parallel);
    if (batch.empty()) break;
    for (const Json& s : batch) {
      const int64_t id = s["trial"];
      const double base = branin(s["parameters"]);
      bool stopped = false;
      for (int64_t step = 1; step <= 27 && !stopped; ++step) {
        ++spent.epochs;
        tuner->observe(id, step, base + 1.0 / static_cast<double>(step), false, "");
        if (tuner->should_stop(id)) {
          stopped = true;
          spent.stopped_at[id] = step;
          tuner->observe(id, step, base + 1.0 / static_cast<double>(step), true, "early-stopped");
        }
      }
      if (!stopped) {
        spent.best = std::min(spent.best, base + 1.0 / 27);
        tuner->observe(id, 27, base + 1.0 / 27, true, "succeeded");
      }
    }
  }
  return spent;
}

TEST(TuneSearch, TpeWithAshaSavesEpochsAndBeatsRandomWithAsha) {
  const Json asha{{"scheduler", "asha"}, {"min_resource", 1}, {"max_resource", 27}, {"reduction_factor", 3}};
  Json tpe_asha = asha;
  tpe_asha["sampler"] = "tpe";
  double tpe_best = 0, random_best = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const Spent tpe = run_search(tpe_asha, seed, 2);
    const Spent random = run_search(asha, seed, 2);
    EXPECT_LT(tpe.epochs, 60 * 27 / 2) << seed;  // ASHA stops most trials early
    EXPECT_FALSE(tpe.stopped_at.empty());
    for (const auto& [id, step] : tpe.stopped_at) EXPECT_TRUE(step == 1 || step == 3 || step == 9) << step;
    tpe_best += tpe.best;
    random_best += random.best;
    // Deterministic for a seed.
    const Spent again = run_search(tpe_asha, seed, 2);
    EXPECT_EQ(again.stopped_at, tpe.stopped_at);
    EXPECT_EQ(again.epochs, tpe.epochs);
  }
  EXPECT_LT(tpe_best, random_best);
}

TEST(TuneSearch, MedianSchedulerStopsABadCurve) {
  const Json settings{{"sampler", "sobol"}, {"scheduler", "median"}, {"grace_steps", 2}, {"min_trials", 2}};
  const auto tuner = make_tuner("search", search_config(unit_space(1), 4, 1, settings));
  const Json trials = tuner->suggest(4);
  for (int i = 0; i < 2; ++i) {
    for (int step = 1; step <= 3; ++step) tuner->observe(trials[i]["trial"], step, 1.0, false, "");
    tuner->observe(trials[i]["trial"], 3, 1.0, true, "succeeded");
  }
  tuner->observe(trials[2]["trial"], 1, 5.0, false, "");
  EXPECT_FALSE(tuner->should_stop(trials[2]["trial"]));  // grace
  tuner->observe(trials[2]["trial"], 2, 5.0, false, "");
  EXPECT_TRUE(tuner->should_stop(trials[2]["trial"]));
  tuner->observe(trials[3]["trial"], 2, 0.5, false, "");
  EXPECT_FALSE(tuner->should_stop(trials[3]["trial"]));
}

// history_lag 2: trial k of a model-based sampler learns from trials
// 0 ... k-2 only, once they have finished. suggest answers fewer trials than
// asked for until then, and trial 2 is the same whether trial 1 finished
// before it was suggested or not. A sampler that ignores results (random)
// is never held back.
TEST(TuneSearch, AModelBasedSamplerLearnsOnlyFromTrialsThatPrecedeItByTheLag) {
  for (const std::string sampler : {"tpe", "gp", "cmaes", "nsga2"}) {
    SCOPED_TRACE(sampler);
    const Json settings = {{"sampler", sampler}, {"n_startup_trials", 1}, {"history_lag", 2}, {"population", 2},
                           {"population_size", 2}};
    auto trial_two = [&](bool one_finished_first) {
      const auto tuner = make_tuner("search", search_config(unit_space(2), 6, 3, settings));
      const Json first = tuner->suggest(4);
      EXPECT_EQ(first.size(), 2u) << first.dump();  // trial 2 waits for trial 0
      if (one_finished_first) tuner->observe(1, -1, 0.5, true, "succeeded");
      EXPECT_EQ(tuner->suggest(4).size(), 0u);  // trial 0 still runs
      tuner->observe(0, -1, 0.25, true, "succeeded");
      const Json next = tuner->suggest(4);
      // Trial 3 waits for trial 1 unless it finished.
      EXPECT_EQ(next.size(), one_finished_first ? 2u : 1u) << next.dump();
      return next.at(0);
    };
    const Json early = trial_two(true), late = trial_two(false);
    EXPECT_EQ(early["trial"], 2);
    EXPECT_EQ(early, late);
  }
  const auto random = make_tuner("search", search_config(unit_space(2), 6, 3, {{"history_lag", 2}}));
  EXPECT_EQ(random->suggest(4).size(), 4u);
}

// settings.history_lag: 0 opts out of the rule above, whatever
// parallel_trials says: no suggestion waits for a running trial, and trial
// k learns from whatever has finished when it is suggested (so the search
// depends on which trials finish first, as Optuna's parallel runs do).
TEST(TuneSearch, HistoryLagZeroNeverHoldsATrialBackAndLearnsFromWhateverFinished) {
  const Json settings = {{"sampler", "tpe"}, {"n_startup_trials", 1}, {"history_lag", 0}};
  auto trial_two = [&](bool one_finished_first) {
    Json config = search_config(unit_space(2), 6, 3, settings);
    config["parallel_trials"] = 2;
    const auto tuner = make_tuner("search", config);
    EXPECT_EQ(tuner->suggest(2).size(), 2u);
    tuner->observe(0, -1, 0.25, true, "succeeded");
    if (one_finished_first) tuner->observe(1, -1, 0.01, true, "succeeded");
    const Json next = tuner->suggest(4);
    EXPECT_EQ(next.size(), 4u) << next.dump();  // nothing waits for trial 1
    return next.at(0);
  };
  const Json early = trial_two(true), late = trial_two(false);
  EXPECT_EQ(early["trial"], 2);
  EXPECT_NE(early["parameters"], late["parameters"]);  // trial 1's result counted when it was there
  EXPECT_THROW(make_tuner("search", search_config(unit_space(2), 6, 3, {{"history_lag", -1}})), ConfigError);
}

// A search driven to the end with `parallel` trials at once, reports
// interleaved: each round the active trial with the highest id (or, with
// `lowest_first`, the lowest) reports its next epoch of a curve
// score = |x0 - 0.3| + 1/epoch, and stops when told or at epoch 9. Returns
// each trial's parameters and the epoch it ended at.
std::map<int64_t, std::pair<Json, int64_t>> drive(const Json& settings, int parallel, bool lowest_first) {
  Json config = search_config(unit_space(2), 12, 4, settings);
  config["parallel_trials"] = parallel;
  const auto tuner = make_tuner("search", config);
  std::map<int64_t, std::pair<Json, int64_t>> out;
  std::map<int64_t, int64_t> active;  // trial -> epochs reported
  for (;;) {
    for (const Json& s : tuner->suggest(static_cast<size_t>(parallel) - active.size())) {
      out[s["trial"]] = {s["parameters"], 0};
      active[s["trial"]] = 0;
    }
    if (active.empty()) return out;
    const auto it = lowest_first ? active.begin() : std::prev(active.end());
    const int64_t id = it->first, epoch = ++it->second;
    const double score = std::abs(out[id].first["x0"].get<double>() - 0.3) + 1.0 / static_cast<double>(epoch);
    tuner->observe(id, epoch, score, false, "");
    const bool stop = tuner->should_stop(id);
    if (stop || epoch == 9) {
      tuner->observe(id, -1, score, true, stop ? "early-stopped" : "succeeded");
      out[id].second = epoch;
      active.erase(it);
    }
  }
}

// Issue 23: a scheduler's decisions about trial k read only trials
// 0 ... k - history_lag, which finished before k was suggested; so ASHA,
// Hyperband and the median rule stop the same trials at the same epochs
// whether trials run one at a time or two at once with reports interleaved
// either way (history_lag 2), composed with random and TPE.
TEST(TuneSearch, SchedulerDecisionsDoNotDependOnTheOrderOfReports) {
  const Json base = {{"max_resource", 9}, {"reduction_factor", 3}, {"history_lag", 2}, {"n_startup_trials", 3}};
  for (const std::string sampler : {"random", "tpe"})
    for (const std::string scheduler : {"asha", "hyperband", "median"}) {
      SCOPED_TRACE(sampler + " x " + scheduler);
      Json settings = base;
      settings["sampler"] = sampler;
      settings["scheduler"] = scheduler;
      settings["min_trials"] = 1;
      const auto sequential = drive(settings, 1, true);
      ASSERT_EQ(sequential.size(), 12u);
      size_t stopped = 0;
      for (const auto& [id, trial] : sequential) stopped += trial.second < 9;
      EXPECT_GT(stopped, 0u);  // the scheduler did stop trials
      EXPECT_EQ(drive(settings, 2, true), sequential);
      EXPECT_EQ(drive(settings, 2, false), sequential);
      EXPECT_EQ(drive(settings, 3, false), sequential);
    }
}

// ZDT1 (Zitzler, Deb & Thiele 2000) on x in [0, 1]^n, both minimised:
// f1 = x0, f2 = g (1 - sqrt(f1 / g)), g = 1 + 9 mean(x1 ... x(n-1)); the
// Pareto front is f2 = 1 - sqrt(f1) (g = 1), every other trial lies above it.
std::pair<double, double> zdt1(const Json& p, size_t n) {
  double sum = 0;
  for (size_t d = 1; d < n; ++d) sum += p["x" + std::to_string(d)].get<double>();
  const double f1 = p["x0"].get<double>(), g = 1 + 9 * sum / static_cast<double>(n - 1);
  return {f1, g * (1 - std::sqrt(f1 / g))};
}

// The exact hypervolume (area) that the points dominate up to `reference`,
// both coordinates minimised: sorted by the first coordinate, each point
// that lowers the staircase adds the band from its f2 up to the previous
// step's, from its f1 to the reference.
double hypervolume_2d(std::vector<std::pair<double, double>> points, std::pair<double, double> reference) {
  std::sort(points.begin(), points.end());
  double area = 0, ceiling = reference.second;  // the staircase's height so far
  for (const auto& [f1, f2] : points) {
    if (f1 >= reference.first || f2 >= ceiling) continue;  // outside, or dominated by an earlier point
    area += (reference.first - f1) * (ceiling - f2);
    ceiling = f2;
  }
  return area;
}

Json two_objective_config(const Json& space, int64_t max_trials, uint64_t seed, const Json& settings) {
  Json config = search_config(space, max_trials, seed, settings);
  config["objectives"] = {{{"metric", "f1"}, {"goal", "minimize"}}, {{"metric", "f2"}, {"goal", "minimize"}}};
  config["objective"] = config["objectives"][0];
  return config;
}

// A two-objective search on ZDT1 driven with `parallel` trials at once:
// each round the active trial with the lowest id (or, with `lowest_first`
// false, the highest) finishes, told both objectives as the host tells
// them (observe_objectives, then the final observe of the first). Returns
// the trials in suggestion order, each {trial, parameters, f1, f2}.
Json run_zdt1(const Json& settings, int64_t trials, uint64_t seed, size_t dims, int parallel, bool lowest_first) {
  Json config = two_objective_config(unit_space(dims), trials, seed, settings);
  config["parallel_trials"] = parallel;
  const auto tuner = make_tuner("search", config);
  Json out = Json::array();
  std::map<int64_t, Json> active;
  for (;;) {
    for (const Json& s : tuner->suggest(static_cast<size_t>(parallel) - active.size())) active[s["trial"]] = s;
    if (active.empty()) return out;
    const auto it = lowest_first ? active.begin() : std::prev(active.end());
    const auto [f1, f2] = zdt1(it->second["parameters"], dims);
    tuner->observe_objectives(it->first, {f1, f2});
    tuner->observe(it->first, -1, f1, true, "succeeded");
    Json row = it->second;
    row["f1"] = f1;
    row["f2"] = f2;
    out.push_back(row);
    active.erase(it);
  }
}

double zdt1_hypervolume(const Json& trials) {
  std::vector<std::pair<double, double>> points;
  for (const Json& t : trials) points.emplace_back(t["f1"].get<double>(), t["f2"].get<double>());
  return hypervolume_2d(points, {1.1, 11.0});
}

TEST(TuneNsga2, TheHypervolumeIsExactOnAStaircase) {
  // (0.2, 0.8), (0.5, 0.4), (0.9, 0.1) under (1, 1), cut into columns:
  // [0.2, 0.5) x [0.8, 1): 0.06, [0.5, 0.9) x [0.4, 1): 0.24, [0.9, 1) x [0.1, 1): 0.09;
  // (0.6, 0.6) is dominated, (2, 0) outside.
  EXPECT_NEAR(hypervolume_2d({{0.5, 0.4}, {0.2, 0.8}, {0.9, 0.1}, {0.6, 0.6}, {2, 0}}, {1, 1}), 0.39, 1e-12);
  EXPECT_NEAR(hypervolume_2d({{0, 0}}, {1, 2}), 2.0, 1e-12);
  EXPECT_EQ(hypervolume_2d({}, {1, 1}), 0.0);
}

// Issue 23's multi-objective learner: on ZDT1 (4 parameters), 120 trials
// in generations of 20, NSGA-II's trials dominate more of the objective
// space than random search's with the same budget: with SBX (the default)
// on every seed, with uniform crossover (Optuna's default, weaker on
// continuous parameters: it only recombines values) on the mean of the seeds.
TEST(TuneNsga2, BeatsRandomSearchOnZdt1ByHypervolume) {
  for (const std::string crossover : {"sbx", "uniform"}) {
    double nsga_total = 0, random_total = 0;
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      const double nsga = zdt1_hypervolume(
          run_zdt1({{"sampler", "nsga2"}, {"population_size", 20}, {"crossover", crossover}}, 120, seed, 4, 1, true));
      const double random = zdt1_hypervolume(run_zdt1({{"sampler", "random"}}, 120, seed, 4, 1, true));
      if (crossover == "sbx") {
        EXPECT_GT(nsga, random) << "seed " << seed;
      }
      nsga_total += nsga;
      random_total += random;
    }
    EXPECT_GT(nsga_total, random_total) << crossover;
    std::cout << "ZDT1 hypervolume, mean of 5 seeds, " << crossover << ": nsga2 " << nsga_total / 5 << ", random "
              << random_total / 5 << "\n";
  }
}

// Generation g's trial k learns only from trials 0 ... k - history_lag of
// generations before g: the same trials whether they run one, two or
// three at a time and whichever finishes first (history_lag 3).
TEST(TuneNsga2, TheSameTrialsAtAnyParallelismAndOrderOfFinishing) {
  const Json settings = {{"sampler", "nsga2"}, {"population_size", 6}, {"history_lag", 3}, {"crossover", "sbx"}};
  auto by_id = [](Json trials) {
    std::sort(trials.begin(), trials.end(), [](const Json& a, const Json& b) { return a["trial"] < b["trial"]; });
    return trials;
  };
  const Json one = by_id(run_zdt1(settings, 30, 7, 3, 1, true));
  ASSERT_EQ(one.size(), 30u);
  EXPECT_EQ(by_id(run_zdt1(settings, 30, 7, 3, 2, false)), one);
  EXPECT_EQ(by_id(run_zdt1(settings, 30, 7, 3, 3, false)), one);
  EXPECT_EQ(by_id(run_zdt1(settings, 30, 7, 3, 3, true)), one);
  EXPECT_NE(by_id(run_zdt1(settings, 30, 8, 3, 1, true)), one);  // another seed, other trials
  // Later generations are bred, not drawn: a child repeats a parent's value
  // of some parameter (crossover and mutation leave most values as they were).
  std::set<double> seen;
  size_t repeated = 0;
  for (const Json& t : one) {
    for (const auto& [name, value] : t["parameters"].items()) repeated += t["trial"] >= 6 && seen.count(value.get<double>());
    for (const auto& [name, value] : t["parameters"].items()) seen.insert(value.get<double>());
  }
  EXPECT_GT(repeated, 0u);
}

// Multi-objective TPE: its "good" trials are the best by non-dominated
// front and crowding distance. On ZDT1 (4 parameters), 120 trials, its
// trials dominate more of the objective space than random search's with
// the same budget, on every seed.
TEST(TuneTpe, SeveralObjectivesBeatRandomSearchOnZdt1ByHypervolume) {
  double tpe_total = 0, random_total = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const double tpe = zdt1_hypervolume(run_zdt1({{"sampler", "tpe"}}, 120, seed, 4, 1, true));
    const double random = zdt1_hypervolume(run_zdt1({{"sampler", "random"}}, 120, seed, 4, 1, true));
    EXPECT_GT(tpe, random) << "seed " << seed;
    tpe_total += tpe;
    random_total += random;
  }
  std::cout << "ZDT1 hypervolume, mean of 5 seeds: tpe " << tpe_total / 5 << ", random " << random_total / 5 << "\n";
}

// With history_lag 3, trial k learns from trials 0 ... k - 3 only: the same
// trials at 1, 2 or 3 at a time, whichever finishes first; multivariate too.
TEST(TuneTpe, SeveralObjectivesGiveTheSameTrialsAtAnyParallelism) {
  for (const bool multivariate : {false, true}) {
    const Json settings = {{"sampler", "tpe"}, {"n_startup_trials", 5}, {"history_lag", 3},
                           {"multivariate", multivariate}};
    auto by_id = [](Json trials) {
      std::sort(trials.begin(), trials.end(), [](const Json& a, const Json& b) { return a["trial"] < b["trial"]; });
      return trials;
    };
    const Json one = by_id(run_zdt1(settings, 30, 7, 3, 1, true));
    ASSERT_EQ(one.size(), 30u);
    EXPECT_EQ(by_id(run_zdt1(settings, 30, 7, 3, 2, false)), one) << multivariate;
    EXPECT_EQ(by_id(run_zdt1(settings, 30, 7, 3, 3, false)), one) << multivariate;
    EXPECT_NE(by_id(run_zdt1(settings, 30, 8, 3, 1, true)), one) << multivariate;
  }
}

TEST(TuneNsga2, SeveralObjectivesNeedNoOtherLearnerAndSettingsNameTheirField) {
  auto message = [](const Json& settings, bool two) {
    try {
      const Json space = unit_space(2);
      make_tuner("search", two ? two_objective_config(space, 4, 1, settings) : search_config(space, 4, 1, settings));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message({{"sampler", "nsga2"}}, true), "accepted");
  EXPECT_EQ(message({{"sampler", "nsga2"}}, false), "accepted");  // one objective: a plain genetic algorithm
  EXPECT_EQ(message({{"sampler", "tpe"}}, true), "accepted");  // multi-objective TPE
  EXPECT_EQ(message({{"sampler", "gp"}}, true).rfind("objectives: this search learns from one objective", 0), 0u);
  EXPECT_EQ(message({{"sampler", "nsga2"}, {"scheduler", "median"}}, true).rfind("objectives: ", 0), 0u);
  EXPECT_EQ(message({{"sampler", "nsga2"}, {"population_size", 1}}, true),
            "settings.population_size: an integer >= 2 is required");
  EXPECT_EQ(message({{"sampler", "nsga2"}, {"crossover", "blend"}}, true),
            "settings.crossover: expected uniform or sbx, got \"blend\"");
  for (const char* key : {"mutation_prob", "crossover_prob", "swapping_prob"})
    EXPECT_EQ(message({{"sampler", "nsga2"}, {key, 1.5}}, true),
              std::string("settings.") + key + ": a number in [0, 1] is required");
  EXPECT_EQ(message({{"sampler", "nsga2"}, {"sbx_eta", 0}}, true).rfind("settings.sbx_eta: a number in (0", 0), 0u);
  // The host hands a value per objective; another count is refused.
  const auto tuner = make_tuner("nsga2", two_objective_config(unit_space(2), 4, 1, Json::object()));
  tuner->suggest(1);
  EXPECT_THROW(tuner->observe_objectives(0, {1.0}), ConfigError);
  tuner->observe_objectives(0, {1.0, -2.0});
  EXPECT_EQ(tuner->trials().at(0).objective_scores, (std::vector<double>{1.0, -2.0}));  // both minimised
}

TEST(TuneSearch, RejectsUnknownSamplersAndSchedulersNamingTheField) {
  auto message = [](const Json& settings) {
    try {
      make_tuner("search", search_config(unit_space(1), 4, 1, settings));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({{"sampler", "annealing"}}),
            "settings.sampler: expected random, grid, sobol, tpe, gp, cmaes or nsga2, got 'annealing'");
  EXPECT_EQ(message({{"scheduler", "bohb"}}),
            "settings.scheduler: expected none, median, asha, hyperband or pbt, got 'bohb'");
  EXPECT_EQ(message({{"sampler", 3}}), "settings.sampler: a name is required");
  EXPECT_EQ(message({{"scheduler", "asha"}}).rfind("settings.max_resource: required for asha", 0), 0u);
  EXPECT_EQ(message({{"sampler", "cmaes"}, {"population", 1}}), "settings.population: an integer >= 2 is required");
  EXPECT_EQ(message({{"sampler", "tpe"}, {"multivariate", "yes"}}), "settings.multivariate: true or false is required");
}

}  // namespace
}  // namespace kiln::tune

// kiln_bench_tune_probe: kiln's search algorithms (kiln_tune_core, the code
// behind kiln_tune.so) driven by ask/tell over stdin/stdout, so that
// bench/tuning/compare.py can give them and Optuna the very same objective
// functions, written once in Python.
//
//   first line:  the tuner config create() receives (docs/tuning.md), plus
//                "algorithm" (default "search")
//   "ask"        -> {"trial": ID, "parameters": {...}}
//   "tell ID V"  -> {"ok": true}   (a final, succeeded report of value V)
//   "tell ID V1 V2 ..." -> {"ok": true}   (several objectives: every value
//                through observe_objectives, as the host hands them, then V1)
//   "seconds"    -> {"seconds": S} (time spent inside suggest and observe)
// Any error: {"error": "..."} on stdout and exit status 1.
#include "tuner.hpp"

#include <chrono>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using kiln::tune::Json;
using Clock = std::chrono::steady_clock;

int fail(const std::string& message) {
  std::cout << Json{{"error", message}}.dump() << std::endl;
  return 1;
}

}  // namespace

int main() {
  try {
    std::string line;
    if (!std::getline(std::cin, line)) return fail("expected the tuner config on the first line");
    const Json config = Json::parse(line);
    const auto tuner = kiln::tune::make_tuner(config.value("algorithm", "search"), config);
    Clock::duration inside{};
    while (std::getline(std::cin, line)) {
      std::istringstream words(line);
      std::string verb;
      words >> verb;
      Json reply;
      if (verb == "ask") {
        const auto start = Clock::now();
        const Json suggested = tuner->suggest(1);
        inside += Clock::now() - start;
        if (suggested.empty()) return fail("the sampler has nothing more to propose");
        reply = suggested.at(0);
      } else if (verb == "tell") {
        int64_t trial = 0;
        std::vector<double> values;
        words >> trial;
        for (double v = 0; words >> v;) values.push_back(v);
        if (!words.eof() || values.empty()) return fail("tell: expected a trial id and values, got '" + line + "'");
        const auto start = Clock::now();
        if (values.size() > 1) tuner->observe_objectives(trial, values);
        tuner->observe(trial, -1, values[0], true, "succeeded");
        inside += Clock::now() - start;
        reply = {{"ok", true}};
      } else if (verb == "seconds") {
        reply = {{"seconds", std::chrono::duration<double>(inside).count()}};
      } else {
        return fail("unknown command '" + line + "' (ask, tell ID VALUE, seconds)");
      }
      std::cout << reply.dump() << std::endl;
    }
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

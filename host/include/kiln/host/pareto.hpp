// Non-dominated sorting's first front, shared by the engine (a
// multi-objective tuning step's result) and the UI (the front of a step
// still running).
#pragma once

#include <cstddef>
#include <vector>

namespace kiln::host {

// The indices of the rows no other row dominates (no worse in every
// coordinate and better in one), in order. Every coordinate is a score:
// lower is better (negate a value to be maximized).
std::vector<size_t> pareto_front(const std::vector<std::vector<double>>& scores);

}  // namespace kiln::host

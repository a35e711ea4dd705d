// Non-dominated sorting and crowding distance (Deb, Pratap, Agarwal &
// Meyarivan 2002) over rows of scores, lower is better: how NSGA-II picks
// its parents and multi-objective TPE its "good" trials.
#pragma once

#include <cstddef>
#include <vector>

namespace kiln::tune {

// Each row's non-dominated front (0: the first) and, for the rows of the
// fronts select_by_front visited, its crowding distance in that front.
struct FrontRanking {
  std::vector<size_t> rank;
  std::vector<double> crowding;
};

// The best `room` rows: whole fronts in order while they fit (each front's
// rows in index order), the first front that does not fit cut to the rows
// of largest crowding distance (ties: in index order). Their indices, in
// that order. Every row must have as many scores as the first.
std::vector<size_t> select_by_front(const std::vector<std::vector<double>>& scores, size_t room,
                                    FrontRanking* ranking = nullptr);

}  // namespace kiln::tune

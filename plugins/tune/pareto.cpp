#include "pareto.hpp"

#include <algorithm>
#include <limits>

namespace kiln::tune {
namespace {

// No worse in every score and better in one.
bool dominates(const std::vector<double>& a, const std::vector<double>& b) {
  bool better = false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] > b[i]) return false;
    better = better || a[i] < b[i];
  }
  return better;
}

// Fast non-dominated sorting (the paper's, O(m n^2)): the fronts, each in
// index order; sets every row's rank.
std::vector<std::vector<size_t>> fronts_of(const std::vector<std::vector<double>>& scores, std::vector<size_t>& rank) {
  const size_t n = scores.size();
  std::vector<std::vector<size_t>> dominated(n);  // whom i dominates
  std::vector<size_t> count(n, 0);                // how many dominate i
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j)
      if (i != j && dominates(scores[i], scores[j])) {
        dominated[i].push_back(j);
        ++count[j];
      }
  rank.assign(n, 0);
  std::vector<std::vector<size_t>> fronts;
  std::vector<size_t> current;
  for (size_t i = 0; i < n; ++i)
    if (count[i] == 0) current.push_back(i);
  while (!current.empty()) {
    std::vector<size_t> next;
    for (const size_t i : current) {
      rank[i] = fronts.size();
      for (const size_t j : dominated[i])
        if (--count[j] == 0) next.push_back(j);
    }
    std::sort(next.begin(), next.end());
    fronts.push_back(std::move(current));
    current = std::move(next);
  }
  return fronts;
}

// Crowding distance within one front: per objective, the normalised gap
// between each member's neighbours; the extremes get infinity.
void crowding_in(const std::vector<std::vector<double>>& scores, const std::vector<size_t>& front,
                 std::vector<double>& crowding) {
  for (const size_t i : front) crowding[i] = 0;
  if (front.size() <= 2) {
    for (const size_t i : front) crowding[i] = std::numeric_limits<double>::infinity();
    return;
  }
  const size_t m = scores[front.front()].size();
  for (size_t k = 0; k < m; ++k) {
    std::vector<size_t> order = front;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a][k] < scores[b][k]; });
    const double low = scores[order.front()][k], high = scores[order.back()][k];
    crowding[order.front()] = crowding[order.back()] = std::numeric_limits<double>::infinity();
    if (!(high > low)) continue;
    for (size_t r = 1; r + 1 < order.size(); ++r)
      crowding[order[r]] += (scores[order[r + 1]][k] - scores[order[r - 1]][k]) / (high - low);
  }
}

}  // namespace

std::vector<size_t> select_by_front(const std::vector<std::vector<double>>& scores, size_t room,
                                    FrontRanking* ranking) {
  FrontRanking local;
  FrontRanking& r = ranking != nullptr ? *ranking : local;
  const auto fronts = fronts_of(scores, r.rank);
  r.crowding.assign(scores.size(), 0);
  std::vector<size_t> chosen;
  for (const std::vector<size_t>& front : fronts) {
    if (chosen.size() >= room) break;
    crowding_in(scores, front, r.crowding);
    std::vector<size_t> order = front;
    if (chosen.size() + order.size() > room)
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r.crowding[a] > r.crowding[b]; });
    for (size_t i = 0; i < order.size() && chosen.size() < room; ++i) chosen.push_back(order[i]);
  }
  return chosen;
}

}  // namespace kiln::tune

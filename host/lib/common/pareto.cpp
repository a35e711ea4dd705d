#include <kiln/host/pareto.hpp>

namespace kiln::host {

std::vector<size_t> pareto_front(const std::vector<std::vector<double>>& scores) {
  const auto dominates = [](const std::vector<double>& a, const std::vector<double>& b) {
    bool better = false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] > b[i]) return false;
      better = better || a[i] < b[i];
    }
    return better;
  };
  std::vector<size_t> front;
  for (size_t i = 0; i < scores.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < scores.size() && !dominated; ++j) dominated = j != i && dominates(scores[j], scores[i]);
    if (!dominated) front.push_back(i);
  }
  return front;
}

}  // namespace kiln::host

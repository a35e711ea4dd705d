#include "schedule.hpp"

#include <algorithm>
#include <cmath>

namespace kiln::ml {

double lr_at_epoch(const LrSchedule& s, int64_t epoch) {
  if (epoch < s.warmup_epochs) return s.lr * static_cast<double>(epoch + 1) / static_cast<double>(s.warmup_epochs + 1);
  const int64_t e = epoch - s.warmup_epochs;
  if (s.kind == "step") return s.lr * std::pow(s.gamma, static_cast<double>(e / std::max<int64_t>(s.step_size, 1)));
  if (s.kind == "cosine") {
    const auto span = static_cast<double>(std::max<int64_t>(1, s.epochs - s.warmup_epochs));
    return s.lr * 0.5 * (1.0 + std::cos(3.14159265358979323846 * static_cast<double>(e) / span));
  }
  return s.lr;
}

}  // namespace kiln::ml

// Learning-rate schedules, per epoch and torch-free (unit-tested alone). The
// trainer sets the optimizer's rate from this at the start of every epoch,
// so a resumed run needs no scheduler state: the epoch number is enough.
#pragma once

#include <cstdint>
#include <string>

namespace kiln::ml {

struct LrSchedule {
  std::string kind = "none";  // none | step | cosine
  double lr = 1e-3;           // the base rate
  int64_t step_size = 10;     // step: epochs between decays
  double gamma = 0.1;         // step: decay factor
  int64_t warmup_epochs = 0;  // linear warm-up before the schedule
  int64_t epochs = 1;         // cosine: anneals to 0 at the end of training
};

// The rate of `epoch` (0-based): during warm-up lr * (epoch + 1) / (warmup + 1),
// then the schedule counted from the end of the warm-up.
double lr_at_epoch(const LrSchedule& schedule, int64_t epoch);

}  // namespace kiln::ml

// The torch plugin's components. Declared here without LibTorch headers so
// the registration TU (plugin.cpp) stays cheap; the heavy work is behind the
// torch-free interfaces of trainer.hpp and predict.hpp.
#pragma once

#include <kiln/sdk.hpp>

namespace kiln::ml {

// train.torch: an MLP or CNN trained with LibTorch on a Dataset; writes a
// Model and a TrainingHistory, reporting per-epoch metrics as they happen.
struct TrainTorch {
  static Manifest manifest();
  static void warm_up();
  void run(Context& ctx);
};

// evaluate: a Model on a test Dataset; writes a Metrics artifact and the
// output parameter `passed` against the given thresholds.
struct Evaluate {
  static Manifest manifest();
  static void warm_up();
  void run(Context& ctx);
};

// serve.torch: the serving runtime (no step): kiln Model artifacts and
// TorchScript modules behind KilnServingApi (serving_runtime.cpp).
struct ServeTorch {
  static Manifest manifest();
  static const KilnServingApi* serving();
};

}  // namespace kiln::ml

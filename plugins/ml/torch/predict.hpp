// Batch inference on a Dataset with a Model artifact, torch-free interface
// (implemented in model.cpp): what evaluate and the serving runtime call.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "compute_options.hpp"
#include "dataset.hpp"
#include "model_spec.hpp"

namespace kiln::ml {

struct Predictions {
  ModelSpec spec;
  int64_t rows = 0;
  int64_t width = 0;          // classes (probabilities) or 1 (regression)
  std::vector<float> values;  // row-major [rows, width]
};

// Rows per inference batch unless told otherwise: past a few hundred rows a
// CNN's im2col buffers outgrow the caches and each row costs more.
inline constexpr int64_t kEvalBatchRows = 256;

// Loads the model in `model_dir` onto `device` and predicts every row of
// `data` in batches. Throws std::runtime_error when the data's feature shape
// is not the model's, std::invalid_argument when the device is not usable.
Predictions predict_dataset(const std::filesystem::path& model_dir, const Dataset& data, int64_t batch_size,
                            int64_t threads, const DeviceRequest& device = {});

}  // namespace kiln::ml

// Small synthetic datasets with known answers, written in the Dataset
// layout, and helpers to run train.torch / evaluate on them.
#pragma once

#include <filesystem>
#include <string>

#include "dataset.hpp"
#include "test_support.hpp"

namespace kiln::test {

// Two Gaussian blobs per class in `dims` dimensions, well apart: linearly separable.
ml::Dataset blobs(int64_t rows, int64_t classes, int64_t dims, unsigned seed);
// y = 2x + 1 for x uniform in [-1, 1] (one feature).
ml::Dataset line(int64_t rows, unsigned seed);
// U8 images [1, 8, 8]: class "top" has its upper half bright, "bottom" its lower half.
ml::Dataset halves(int64_t rows, unsigned seed);
// samples/data/digits.csv.gz (1797 rows: 64 pixel columns + label).
ml::Dataset sample_digits();

std::filesystem::path save(const std::filesystem::path& dir, const ml::Dataset& data);

// train.torch on `train` (and `validation` when not empty) with `params`, in `dir`.
host::StepOutcome train(const std::filesystem::path& dir, const host::Json& params, RecordingSink& sink,
                        const std::filesystem::path& train, const std::filesystem::path& validation = {},
                        const std::filesystem::path& transform = {});
// train() with the step failing after epoch `epoch` (KILN_TEST_TRAIN_FAIL_AFTER_EPOCH,
// unset again before returning).
host::StepOutcome train_failing_after(int epoch, const std::filesystem::path& dir, const host::Json& params,
                                      const std::filesystem::path& train, const std::filesystem::path& validation);
host::StepOutcome evaluate(const std::filesystem::path& dir, const host::Json& params, RecordingSink& sink,
                           const std::filesystem::path& model, const std::filesystem::path& test);

host::Json read_json(const std::filesystem::path& path);

}  // namespace kiln::test

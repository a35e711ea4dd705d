// A 64-bit, word-at-a-time hash (not cryptographic: it tells one run's data
// or checkpoint from another's), torch-free: train.torch's data digest and
// its checkpoint's checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dataset.hpp"

namespace kiln::ml {

// Folds `size` bytes into `hash`.
void hash_fold(uint64_t& hash, const void* data, size_t size);
// 16 lowercase hex digits.
std::string hash_hex(uint64_t value);

// The features and labels of both datasets, as hash_hex.
std::string data_digest(const Dataset& train, const Dataset* validation);

}  // namespace kiln::ml

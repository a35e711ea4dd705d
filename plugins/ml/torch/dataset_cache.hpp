// Datasets read once per process: a tuning step's warm worker runs one
// trial after another on the same store artifacts, and each trial read and
// hashed both datasets again (~0.6 ms of every trial on digits, issue 23).
// An entry is the directory with the device, inode, size, modification
// and change time of its two files, so a dataset changed in place is read
// again; one changed less than a second before it is read is not kept (a
// change within the same timestamp tick would not show). The last four
// used are kept, 512 MiB in all (a bigger one is read every time, as
// before). Thread-safe: the inprocess executor runs steps side by side in
// one process.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "dataset.hpp"

namespace kiln::ml {

struct CachedDataset {
  std::shared_ptr<const Dataset> data;
  uint64_t load = 0;  // unique to this read in this process (0: not kept): keys what is derived from it
};

// load_dataset(dir), or the copy read before if its files are unchanged.
CachedDataset cached_dataset(const std::filesystem::path& dir);

// data_digest of the two, computed once per pair of reads.
std::string cached_data_digest(const CachedDataset& train, const CachedDataset* validation);

}  // namespace kiln::ml

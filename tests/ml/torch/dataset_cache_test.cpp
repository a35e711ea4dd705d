// train.torch's and evaluate's dataset cache (dataset_cache.hpp) on files
// written here: a dataset read again is the same object, one rewritten in
// place (the same inode and size) is read again, one written less than a
// second before is not kept, the last four used are, and the digest is
// data_digest's. Torch-free.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "data_digest.hpp"
#include "dataset_cache.hpp"
#include "torch_test_data.hpp"

namespace kiln::test {
namespace {
namespace fs = std::filesystem;
using ml::cached_data_digest;
using ml::cached_dataset;
using ml::CachedDataset;

ino_t inode_of(const fs::path& file) {
  struct stat st {};
  EXPECT_EQ(::stat(file.c_str(), &st), 0) << file;
  return st.st_ino;
}

// Overwrites `file` with `bytes` in place: no truncation, rename or new inode.
void overwrite_in_place(const fs::path& file, const std::string& bytes) {
  const int fd = ::open(file.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << file;
  EXPECT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

TEST(DatasetCache, KeepsADatasetUntilItsFilesChangeAndTheLastFourUsed) {
  const TempDir dir;
  const auto train = save(dir / "train", blobs(16, 2, 3, 1));
  const auto val = save(dir / "val", blobs(8, 2, 3, 2));
  std::vector<fs::path> more;
  for (unsigned i = 0; i < 4; ++i) more.push_back(save(dir / ("more" + std::to_string(i)), blobs(8, 2, 3, 10 + i)));
  // Written just now: read every time (a change within the same timestamp
  // tick would not show in the stamp).
  EXPECT_EQ(cached_dataset(train).load, 0u);
  EXPECT_NE(cached_dataset(train).data, cached_dataset(train).data);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));

  const CachedDataset first = cached_dataset(train);
  ASSERT_NE(first.load, 0u);
  EXPECT_EQ(cached_dataset(train).data, first.data);  // the same object: not read again
  const CachedDataset v = cached_dataset(val);
  EXPECT_EQ(cached_data_digest(first, &v), ml::data_digest(*first.data, v.data.get()));
  EXPECT_EQ(cached_data_digest(first, nullptr), ml::data_digest(*first.data, nullptr));

  // Rewritten in place, the same size: read again, digest and all.
  const auto other = save(dir / "other", blobs(16, 2, 3, 9));
  const std::string bytes = read_text(other / "data.safetensors");
  ASSERT_EQ(bytes.size(), fs::file_size(train / "data.safetensors"));
  const ino_t inode = inode_of(train / "data.safetensors");
  overwrite_in_place(train / "data.safetensors", bytes);
  EXPECT_EQ(inode_of(train / "data.safetensors"), inode);
  const CachedDataset changed = cached_dataset(train);
  EXPECT_NE(changed.data, first.data);
  EXPECT_EQ(changed.data->features.bytes, ml::load_dataset(other).features.bytes);
  EXPECT_NE(cached_data_digest(changed, &v), cached_data_digest(first, &v));
  EXPECT_EQ(cached_data_digest(changed, &v), ml::data_digest(*changed.data, v.data.get()));

  // Four kept: after `val` four others were read, so `val` is read again; the
  // last four are the same objects.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // `train` was just rewritten
  std::vector<CachedDataset> kept;
  for (const auto& path : more) kept.push_back(cached_dataset(path));
  for (size_t i = 0; i < more.size(); ++i) EXPECT_EQ(cached_dataset(more[i]).data, kept[i].data) << i;
  EXPECT_NE(cached_dataset(val).data, v.data);
}

}  // namespace
}  // namespace kiln::test

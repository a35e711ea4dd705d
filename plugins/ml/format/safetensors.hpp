// Reading and writing tensors in the safetensors layout: a little-endian u64
// header length, a JSON header naming each tensor's dtype, shape and byte
// range, then the raw little-endian buffers. Chosen because Python reads it
// with numpy alone (docs/formats.md) and LibTorch tensors map onto it 1:1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace kiln::ml {

enum class DType { Bool, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64 };

std::size_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "I64", "BOOL", ...
std::string dtype_name(DType dtype);
// Throws std::invalid_argument naming the unknown spelling.
DType parse_dtype(const std::string& name);

// One dense, row-major, little-endian tensor that owns its bytes.
struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;

  Tensor() = default;
  Tensor(DType type, std::vector<int64_t> dims);

  int64_t numel() const;
  // Elements per index of the first dimension (1 for a vector).
  int64_t row_numel() const;
  std::size_t row_bytes() const { return static_cast<std::size_t>(row_numel()) * dtype_size(dtype); }
  int64_t rows() const { return shape.empty() ? 1 : shape.front(); }

  // Typed views; the caller must ask for the tensor's own element type.
  template <class T>
  T* data() {
    return reinterpret_cast<T*>(bytes.data());
  }
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(bytes.data());
  }

  // A new tensor holding rows `indices` (in that order) of this one.
  Tensor gather_rows(const std::vector<int64_t>& indices) const;
  // Every element converted to float (any numeric dtype except F16/BF16).
  std::vector<float> to_float() const;
  static Tensor from_float(const std::vector<float>& values, std::vector<int64_t> dims);
};

struct TensorFile {
  std::map<std::string, Tensor> tensors;
  // The header's "__metadata__": string keys to string values, as the format requires.
  std::map<std::string, std::string> metadata;
};

// Writes atomically (temporary name, rename), without fsync: the host's
// store syncs a step's outputs when it commits them (see write_atomic).
// Throws std::runtime_error.
void write_safetensors(const std::filesystem::path& path, const TensorFile& file);
// The same from borrowed tensors, so large datasets are written without a copy.
using TensorRefs = std::map<std::string, const Tensor*>;
void write_safetensors(const std::filesystem::path& path, const TensorRefs& tensors,
                       const std::map<std::string, std::string>& metadata);
// Writes over `path` in place: no temporary file, rename or new inode (a
// torn write leaves a torn file). For double-buffered checkpoints, whose
// reader checks a checksum and falls back to the other copy: a new file
// and a rename per epoch cost the file system an inode and new blocks
// each time. Throws std::runtime_error.
void overwrite_safetensors(const std::filesystem::path& path, const TensorFile& file);
// Validates the header (size, dtypes, shapes against byte ranges, ranges inside
// the file and not overlapping). Throws std::runtime_error naming the file and tensor.
TensorFile read_safetensors(const std::filesystem::path& path);
// The same over a file's bytes already read; `path` only names it in errors.
TensorFile parse_safetensors(const std::string& content, const std::filesystem::path& path);

// Writes text atomically (as write_safetensors); shared by the dataset,
// transform and model writers.
void write_text_atomic(const std::filesystem::path& path, const std::string& text);
std::string read_text(const std::filesystem::path& path);
// Copies a directory tree (regular files and directories only) into `to`,
// created writable whatever the source's modes: inputs come from the store
// read-only, and inside a container step root has no CAP_DAC_OVERRIDE to
// write into a read-only directory it has just created.
void copy_tree_writable(const std::filesystem::path& from, const std::filesystem::path& to);
// fsyncs one file or directory. Throws std::runtime_error.
void sync_path(const std::filesystem::path& path);
// fsyncs every file and directory under `dir` and `dir` itself: for trees
// kept outside the store (a published model version), before they are
// renamed into place. Throws std::runtime_error.
void sync_tree(const std::filesystem::path& dir);

}  // namespace kiln::ml

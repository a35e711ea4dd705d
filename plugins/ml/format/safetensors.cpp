#include "safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <type_traits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

namespace kiln::ml {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::Bool, "BOOL", 1}, {DType::U8, "U8", 1},   {DType::I8, "I8", 1},     {DType::U16, "U16", 2},
    {DType::I16, "I16", 2},   {DType::U32, "U32", 4}, {DType::I32, "I32", 4},   {DType::U64, "U64", 8},
    {DType::I64, "I64", 8},   {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes)
    if (entry.dtype == dtype) return entry;
  throw std::logic_error("unknown dtype");
}

// A header larger than this is not a tensor file but garbage or an attack.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

void write_all(int fd, const void* data, std::size_t size, const fs::path& path) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error("cannot write " + path.string() + ": " + std::strerror(errno));
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Writes `parts` one after the other into `path` through a temporary file
// and a rename: a reader sees the old file or the whole new one, never part
// of one. No fsync here: a step's outputs are made durable by the host when
// it commits them to the store (it fsyncs every file first), a checkpoint
// is checked on reading, and what is kept outside both (a published model)
// is synced by its writer with sync_tree.
template <class WriteParts>
void write_atomic(const fs::path& path, WriteParts&& write_parts) {
  static std::atomic<unsigned> counter{0};
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  const fs::path temp = path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  try {
    const Fd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out.get() < 0) throw std::runtime_error("cannot create " + temp.string() + ": " + std::strerror(errno));
    write_parts([&](const void* data, std::size_t size) { write_all(out.get(), data, size, temp); });
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    throw std::runtime_error("cannot rename into " + path.string() + ": " + std::strerror(errno));
  }
}

[[noreturn]] void bad_file(const fs::path& path, const std::string& why) {
  throw std::runtime_error(path.string() + ": not a valid safetensors file: " + why);
}

// A JSON array of whole numbers as T (int64_t or uint64_t). nlohmann's get<>
// would convert a fraction or an out-of-range number with a plain cast
// (undefined behaviour past the type's range: the fuzzer found -9.2e20 as an
// offset), so each element is checked first.
template <typename T>
std::vector<T> whole_numbers(const json& array, const char* what) {
  if (!array.is_array()) throw std::runtime_error(std::string(what) + " must be an array");
  std::vector<T> values;
  values.reserve(array.size());
  for (const auto& value : array) {
    const bool fits = value.is_number_unsigned()
                          ? value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                          : value.is_number_integer() && (std::is_signed_v<T> || value.get<int64_t>() >= 0);
    if (!fits) throw std::runtime_error(std::string(what) + " must hold whole numbers in range, not " + value.dump());
    values.push_back(value.get<T>());
  }
  return values;
}

Tensor parse_entry(const fs::path& path, const std::string& name, const json& entry, const std::string& content,
                   std::size_t data_start) {
  if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
    bad_file(path, "tensor '" + name + "' needs dtype, shape and data_offsets");
  Tensor tensor;
  std::vector<uint64_t> offsets;
  try {
    tensor.dtype = parse_dtype(entry.at("dtype").get<std::string>());
    tensor.shape = whole_numbers<int64_t>(entry.at("shape"), "shape");
    offsets = whole_numbers<uint64_t>(entry.at("data_offsets"), "data_offsets");
  } catch (const std::exception& e) {
    bad_file(path, "tensor '" + name + "': " + e.what());
  }
  if (offsets.size() != 2 || offsets[0] > offsets[1]) bad_file(path, "tensor '" + name + "' has bad data_offsets");
  // The element count as Tensor::numel takes it (in order), checked: a shape's product can pass 2^63.
  int64_t numel = 1;
  for (const auto dim : tensor.shape) {
    if (dim < 0) bad_file(path, "tensor '" + name + "' has a negative dimension");
    if (dim != 0 && numel > std::numeric_limits<int64_t>::max() / dim)
      bad_file(path, "tensor '" + name + "' has a shape too large to address");
    numel *= dim;
  }
  if (static_cast<uint64_t>(numel) > content.size() / dtype_size(tensor.dtype))
    bad_file(path, "tensor '" + name + "' has a shape that needs more bytes than the file holds");
  const uint64_t expected = static_cast<uint64_t>(numel) * dtype_size(tensor.dtype);
  if (offsets[1] - offsets[0] != expected)
    bad_file(path, "tensor '" + name + "' holds " + std::to_string(offsets[1] - offsets[0]) +
                       " bytes, its shape needs " + std::to_string(expected));
  // data_start <= content.size() (the header fits); compared this way, a huge offset cannot wrap around.
  if (offsets[1] > content.size() - data_start) bad_file(path, "tensor '" + name + "' runs past the end of the file");
  tensor.bytes.resize(expected);
  // An empty tensor (0 rows) has no buffer: memcpy from/to null is undefined even for 0 bytes.
  if (expected > 0) std::memcpy(tensor.bytes.data(), content.data() + data_start + offsets[0], expected);
  return tensor;
}

}  // namespace

std::size_t dtype_size(DType dtype) {
  return info(dtype).size;
}
std::string dtype_name(DType dtype) {
  return info(dtype).name;
}

DType parse_dtype(const std::string& name) {
  for (const auto& entry : kDTypes)
    if (name == entry.name) return entry.dtype;
  throw std::invalid_argument("unknown dtype '" + name + "'");
}

Tensor::Tensor(DType type, std::vector<int64_t> dims) : dtype(type), shape(std::move(dims)) {
  bytes.resize(static_cast<std::size_t>(numel()) * dtype_size(dtype));
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (const auto dim : shape) n *= dim;
  return n;
}

int64_t Tensor::row_numel() const {
  int64_t n = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

Tensor Tensor::gather_rows(const std::vector<int64_t>& indices) const {
  auto dims = shape.empty() ? std::vector<int64_t>{1} : shape;
  dims[0] = static_cast<int64_t>(indices.size());
  Tensor out(dtype, dims);
  const auto stride = row_bytes();
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= rows()) throw std::out_of_range("row index out of range");
    std::memcpy(out.bytes.data() + i * stride, bytes.data() + static_cast<std::size_t>(indices[i]) * stride, stride);
  }
  return out;
}

namespace {
template <class T>
void append_as_float(const Tensor& t, std::vector<float>& out) {
  const T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(static_cast<float>(p[i]));
}
}  // namespace

std::vector<float> Tensor::to_float() const {
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(numel()));
  switch (dtype) {
    case DType::Bool:
    case DType::U8:
      append_as_float<uint8_t>(*this, out);
      break;
    case DType::I8:
      append_as_float<int8_t>(*this, out);
      break;
    case DType::U16:
      append_as_float<uint16_t>(*this, out);
      break;
    case DType::I16:
      append_as_float<int16_t>(*this, out);
      break;
    case DType::U32:
      append_as_float<uint32_t>(*this, out);
      break;
    case DType::I32:
      append_as_float<int32_t>(*this, out);
      break;
    case DType::U64:
      append_as_float<uint64_t>(*this, out);
      break;
    case DType::I64:
      append_as_float<int64_t>(*this, out);
      break;
    case DType::F32:
      append_as_float<float>(*this, out);
      break;
    case DType::F64:
      append_as_float<double>(*this, out);
      break;
    case DType::F16:
    case DType::BF16:
      throw std::invalid_argument("cannot convert " + dtype_name(dtype) + " to float");
  }
  return out;
}

Tensor Tensor::from_float(const std::vector<float>& values, std::vector<int64_t> dims) {
  Tensor t(DType::F32, std::move(dims));
  if (static_cast<std::size_t>(t.numel()) != values.size()) throw std::invalid_argument("shape does not match values");
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

void write_safetensors(const fs::path& path, const TensorFile& file) {
  TensorRefs refs;
  for (const auto& [name, tensor] : file.tensors) refs.emplace(name, &tensor);
  write_safetensors(path, refs, file.metadata);
}

namespace {

// The 8-byte length and the JSON header of a safetensors file (padded so
// the buffers stay 8-byte aligned, as the format recommends).
std::string safetensors_header(const TensorRefs& tensors, const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (tensor->bytes.size() != static_cast<std::size_t>(tensor->numel()) * dtype_size(tensor->dtype))
      throw std::invalid_argument("tensor '" + name + "' has " + std::to_string(tensor->bytes.size()) +
                                  " bytes for its shape");
    header[name] = {{"dtype", dtype_name(tensor->dtype)},
                    {"shape", tensor->shape},
                    {"data_offsets", {offset, offset + tensor->bytes.size()}}};
    offset += tensor->bytes.size();
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = text.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>(length >> (8 * i));
  return out + text;
}

}  // namespace

void write_safetensors(const fs::path& path, const TensorRefs& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = safetensors_header(tensors, metadata);
  write_atomic(path, [&](auto&& write) {
    write(header.data(), header.size());
    for (const auto& [name, tensor] : tensors) write(tensor->bytes.data(), tensor->bytes.size());
  });
}

void overwrite_safetensors(const fs::path& path, const TensorFile& file) {
  TensorRefs refs;
  for (const auto& [name, tensor] : file.tensors) refs.emplace(name, &tensor);
  const std::string header = safetensors_header(refs, file.metadata);
  const Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (out.get() < 0) throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
  // Opened without O_TRUNC or O_APPEND: the writes go over the old bytes
  // from offset 0, and whatever the old file had past the new end is cut.
  write_all(out.get(), header.data(), header.size(), path);
  auto offset = static_cast<off_t>(header.size());
  for (const auto& [name, tensor] : refs) {
    write_all(out.get(), tensor->bytes.data(), tensor->bytes.size(), path);
    offset += static_cast<off_t>(tensor->bytes.size());
  }
  if (::ftruncate(out.get(), offset) != 0)
    throw std::runtime_error("cannot truncate " + path.string() + ": " + std::strerror(errno));
}

TensorFile read_safetensors(const fs::path& path) {
  return parse_safetensors(read_text(path), path);
}

TensorFile parse_safetensors(const std::string& content, const fs::path& path) {
  if (content.size() < 8) bad_file(path, "shorter than its 8-byte header length");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i)
    length = (length << 8) | static_cast<unsigned char>(content[static_cast<std::size_t>(i)]);
  if (length > kMaxHeaderBytes || 8 + length > content.size()) bad_file(path, "header length out of range");
  json header;
  try {
    header = json::parse(content.begin() + 8, content.begin() + 8 + static_cast<std::ptrdiff_t>(length));
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number past double's range
    bad_file(path, std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) bad_file(path, "header is not a JSON object");
  TensorFile file;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [key, value] : entry.items())
        file.metadata[key] = value.is_string() ? value.get<std::string>() : value.dump();
      continue;
    }
    file.tensors.emplace(name, parse_entry(path, name, entry, content, 8 + length));
    const auto offsets = whole_numbers<uint64_t>(entry.at("data_offsets"), "data_offsets");  // checked by parse_entry
    ranges.emplace_back(offsets[0], offsets[1]);
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) bad_file(path, "tensor byte ranges overlap");
  return file;
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  write_atomic(path, [&](auto&& write) { write(text.data(), text.size()); });
}

// One read of the whole file into a buffer of its size (a tuning trial reads
// its datasets this way: 8 KiB stream reads and a string grown and copied
// twice showed per trial).
std::string read_text(const fs::path& path) {
  const Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat info {};
  if (in.get() < 0 || ::fstat(in.get(), &info) != 0)
    throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(errno));
  std::string content;
  // One byte more than its size, so the read that finds the end needs no
  // bigger buffer (and no copy of the whole).
  content.resize(static_cast<std::size_t>(std::max<off_t>(info.st_size, 0)) + 1);
  std::size_t done = 0;
  for (;;) {
    if (done == content.size()) content.resize(2 * done + 4096);  // the file grew, or a /proc-like size of 0
    const ssize_t n = ::read(in.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(errno));
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  content.resize(done);
  return content;
}

void sync_path(const fs::path& path) {
  const Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.get() < 0 || ::fsync(f.get()) != 0)
    throw std::runtime_error("cannot fsync " + path.string() + ": " + std::strerror(errno));
}

void sync_tree(const fs::path& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file() || entry.is_directory()) sync_path(entry.path());
  sync_path(dir);
}

void copy_tree_writable(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::recursive_directory_iterator(from)) {
    const fs::path target = to / entry.path().lexically_relative(from);
    if (entry.is_directory()) {
      fs::create_directories(target);
    } else if (entry.is_regular_file()) {
      fs::copy_file(entry.path(), target, fs::copy_options::overwrite_existing);
      fs::permissions(target, fs::perms::owner_write, fs::perm_options::add);
    } else {
      throw std::runtime_error("cannot copy " + entry.path().string() + ": not a regular file or directory");
    }
  }
}

}  // namespace kiln::ml

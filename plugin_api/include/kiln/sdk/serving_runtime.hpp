// kiln C++ SDK: a serving runtime (KilnServingApi) written as a C++ class.
//
// The author writes a model class M with
//
//   static std::unique_ptr<M> load(const std::filesystem::path& model_dir,
//                                  const std::string& config_json);  // load
//   std::string metadata() const;  // {"inputs": [...], "outputs": [...], ...}
//   std::vector<kiln::Output> infer(const kiln::Inputs& inputs);  // may run concurrently
//   ~M();                                                          // unload
//
// and hands `kiln::serving_table<M>()` out from the component's
// `static const KilnServingApi* serving()`. The SDK owns the C side: every
// trampoline is noexcept and turns exceptions into KilnError values (with the
// host table kept per model: no global), metadata is asked once at load and
// kept until unload, and each infer call's outputs are kept alive until the
// host hands them back through release_outputs.
// Included by kiln/sdk.hpp.
#ifndef KILN_SDK_SERVING_RUNTIME_HPP
#define KILN_SDK_SERVING_RUNTIME_HPP

#include <kiln/sdk.hpp>
#include <kiln/serving.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kiln {

// The input tensors of one infer call: owned by the host, valid during the call.
class Inputs {
 public:
  Inputs(const KilnTensor* tensors, uint32_t count) : tensors_(tensors), count_(tensors != nullptr ? count : 0) {}
  size_t size() const { return count_; }
  const KilnTensor& operator[](size_t i) const { return tensors_[i]; }
  const KilnTensor* begin() const { return tensors_; }
  const KilnTensor* end() const { return tensors_ + count_; }
  // The input called `name`, or nullptr when the request has none.
  const KilnTensor* find(const std::string& name) const {
    for (const KilnTensor& t : *this)
      if (t.name != nullptr && name == t.name) return &t;
    return nullptr;
  }

 private:
  const KilnTensor* tensors_;
  size_t count_;
};

// One output tensor of infer: a dense row-major buffer at `data`, which must
// stay valid as long as `owner` lives (the SDK keeps the Output until the host
// releases the batch). `copy_of` makes an Output that owns a copy of its bytes.
struct Output {
  std::string name;
  KilnDataType datatype = KILN_DT_FP32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  uint64_t byte_size = 0;
  std::shared_ptr<const void> owner;

  static Output copy_of(std::string name, KilnDataType datatype, std::vector<int64_t> shape, const void* data,
                        uint64_t byte_size) {
    auto bytes = std::make_shared<std::vector<unsigned char>>(static_cast<size_t>(byte_size));
    if (byte_size > 0) std::memcpy(bytes->data(), data, static_cast<size_t>(byte_size));
    Output out{std::move(name), datatype, std::move(shape), bytes->data(), byte_size, nullptr};
    out.owner = std::move(bytes);
    return out;
  }
};

namespace detail {

// The outputs of one infer call and their C views, kept until release_outputs.
struct OutputBatch {
  std::vector<Output> outputs;
  std::vector<KilnTensor> tensors;
};

// The plugin-side object behind a KilnModel*.
template <class M>
struct ModelBox {
  const KilnHostApi* host = nullptr;
  std::unique_ptr<M> model;
  std::string metadata;
  std::mutex mutex;  // guards batches: infer runs concurrently
  std::map<const KilnTensor*, std::unique_ptr<OutputBatch>> batches;
};

template <class M>
ModelBox<M>* model_box(KilnModel* model) {
  return reinterpret_cast<ModelBox<M>*>(model);  // created by serving_load<M>
}

// Throws when an output's buffer does not match its datatype and shape (a
// runtime bug the host must not read past).
inline void check_output(const Output& o) {
  const DataTypeInfo* info = datatype_info(o.datatype);
  if (info == nullptr) throw Error("infer: output '" + o.name + "' has an unknown datatype", KILN_ERROR_INTERNAL);
  if (o.byte_size > 0 && o.data == nullptr)
    throw Error("infer: output '" + o.name + "' has bytes but no data", KILN_ERROR_INTERNAL);
  if (info->size == 0) return;  // BYTES: variable-sized elements
  uint64_t elements = 1;
  for (const int64_t d : o.shape) {
    if (d < 0) throw Error("infer: output '" + o.name + "' has a negative dimension", KILN_ERROR_INTERNAL);
    elements *= static_cast<uint64_t>(d);
  }
  if (elements * info->size != o.byte_size)
    throw Error("infer: output '" + o.name + "' holds " + std::to_string(o.byte_size) + " bytes, its shape needs " +
                    std::to_string(elements * info->size),
                KILN_ERROR_INTERNAL);
}

template <class M>
KilnError* serving_load(const KilnHostApi* host, const char* model_dir, const char* config_json,
                        KilnModel** model_out) noexcept {
  try {
    if (model_dir == nullptr || model_out == nullptr)
      throw Error("load: model_dir and model_out must not be NULL", KILN_ERROR_INVALID_ARGUMENT);
    auto box = std::make_unique<ModelBox<M>>();
    box->host = host;
    box->model = M::load(std::filesystem::path(model_dir), config_json == nullptr ? "" : config_json);
    if (!box->model) throw Error("load returned no model", KILN_ERROR_INTERNAL);
    box->metadata = box->model->metadata();
    *model_out = reinterpret_cast<KilnModel*>(box.release());  // owned by the host until unload
    return nullptr;
  } catch (...) {
    return error_from_current_exception(host);
  }
}

template <class M>
KilnError* serving_metadata(KilnModel* model, const char** json_out) noexcept {
  *json_out = model_box<M>(model)->metadata.c_str();  // owned by the model until unload
  return nullptr;
}

template <class M>
KilnError* serving_infer(KilnModel* model, const KilnTensor* inputs, uint32_t input_count,
                         const KilnTensor** outputs_out, uint32_t* output_count_out) noexcept {
  ModelBox<M>* box = model_box<M>(model);
  try {
    if (input_count > 0 && inputs == nullptr) throw Error("infer: inputs is NULL", KILN_ERROR_INVALID_ARGUMENT);
    auto batch = std::make_unique<OutputBatch>();
    batch->outputs = box->model->infer(Inputs(inputs, input_count));
    for (const Output& o : batch->outputs) {
      check_output(o);
      batch->tensors.push_back(KilnTensor{sizeof(KilnTensor), o.datatype, o.name.c_str(), o.shape.data(),
                                          static_cast<uint32_t>(o.shape.size()), 0, o.data, o.byte_size});
    }
    *output_count_out = static_cast<uint32_t>(batch->tensors.size());
    *outputs_out = nullptr;
    if (batch->tensors.empty()) return nullptr;  // nothing to keep; release_outputs(NULL) is a no-op
    const KilnTensor* key = batch->tensors.data();
    const std::lock_guard<std::mutex> lock(box->mutex);
    box->batches.emplace(key, std::move(batch));
    *outputs_out = key;  // owned by the model until release_outputs
    return nullptr;
  } catch (...) {
    return error_from_current_exception(box->host);
  }
}

template <class M>
void serving_release_outputs(KilnModel* model, const KilnTensor* outputs, uint32_t /*output_count*/) noexcept {
  if (outputs == nullptr) return;
  ModelBox<M>* box = model_box<M>(model);
  std::unique_ptr<OutputBatch> released;  // freed outside the lock
  const std::lock_guard<std::mutex> lock(box->mutex);
  if (const auto it = box->batches.find(outputs); it != box->batches.end()) {
    released = std::move(it->second);
    box->batches.erase(it);
  }
}

template <class M>
void serving_unload(KilnModel* model) noexcept {
  const std::unique_ptr<ModelBox<M>> owned(model_box<M>(model));  // NULL is a no-op
}

}  // namespace detail

// The KilnServingApi of model class M (see the top of this file); static,
// valid for the life of the process. Return it from a component's
// `static const KilnServingApi* serving()`.
template <class M>
const KilnServingApi* serving_table() {
  static const KilnServingApi api{sizeof(KilnServingApi),
                                  0,
                                  &detail::serving_load<M>,
                                  &detail::serving_metadata<M>,
                                  &detail::serving_infer<M>,
                                  &detail::serving_release_outputs<M>,
                                  &detail::serving_unload<M>};
  return &api;
}

}  // namespace kiln

#endif  // KILN_SDK_SERVING_RUNTIME_HPP

#include <kiln/serve/tensor.hpp>
#include <kiln/serving.hpp>

namespace kiln::serve {

int64_t HostTensor::elements() const {
  int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

KilnTensor HostTensor::view() const {
  return KilnTensor{sizeof(KilnTensor),
                    datatype,
                    name.c_str(),
                    shape.data(),
                    static_cast<uint32_t>(shape.size()),
                    0,
                    bytes.data(),
                    static_cast<uint64_t>(bytes.size())};
}

HostTensor copy_tensor(const KilnTensor& k) {
  HostTensor t;
  t.name = k.name != nullptr ? k.name : "";
  t.datatype = k.datatype;
  t.shape.assign(k.shape, k.shape + k.ndim);
  const auto* info = datatype_info(k.datatype);
  if (info == nullptr || info->size == 0 ||
      t.elements() * static_cast<int64_t>(info->size) != static_cast<int64_t>(k.byte_size))
    throw ServeError(500, "the runtime returned an inconsistent output '" + t.name + "'");
  const auto* begin = static_cast<const uint8_t*>(k.data);
  t.bytes.assign(begin, begin + k.byte_size);
  return t;
}

}  // namespace kiln::serve

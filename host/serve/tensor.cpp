#include <kiln/serve/tensor.hpp>
#include <kiln/serving.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace kiln::serve {
namespace {

using host::Json;

[[noreturn]] void bad(const std::string& message) {
  throw ServeError(400, message);
}

void flatten(const Json& data, std::vector<const Json*>& out) {
  if (data.is_array()) {
    for (const auto& item : data) flatten(item, out);
  } else {
    out.push_back(&data);
  }
}

template <class T>
void put(std::vector<uint8_t>& bytes, size_t index, T value) {
  std::memcpy(bytes.data() + index * sizeof(T), &value, sizeof(T));
}

template <class T>
void put_integer(std::vector<uint8_t>& bytes, size_t index, const Json& v, const std::string& where) {
  bool ok = false;
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    ok = u <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    if (ok) put<T>(bytes, index, static_cast<T>(u));
  } else if (v.is_number_integer()) {
    const auto i = v.get<int64_t>();
    ok = std::numeric_limits<T>::is_signed ? i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                                                 i <= static_cast<int64_t>(std::numeric_limits<T>::max())
                                           : i >= 0 && static_cast<uint64_t>(i) <= std::numeric_limits<T>::max();
    if (ok) put<T>(bytes, index, static_cast<T>(i));
  }
  if (!ok) bad(where + ": " + v.dump() + " is not an integer in the datatype's range");
}

template <class T>
void put_float(std::vector<uint8_t>& bytes, size_t index, const Json& v, const std::string& where) {
  if (!v.is_number()) bad(where + ": " + v.dump() + " is not a number");
  put<T>(bytes, index, static_cast<T>(v.get<double>()));
}

template <class T>
Json values(const HostTensor& t) {
  Json out = Json::array();
  const auto n = static_cast<size_t>(t.elements());
  out.get_ref<Json::array_t&>().reserve(n);
  for (size_t i = 0; i < n; ++i) {
    T value;
    std::memcpy(&value, t.bytes.data() + i * sizeof(T), sizeof(T));
    if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(value)) {
        out.push_back(nullptr);
        continue;
      }
    }
    out.push_back(value);
  }
  return out;
}

}  // namespace

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

HostTensor tensor_from_json(const Json& input) {
  if (!input.is_object()) bad("each input must be an object with name, shape, datatype and data");
  for (const char* key : {"name", "shape", "datatype", "data"})
    if (!input.contains(key)) bad(std::string("an input has no \"") + key + "\"");
  if (!input["name"].is_string()) bad("an input's \"name\" must be a string");
  HostTensor t;
  t.name = input["name"].get<std::string>();
  const std::string where = "input '" + t.name + "'";
  if (!input["datatype"].is_string()) bad(where + ": \"datatype\" must be a string");
  const std::string type_name = input["datatype"].get<std::string>();
  t.datatype = datatype_from_name(type_name);
  if (t.datatype == 0) bad(where + ": unknown datatype '" + type_name + "'");
  if (t.datatype == KILN_DT_BYTES || t.datatype == KILN_DT_FP16)
    bad(where + ": datatype " + type_name + " is not supported in JSON requests");
  if (!input["shape"].is_array()) bad(where + ": \"shape\" must be an array of non-negative integers");
  int64_t elements = 1;
  for (const auto& d : input["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      bad(where + ": \"shape\" must be an array of non-negative integers");
    t.shape.push_back(d.get<int64_t>());
    if (t.shape.back() > (int64_t{1} << 40) || (elements *= std::max<int64_t>(1, t.shape.back())) > (int64_t{1} << 40))
      bad(where + ": shape " + input["shape"].dump() + " is too large");
  }
  std::vector<const Json*> flat;
  if (input["data"].is_array()) flat.reserve(input["data"].size());  // exact when flat, rows when nested
  flatten(input["data"], flat);
  if (static_cast<int64_t>(flat.size()) != t.elements())
    bad(where + ": shape " + input["shape"].dump() + " needs " + std::to_string(t.elements()) +
        " values, \"data\" has " + std::to_string(flat.size()));
  const size_t size = datatype_info(t.datatype)->size;
  t.bytes.resize(flat.size() * size);
  for (size_t i = 0; i < flat.size(); ++i) {
    const Json& v = *flat[i];
    switch (t.datatype) {
      case KILN_DT_BOOL:
        if (!v.is_boolean()) bad(where + ": " + v.dump() + " is not a boolean");
        t.bytes[i] = v.get<bool>() ? 1 : 0;
        break;
      case KILN_DT_UINT8:
        put_integer<uint8_t>(t.bytes, i, v, where);
        break;
      case KILN_DT_UINT16:
        put_integer<uint16_t>(t.bytes, i, v, where);
        break;
      case KILN_DT_UINT32:
        put_integer<uint32_t>(t.bytes, i, v, where);
        break;
      case KILN_DT_UINT64:
        put_integer<uint64_t>(t.bytes, i, v, where);
        break;
      case KILN_DT_INT8:
        put_integer<int8_t>(t.bytes, i, v, where);
        break;
      case KILN_DT_INT16:
        put_integer<int16_t>(t.bytes, i, v, where);
        break;
      case KILN_DT_INT32:
        put_integer<int32_t>(t.bytes, i, v, where);
        break;
      case KILN_DT_INT64:
        put_integer<int64_t>(t.bytes, i, v, where);
        break;
      case KILN_DT_FP32:
        put_float<float>(t.bytes, i, v, where);
        break;
      case KILN_DT_FP64:
        put_float<double>(t.bytes, i, v, where);
        break;
      default:
        bad(where + ": unsupported datatype");
    }
  }
  return t;
}

Json tensor_to_json(const HostTensor& t) {
  Json data;
  switch (t.datatype) {
    case KILN_DT_BOOL: {
      data = Json::array();
      for (const auto b : t.bytes) data.push_back(b != 0);
      break;
    }
    case KILN_DT_UINT8:
      data = values<uint8_t>(t);
      break;
    case KILN_DT_UINT16:
      data = values<uint16_t>(t);
      break;
    case KILN_DT_UINT32:
      data = values<uint32_t>(t);
      break;
    case KILN_DT_UINT64:
      data = values<uint64_t>(t);
      break;
    case KILN_DT_INT8:
      data = values<int8_t>(t);
      break;
    case KILN_DT_INT16:
      data = values<int16_t>(t);
      break;
    case KILN_DT_INT32:
      data = values<int32_t>(t);
      break;
    case KILN_DT_INT64:
      data = values<int64_t>(t);
      break;
    case KILN_DT_FP32:
      data = values<float>(t);
      break;
    case KILN_DT_FP64:
      data = values<double>(t);
      break;
    default:
      throw ServeError(500, "output '" + t.name + "' has datatype " + datatype_name(t.datatype) +
                                ", which JSON responses do not support");
  }
  return Json{{"name", t.name}, {"datatype", datatype_name(t.datatype)}, {"shape", t.shape}, {"data", std::move(data)}};
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

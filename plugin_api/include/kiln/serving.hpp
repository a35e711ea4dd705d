// Header-only helpers for the serving table (KilnServingApi): the KServe V2
// names and element sizes of KilnDataType. Shared by the host and runtimes.
#pragma once

#include <kiln/plugin_api.h>

#include <array>
#include <cstddef>
#include <string>
#include <utility>

namespace kiln {

struct DataTypeInfo {
  KilnDataType type;
  const char* name;  // as in the Open Inference Protocol: "FP32", "INT64", ...
  size_t size;       // bytes per element; 0 for BYTES (variable)
};

inline constexpr std::array<DataTypeInfo, 13> kDataTypes{{{KILN_DT_BOOL, "BOOL", 1},
                                                          {KILN_DT_UINT8, "UINT8", 1},
                                                          {KILN_DT_UINT16, "UINT16", 2},
                                                          {KILN_DT_UINT32, "UINT32", 4},
                                                          {KILN_DT_UINT64, "UINT64", 8},
                                                          {KILN_DT_INT8, "INT8", 1},
                                                          {KILN_DT_INT16, "INT16", 2},
                                                          {KILN_DT_INT32, "INT32", 4},
                                                          {KILN_DT_INT64, "INT64", 8},
                                                          {KILN_DT_FP16, "FP16", 2},
                                                          {KILN_DT_FP32, "FP32", 4},
                                                          {KILN_DT_FP64, "FP64", 8},
                                                          {KILN_DT_BYTES, "BYTES", 0}}};

// The info of `type`, or nullptr when it is not a known data type.
inline const DataTypeInfo* datatype_info(KilnDataType type) {
  for (const auto& info : kDataTypes)
    if (info.type == type) return &info;
  return nullptr;
}

// The data type called `name` (case-sensitive, as the protocol spells it), or 0.
inline KilnDataType datatype_from_name(const std::string& name) {
  for (const auto& info : kDataTypes)
    if (name == info.name) return info.type;
  return 0;
}

inline std::string datatype_name(KilnDataType type) {
  const auto* info = datatype_info(type);
  return info != nullptr ? info->name : "unknown(" + std::to_string(type) + ")";
}

}  // namespace kiln

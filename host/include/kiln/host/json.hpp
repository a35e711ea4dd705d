// The host's JSON type (nlohmann::json, ordered so manifests keep field order).
#pragma once

#include <nlohmann/json.hpp>

namespace kiln::host {
using Json = nlohmann::ordered_json;
}  // namespace kiln::host

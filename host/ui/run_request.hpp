// The bodies of POST /api/v1/runs and /runs/{id}/rerun read from untrusted
// bytes into typed requests: a JSON object with known fields only, nesting
// at most host::kMaxOutputValueDepth, an uploaded text at most
// kMaxUploadBytes. Every problem is an ApiError (400, 413) naming the field.
// No file is read and nothing starts here (fuzz/ui_run_body_fuzz.cpp).
#pragma once

#include "api_error.hpp"

#include <kiln/host/json.hpp>

#include <string>

namespace kiln::ui {

// Largest uploaded pipeline text (the request body is at most 1 MiB).
inline constexpr size_t kMaxUploadBytes = 256 << 10;

struct StartRequest {
  std::string pipeline;   // a name from --pipelines, or
  std::string yaml;       // an uploaded text (exactly one of the two)
  std::string file_name;  // what problems in `yaml` are reported under
  host::Json params = host::Json::object();
  bool no_cache = false;
};

struct RerunRequest {
  host::Json params = host::Json::object();
  bool no_cache = false;
};

StartRequest parse_start_request(const std::string& body);
RerunRequest parse_rerun_request(const std::string& body);

}  // namespace kiln::ui

// kiln ui's run-start and rerun bodies (host/ui/run_request.cpp): any bytes
// as POST /api/v1/runs and /runs/{id}/rerun bodies. The promise: a typed
// request within its limits (exactly one pipeline source, an upload of at
// most kMaxUploadBytes, a file name that is no path, params an object), or
// an ApiError 400/413; never a crash.
#include "run_request.hpp"

#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    const kiln::ui::StartRequest r = kiln::ui::parse_start_request(body);
    if (r.pipeline.empty() == r.yaml.empty()) std::abort();
    if (r.yaml.size() > kiln::ui::kMaxUploadBytes || r.pipeline.size() > 256) std::abort();
    if (r.file_name.empty() || r.file_name.find('/') != std::string::npos) std::abort();
    if (!r.params.is_object()) std::abort();
  } catch (const kiln::ui::ApiError& e) {
    if (e.status() != 400 && e.status() != 413) std::abort();
  }
  try {
    if (!kiln::ui::parse_rerun_request(body).params.is_object()) std::abort();
  } catch (const kiln::ui::ApiError& e) {
    if (e.status() != 400) std::abort();
  }
  return 0;
}

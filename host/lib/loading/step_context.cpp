#include <kiln/host/error.hpp>
#include <kiln/host/json_bounded.hpp>
#include <kiln/host/step_context.hpp>
#include <kiln/host/version.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string_view>

const char* KilnStepContext::intern(std::string text) {
  const std::lock_guard<std::mutex> lock(mutex);
  return strings.emplace_back(std::move(text)).c_str();
}

namespace kiln::host {
namespace {

// Runs `body` and turns a HostError or any exception into a KilnError.
template <class Body>
KilnError* guarded(Body body) noexcept {
  try {
    body();
    return nullptr;
  } catch (const HostError& e) {
    return error_new(e.code(), e.what());
  } catch (const std::exception& e) {
    return error_new(KILN_ERROR_INTERNAL, e.what());
  } catch (...) {
    return error_new(KILN_ERROR_INTERNAL, "unknown host error");
  }
}

void require(bool condition, KilnErrorCode code, const std::string& message) {
  if (!condition) throw HostError(code, message);
}

std::string text(const char* s) {
  return s ? s : "";
}

// Takes ownership of `error` and rethrows it as a HostError.
void throw_if(KilnError* error) {
  const ErrorPtr owned(error);
  if (owned) throw HostError(owned->code, owned->message);
}

const Json& parameter(KilnStepContext* ctx, const char* name) {
  require(name != nullptr, KILN_ERROR_INVALID_ARGUMENT, "parameter name is NULL");
  const auto& params = ctx->invocation.parameters;
  const auto it = params.find(name);
  require(it != params.end(), KILN_ERROR_NOT_FOUND,
          "component '" + ctx->manifest.name + "' has no value for parameter '" + name + "'");
  return *it;
}

template <class T>
KilnError* typed_parameter(KilnStepContext* ctx, const char* name, T* out, ValueType type) {
  return guarded([&] {
    require(out != nullptr, KILN_ERROR_INVALID_ARGUMENT, "output pointer is NULL");
    const Json& value = parameter(ctx, name);
    require(has_value_type(value, type), KILN_ERROR_TYPE_MISMATCH,
            "parameter '" + text(name) + "' is " + json_excerpt(value) + ", not a " + value_type_name(type));
    *out = value.get<T>();
  });
}

void log(KilnStepContext* ctx, KilnLogLevel level, const char* message) {
  try {
    ctx->sink.on_log(level, text(message));
  } catch (...) {  // a log line must never fail the step
  }
}

KilnError* metric(KilnStepContext* ctx, const char* name, double value, int64_t step) {
  return guarded([&] {
    const auto allowed = [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_.:/-", c) != nullptr;
    };
    const std::string_view n = name ? name : "";
    require(!n.empty() && std::all_of(n.begin(), n.end(), allowed), KILN_ERROR_INVALID_ARGUMENT,
            "metric name '" + text(name) + "' must match [A-Za-z0-9_.:/-]+");
    require(std::isfinite(value), KILN_ERROR_INVALID_ARGUMENT, "metric '" + text(name) + "' is not finite");
    ctx->sink.on_metric(name, value, step);
  });
}

KilnError* progress(KilnStepContext* ctx, double fraction, const char* message) {
  return guarded([&] {
    require(fraction >= 0.0 && fraction <= 1.0, KILN_ERROR_INVALID_ARGUMENT, "progress fraction must lie in [0, 1]");
    ctx->sink.on_progress(fraction, text(message));
  });
}

int32_t is_cancelled(KilnStepContext* ctx) {
  return ctx->cancelled.load() ? 1 : 0;
}

KilnError* param_string(KilnStepContext* ctx, const char* name, const char** out) {
  return guarded([&] {
    std::string value;
    throw_if(typed_parameter(ctx, name, &value, ValueType::String));
    *out = ctx->intern(std::move(value));
  });
}

KilnError* param_int(KilnStepContext* ctx, const char* name, int64_t* out) {
  return typed_parameter(ctx, name, out, ValueType::Int);
}

KilnError* param_float(KilnStepContext* ctx, const char* name, double* out) {
  return typed_parameter(ctx, name, out, ValueType::Float);
}

KilnError* param_bool(KilnStepContext* ctx, const char* name, int32_t* out) {
  bool value = false;
  KilnError* error = typed_parameter(ctx, name, &value, ValueType::Bool);
  if (error == nullptr && out != nullptr) *out = value ? 1 : 0;
  return error;
}

KilnError* param_json(KilnStepContext* ctx, const char* name, const char** out) {
  return guarded([&] { *out = ctx->intern(parameter(ctx, name).dump()); });
}

const InputArtifact& input(KilnStepContext* ctx, const char* name) {
  require(name != nullptr, KILN_ERROR_INVALID_ARGUMENT, "input name is NULL");
  require(ctx->manifest.find_input(name) != nullptr, KILN_ERROR_INVALID_ARGUMENT,
          "component '" + ctx->manifest.name + "' declares no input '" + name + "'");
  const auto it = ctx->invocation.inputs.find(name);
  require(it != ctx->invocation.inputs.end(), KILN_ERROR_NOT_FOUND, "input '" + text(name) + "' is not wired");
  return it->second;
}

KilnError* input_path(KilnStepContext* ctx, const char* name, const char** out) {
  return guarded([&] { *out = ctx->intern(input(ctx, name).path.string()); });
}

KilnError* input_metadata(KilnStepContext* ctx, const char* name, const char** out) {
  return guarded([&] { *out = ctx->intern(input(ctx, name).metadata.dump()); });
}

void require_output(KilnStepContext* ctx, const char* name) {
  require(name != nullptr, KILN_ERROR_INVALID_ARGUMENT, "output name is NULL");
  require(ctx->manifest.find_output(name) != nullptr, KILN_ERROR_INVALID_ARGUMENT,
          "component '" + ctx->manifest.name + "' declares no output '" + name + "'");
}

KilnError* output_path(KilnStepContext* ctx, const char* name, const char** out) {
  return guarded([&] {
    require_output(ctx, name);
    const auto dir = ctx->invocation.output_dir / name;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    require(!ec, KILN_ERROR_IO, "cannot create " + dir.string() + ": " + ec.message());
    *out = ctx->intern(dir.string());
  });
}

Json parse_json_argument(const char* json, const std::string& what) {
  require(json != nullptr, KILN_ERROR_INVALID_ARGUMENT, what + " is NULL");
  try {
    return Json::parse(json);
  } catch (const std::exception& e) {
    throw HostError(KILN_ERROR_INVALID_ARGUMENT, what + " is not valid JSON: " + e.what());
  }
}

KilnError* output_metadata(KilnStepContext* ctx, const char* name, const char* json) {
  return guarded([&] {
    require_output(ctx, name);
    const Json metadata = parse_json_argument(json, "metadata of output '" + text(name) + "'");
    require(metadata.is_object(), KILN_ERROR_INVALID_ARGUMENT, "output metadata must be a JSON object");
    require_shallow(metadata, "metadata of output '" + text(name) + "'");  // before merging copies it
    Json merged;
    {
      const std::lock_guard<std::mutex> lock(ctx->mutex);
      auto& slot = ctx->output_metadata[name];
      if (slot.is_null()) slot = Json::object();
      slot.update(metadata);
      merged = slot;
    }
    ctx->sink.on_output_metadata(name, merged);
  });
}

KilnError* output_parameter(KilnStepContext* ctx, const char* name, const char* json_value) {
  return guarded([&] {
    require(name != nullptr, KILN_ERROR_INVALID_ARGUMENT, "output parameter name is NULL");
    const PortSpec* spec = ctx->manifest.find_output_parameter(name);
    require(spec != nullptr, KILN_ERROR_INVALID_ARGUMENT,
            "component '" + ctx->manifest.name + "' declares no output parameter '" + name + "'");
    const Json value = parse_json_argument(json_value, "value of output parameter '" + text(name) + "'");
    const auto type = parse_value_type(spec->type);
    require(type && has_value_type(value, *type), KILN_ERROR_TYPE_MISMATCH,
            "output parameter '" + text(name) + "' must be a " + spec->type + ", got " + json_excerpt(value));
    require_shallow(value, "output parameter '" + text(name) + "'");  // on every executor: sinks copy it
    ctx->sink.on_output_parameter(name, value);
  });
}

// Creates `dir` on first use and hands out its path.
KilnError* step_directory(KilnStepContext* ctx, const std::filesystem::path& dir, const char* what, const char** out) {
  return guarded([&] {
    require(!dir.empty(), KILN_ERROR_UNSUPPORTED, std::string("this step has no ") + what);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    require(!ec, KILN_ERROR_IO, "cannot create " + dir.string() + ": " + ec.message());
    *out = ctx->intern(dir.string());
  });
}

KilnError* temp_dir(KilnStepContext* ctx, const char** out) {
  return step_directory(ctx, ctx->invocation.temp_dir, "scratch directory", out);
}

KilnError* checkpoint_dir(KilnStepContext* ctx, const char** out) {
  return step_directory(ctx, ctx->invocation.checkpoint_dir, "checkpoint directory", out);
}

}  // namespace

const KilnHostApi* host_api() {
  static const KilnHostApi api = [] {
    KilnHostApi a{};
    a.struct_size = sizeof(KilnHostApi);
    a.abi_major = KILN_ABI_VERSION_MAJOR;
    a.abi_minor = KILN_ABI_VERSION_MINOR;
    a.host_version = kiln_version();
    a.error_new = error_new;
    a.error_code = error_code;
    a.error_message = error_message;
    a.error_release = error_release;
    a.log = log;
    a.metric = metric;
    a.progress = progress;
    a.is_cancelled = is_cancelled;
    a.param_string = param_string;
    a.param_int = param_int;
    a.param_float = param_float;
    a.param_bool = param_bool;
    a.param_json = param_json;
    a.input_path = input_path;
    a.input_metadata = input_metadata;
    a.output_path = output_path;
    a.output_metadata = output_metadata;
    a.output_parameter = output_parameter;
    a.temp_dir = temp_dir;
    a.checkpoint_dir = checkpoint_dir;
    return a;
  }();
  return &api;
}

std::string log_level_name(KilnLogLevel level) {
  if (level >= KILN_LOG_ERROR) return "error";
  if (level >= KILN_LOG_WARNING) return "warning";
  if (level >= KILN_LOG_INFO) return "info";
  return "debug";
}

}  // namespace kiln::host

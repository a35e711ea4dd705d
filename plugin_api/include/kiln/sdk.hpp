// kiln C++ SDK: a header-only layer over the C ABI in plugin_api.h.
//
// An author writes a class with a static `manifest()` and a `run(Context&)`,
// then lists the classes once with KILN_PLUGIN(...). A component may also be
// a tuner or a serving runtime: `static const KilnTunerApi* tuner()` returning
// kiln::tuner_table<T>() (kiln/sdk/tuner.hpp), `static const KilnServingApi*
// serving()` returning kiln::serving_table<M>() (kiln/sdk/serving_runtime.hpp). Every call that crosses
// into the host goes through the C table; every trampoline the host calls is
// noexcept and turns C++ exceptions into KilnError values.
#ifndef KILN_SDK_HPP
#define KILN_SDK_HPP

#include <kiln/plugin_api.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace kiln {

// An error a component throws on purpose; its code reaches the host.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, KilnErrorCode code = KILN_ERROR_UNKNOWN)
      : std::runtime_error(message), code_(code) {}
  KilnErrorCode code() const noexcept { return code_; }

 private:
  KilnErrorCode code_;
};

// The JSON string literal of `text`, quotes included: `"`, `\` and control
// characters are escaped, every other byte is copied as is (UTF-8 passes
// through unchanged and is not validated). For building manifests, metadata
// and other JSON text without a JSON library.
inline std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          std::array<char, 8> buffer{};
          std::snprintf(buffer.data(), buffer.size(), "\\u%04x", c);
          out += buffer.data();
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

namespace detail {

inline std::string json_number(double value) {
  if (!std::isfinite(value)) throw Error("JSON cannot hold a non-finite number", KILN_ERROR_INVALID_ARGUMENT);
  std::array<char, 32> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%.17g", value);
  return buffer.data();
}

inline std::string json_value(const std::string& v) {
  return json_quote(v);
}
inline std::string json_value(const char* v) {
  return json_quote(v);
}
inline std::string json_value(bool v) {
  return v ? "true" : "false";
}
inline std::string json_value(int v) {
  return std::to_string(v);
}
inline std::string json_value(long v) {
  return std::to_string(v);
}
inline std::string json_value(long long v) {
  return std::to_string(v);
}
inline std::string json_value(double v) {
  return json_number(v);
}
inline std::string json_value(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + json_quote(items[i]);
  return out + "]";
}

// A JSON object built field by field, in insertion order.
class JsonObject {
 public:
  JsonObject& raw(const std::string& key, const std::string& json) {
    body_ += (body_.empty() ? "" : ",") + json_quote(key) + ":" + json;
    return *this;
  }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

// Takes ownership of a host error and throws it as kiln::Error.
inline void throw_if_error(const KilnHostApi* host, KilnError* error) {
  if (error == nullptr) return;
  const KilnErrorCode code = host->error_code(error);
  std::string message = host->error_message(error);
  host->error_release(error);
  throw Error(message, code);
}

}  // namespace detail

// A typed parameter in a component's manifest.
class Param {
 public:
  static Param String(std::string name) { return Param(std::move(name), "string"); }
  static Param Int(std::string name) { return Param(std::move(name), "int"); }
  static Param Float(std::string name) { return Param(std::move(name), "float"); }
  static Param Bool(std::string name) { return Param(std::move(name), "bool"); }
  static Param List(std::string name) { return Param(std::move(name), "list"); }
  static Param Object(std::string name) { return Param(std::move(name), "object"); }

  template <class T>
  Param& default_value(const T& value) {
    default_json_ = detail::json_value(value);
    return *this;
  }
  // A default given as JSON text (lists and objects).
  Param& default_json(std::string json) {
    default_json_ = std::move(json);
    return *this;
  }
  Param& min(double bound) {
    min_ = bound;
    return *this;
  }
  Param& max(double bound) {
    max_ = bound;
    return *this;
  }
  Param& choices(std::vector<std::string> allowed) {
    choices_ = std::move(allowed);
    return *this;
  }
  Param& description(std::string text) {
    description_ = std::move(text);
    return *this;
  }

  std::string to_json() const {
    detail::JsonObject o;
    o.raw("name", json_quote(name_)).raw("type", json_quote(type_));
    o.raw("description", json_quote(description_));
    if (default_json_) o.raw("default", *default_json_);
    if (min_) o.raw("min", detail::json_number(*min_));
    if (max_) o.raw("max", detail::json_number(*max_));
    if (!choices_.empty()) o.raw("choices", detail::json_value(choices_));
    return o.str();
  }

 private:
  Param(std::string name, std::string type) : name_(std::move(name)), type_(std::move(type)) {}
  std::string name_, type_, description_;
  std::optional<std::string> default_json_;
  std::optional<double> min_, max_;
  std::vector<std::string> choices_;
};

// An artifact port (input or output) or an output parameter.
class Port {
 public:
  Port(std::string name, std::string type) : name_(std::move(name)), type_(std::move(type)) {}
  Port& description(std::string text) {
    description_ = std::move(text);
    return *this;
  }
  Port& optional(bool value = true) {
    optional_ = value;
    return *this;
  }
  std::string to_json(bool with_optional) const {
    detail::JsonObject o;
    o.raw("name", json_quote(name_)).raw("type", json_quote(type_));
    o.raw("description", json_quote(description_));
    if (with_optional) o.raw("optional", detail::json_value(optional_));
    return o.str();
  }

 private:
  std::string name_, type_, description_;
  bool optional_ = false;
};

enum class Kind { Data, Tune, Train, Evaluate, Serve, Generic };

inline const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Data:
      return "data";
    case Kind::Tune:
      return "tune";
    case Kind::Train:
      return "train";
    case Kind::Evaluate:
      return "evaluate";
    case Kind::Serve:
      return "serve";
    case Kind::Generic:
      return "generic";
  }
  return "generic";
}

// A component's manifest: what the host validates pipelines against.
class Manifest {
 public:
  Manifest(std::string name, std::string version, Kind kind)
      : name_(std::move(name)), version_(std::move(version)), kind_(kind) {}
  Manifest& description(std::string text) {
    description_ = std::move(text);
    return *this;
  }
  Manifest& param(const Param& p) {
    params_.push_back(p.to_json());
    return *this;
  }
  Manifest& input(const Port& p) {
    inputs_.push_back(p.to_json(true));
    return *this;
  }
  Manifest& output(const Port& p) {
    outputs_.push_back(p.to_json(false));
    return *this;
  }
  Manifest& output_parameter(const Port& p) {
    output_params_.push_back(p.to_json(false));
    return *this;
  }

  std::string to_json() const {
    detail::JsonObject o;
    o.raw("name", json_quote(name_)).raw("version", json_quote(version_));
    o.raw("kind", json_quote(kind_name(kind_))).raw("description", json_quote(description_));
    o.raw("parameters", join(params_)).raw("inputs", join(inputs_));
    o.raw("outputs", join(outputs_)).raw("output_parameters", join(output_params_));
    return o.str();
  }

 private:
  static std::string join(const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
    return out + "]";
  }
  std::string name_, version_, description_;
  Kind kind_;
  std::vector<std::string> params_, inputs_, outputs_, output_params_;
};

// What a component sees of its step: parameters, artifacts, events.
// Valid only during run(); usable from several threads.
class Context {
 public:
  Context(const KilnHostApi* host, KilnStepContext* ctx) : host_(host), ctx_(ctx) {}

  // --- events
  void log(KilnLogLevel level, const std::string& message) const { host_->log(ctx_, level, message.c_str()); }
  void debug(const std::string& message) const { log(KILN_LOG_DEBUG, message); }
  void info(const std::string& message) const { log(KILN_LOG_INFO, message); }
  void warning(const std::string& message) const { log(KILN_LOG_WARNING, message); }
  void error(const std::string& message) const { log(KILN_LOG_ERROR, message); }
  void metric(const std::string& name, double value, int64_t step = -1) const {
    check(host_->metric(ctx_, name.c_str(), value, step));
  }
  void progress(double fraction, const std::string& message = {}) const {
    check(host_->progress(ctx_, fraction, message.empty() ? nullptr : message.c_str()));
  }
  bool cancelled() const { return host_->is_cancelled(ctx_) != 0; }
  // Throws a cancellation error once the host asked the step to stop.
  void throw_if_cancelled() const {
    if (cancelled()) throw Error("cancelled", KILN_ERROR_CANCELLED);
  }

  // --- parameters
  std::string param_string(const std::string& name) const {
    const char* value = nullptr;
    check(host_->param_string(ctx_, name.c_str(), &value));
    return value;
  }
  int64_t param_int(const std::string& name) const {
    int64_t value = 0;
    check(host_->param_int(ctx_, name.c_str(), &value));
    return value;
  }
  double param_float(const std::string& name) const {
    double value = 0;
    check(host_->param_float(ctx_, name.c_str(), &value));
    return value;
  }
  bool param_bool(const std::string& name) const {
    int32_t value = 0;
    check(host_->param_bool(ctx_, name.c_str(), &value));
    return value != 0;
  }
  std::string param_json(const std::string& name) const {
    const char* value = nullptr;
    check(host_->param_json(ctx_, name.c_str(), &value));
    return value;
  }

  // --- artifacts
  std::filesystem::path input_path(const std::string& name) const { return path_from(host_->input_path, name); }
  // The input's directory, or nullopt when an optional input is not wired.
  std::optional<std::filesystem::path> optional_input_path(const std::string& name) const {
    const char* path = nullptr;
    KilnError* error = host_->input_path(ctx_, name.c_str(), &path);
    if (error != nullptr && host_->error_code(error) == KILN_ERROR_NOT_FOUND) {
      host_->error_release(error);
      return std::nullopt;
    }
    check(error);
    return std::filesystem::path(path);
  }
  std::string input_metadata(const std::string& name) const {
    const char* json = nullptr;
    check(host_->input_metadata(ctx_, name.c_str(), &json));
    return json;
  }
  std::filesystem::path output_path(const std::string& name) const { return path_from(host_->output_path, name); }
  void output_metadata(const std::string& name, const std::string& json_object) const {
    check(host_->output_metadata(ctx_, name.c_str(), json_object.c_str()));
  }
  // Sets an output parameter; T is a string, number, bool or list of strings.
  template <class T>
  void set_output(const std::string& name, const T& value) const {
    check(host_->output_parameter(ctx_, name.c_str(), detail::json_value(value).c_str()));
  }
  std::filesystem::path temp_dir() const {
    const char* path = nullptr;
    check(host_->temp_dir(ctx_, &path));
    return path;
  }
  // Kept across retries of this step (ABI 1.2): checkpoint here, resume from here.
  std::filesystem::path checkpoint_dir() const {
    const char* path = nullptr;
    check(host_->checkpoint_dir(ctx_, &path));
    return path;
  }

  const KilnHostApi* host() const { return host_; }
  KilnStepContext* raw() const { return ctx_; }

 private:
  using PathFn = KilnError* (*)(KilnStepContext*, const char*, const char**);
  std::filesystem::path path_from(PathFn fn, const std::string& name) const {
    const char* path = nullptr;
    check(fn(ctx_, name.c_str(), &path));
    return path;
  }
  void check(KilnError* error) const { detail::throw_if_error(host_, error); }

  const KilnHostApi* host_;
  KilnStepContext* ctx_;
};

namespace detail {

// Turns whatever is in flight into an error value. Never throws.
inline KilnError* error_from_current_exception(const KilnHostApi* host) noexcept {
  try {
    try {
      throw;
    } catch (const Error& e) {
      return host->error_new(e.code(), e.what());
    } catch (const std::exception& e) {
      return host->error_new(KILN_ERROR_INTERNAL, (std::string("uncaught exception: ") + e.what()).c_str());
    } catch (...) {
      return host->error_new(KILN_ERROR_INTERNAL, "uncaught exception of unknown type");
    }
  } catch (...) {  // building the message itself failed (out of memory)
    return host->error_new(KILN_ERROR_INTERNAL, "uncaught exception (no memory to describe it)");
  }
}

template <class C>
KilnError* run_trampoline(const KilnHostApi* host, KilnStepContext* ctx, void* /*user_data*/) noexcept {
  try {
    Context context(host, ctx);
    C component;
    component.run(context);
    return nullptr;
  } catch (...) {
    return error_from_current_exception(host);
  }
}

// Whether component C declares `static void warm_up()`.
template <class C, class = void>
struct has_warm_up : std::false_type {};
template <class C>
struct has_warm_up<C, std::void_t<decltype(C::warm_up())>> : std::true_type {};

template <class C>
KilnError* warm_up_trampoline(const KilnHostApi* host, void* /*user_data*/) noexcept {
  try {
    C::warm_up();
    return nullptr;
  } catch (...) {
    return error_from_current_exception(host);
  }
}

// Whether component C declares `void run(Context&)`; a serving runtime may not.
template <class C, class = void>
struct has_run : std::false_type {};
template <class C>
struct has_run<C, std::void_t<decltype(std::declval<C&>().run(std::declval<Context&>()))>> : std::true_type {};

// Whether component C declares `static const KilnServingApi* serving()`.
template <class C, class = void>
struct has_serving : std::false_type {};
template <class C>
struct has_serving<C, std::void_t<decltype(C::serving())>> : std::true_type {};

// Whether component C declares `static const KilnTunerApi* tuner()`.
template <class C, class = void>
struct has_tuner : std::false_type {};
template <class C>
struct has_tuner<C, std::void_t<decltype(C::tuner())>> : std::true_type {};

// The C description of component C; built once, lives for the process.
template <class C>
const KilnComponent* component_of() {
  static const std::string manifest = C::manifest().to_json();
  KilnWarmUpFn warm_up = nullptr;
  if constexpr (has_warm_up<C>::value) warm_up = &warm_up_trampoline<C>;
  KilnRunFn run = nullptr;
  if constexpr (has_run<C>::value) run = &run_trampoline<C>;
  const KilnServingApi* serving = nullptr;
  if constexpr (has_serving<C>::value) serving = C::serving();
  const KilnTunerApi* tuner = nullptr;
  if constexpr (has_tuner<C>::value) tuner = C::tuner();
  static const KilnComponent component{
      sizeof(KilnComponent), 0, manifest.c_str(), run, nullptr, tuner, serving, warm_up};
  return &component;
}

template <class... Cs>
KilnError* plugin_init(const KilnHostApi* host, const KilnPlugin** plugin_out) noexcept {
  try {
    static const std::array<const KilnComponent*, sizeof...(Cs)> components{component_of<Cs>()...};
    static const KilnPlugin plugin{sizeof(KilnPlugin), static_cast<uint32_t>(components.size()), components.data()};
    *plugin_out = &plugin;
    return nullptr;
  } catch (...) {
    return error_from_current_exception(host);
  }
}

}  // namespace detail
}  // namespace kiln

// Declares the plugin: list every component class of the library, once.
#define KILN_PLUGIN(...)                                                                                           \
  extern "C" KILN_PLUGIN_EXPORT const KilnPluginEntry* kiln_plugin_entry(void) {                                   \
    static const KilnPluginEntry entry{sizeof(KilnPluginEntry), KILN_ABI_VERSION_MAJOR, KILN_ABI_VERSION_MINOR, 0, \
                                       &::kiln::detail::plugin_init<__VA_ARGS__>};                                 \
    return &entry;                                                                                                 \
  }

// Tuners and serving runtimes as C++ classes (kiln::tuner_table<T>(),
// kiln::serving_table<M>()): they build on everything above.
#include <kiln/sdk/serving_runtime.hpp>  // IWYU pragma: export
#include <kiln/sdk/tuner.hpp>            // IWYU pragma: export

#endif  // KILN_SDK_HPP

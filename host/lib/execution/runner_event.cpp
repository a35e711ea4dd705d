// The runner channel's events and their JSON lines: see runner_event.hpp.
#include <kiln/host/runner_event.hpp>

#include <kiln/host/error.hpp>

#include <stdexcept>
#include <utility>
#include <vector>

namespace kiln::host {
namespace {

constexpr const char* kEventNames[] = {"hello",           "log",   "metric", "progress", "output_parameter",
                                       "output_metadata", "result"};
constexpr const char* kLevelNames[] = {"debug", "info", "warning", "error"};

static_assert(std::variant_size_v<RunnerEvent> == std::size(kEventNames));
static_assert(
    std::is_same_v<std::variant_alternative_t<static_cast<size_t>(RunnerEventKind::Result), RunnerEvent>, ResultEvent>);

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// Reads the fields of one event object; the first problem wins.
class FieldReader {
 public:
  FieldReader(const Json& object, std::string_view event) : object_(object), event_(event) {}

  std::string string(const char* key, bool optional = false) {
    const Json* field = find(key, optional, "a string");
    if (field == nullptr) return {};
    if (!field->is_string()) return wrong(key, "a string"), std::string();
    return field->get<std::string>();
  }
  double number(const char* key) {
    const Json* field = find(key, false, "a number");
    if (field == nullptr) return 0;
    if (!field->is_number()) return wrong(key, "a number"), 0.0;
    return field->get<double>();
  }
  int64_t integer(const char* key) {
    const Json* field = find(key, false, "an integer");
    if (field == nullptr) return 0;
    if (field->is_number_integer() && !(field->is_number_unsigned() && field->get<uint64_t>() > INT64_MAX))
      return field->get<int64_t>();
    return wrong(key, "an integer"), 0;
  }
  bool boolean(const char* key) {
    const Json* field = find(key, false, "a boolean");
    if (field == nullptr) return false;
    if (!field->is_boolean()) return wrong(key, "a boolean"), false;
    return field->get<bool>();
  }
  Json any(const char* key) {
    const Json* field = find(key, false, "a value");
    return field == nullptr ? Json() : *field;
  }
  Json object(const char* key) {
    const Json* field = find(key, false, "an object");
    if (field == nullptr) return Json::object();
    if (!field->is_object()) return wrong(key, "an object"), Json::object();
    return *field;
  }
  LogLevel level(const char* key) {
    const std::string text = string(key);
    for (size_t i = 0; i < std::size(kLevelNames); ++i)
      if (text == kLevelNames[i]) return static_cast<LogLevel>(i);
    if (error_.empty()) error_ = fault(key, "debug, info, warning or error");
    return LogLevel::Info;
  }

  const std::string& error() const { return error_; }

 private:
  const Json* find(const char* key, bool optional, const char* type) {
    const auto it = object_.find(key);
    if (it != object_.end()) return &*it;
    if (!optional && error_.empty()) error_ = fault(key, type) + " (missing)";
    return nullptr;
  }
  void wrong(const char* key, const char* type) {
    if (error_.empty()) error_ = fault(key, type);
  }
  std::string fault(const char* key, const char* type) const {
    return "\"" + std::string(event_) + "\" needs \"" + key + "\": " + type;
  }

  const Json& object_;
  std::string_view event_;
  std::string error_;
};

std::optional<RunnerEvent> read_event(RunnerEventKind kind, FieldReader& in) {
  switch (kind) {
    case RunnerEventKind::Hello: {
      const int64_t channel = in.integer("channel");
      return HelloEvent{channel, in.integer("pid")};
    }
    case RunnerEventKind::Log: {
      const LogLevel level = in.level("level");
      return LogEvent{level, in.string("message")};
    }
    case RunnerEventKind::Metric: {
      std::string name = in.string("name");
      const double value = in.number("value");
      return MetricEvent{std::move(name), value, in.integer("step")};
    }
    case RunnerEventKind::Progress: {
      const double fraction = in.number("fraction");
      return ProgressEvent{fraction, in.string("message", true)};
    }
    case RunnerEventKind::OutputParameter: {
      std::string name = in.string("name");
      return OutputParameterEvent{std::move(name), in.any("value")};
    }
    case RunnerEventKind::OutputMetadata: {
      std::string name = in.string("name");
      return OutputMetadataEvent{std::move(name), in.object("metadata")};
    }
    case RunnerEventKind::Result: {
      const bool ok = in.boolean("ok");
      const int64_t code = in.integer("code");
      return ResultEvent{ok, code, in.string("message")};
    }
  }
  return std::nullopt;
}

}  // namespace

LogLevel log_level_from_abi(KilnLogLevel level) {
  if (level >= KILN_LOG_ERROR) return LogLevel::Error;
  if (level >= KILN_LOG_WARNING) return LogLevel::Warning;
  if (level >= KILN_LOG_INFO) return LogLevel::Info;
  return LogLevel::Debug;
}

const char* log_level_text(LogLevel level) {
  return kLevelNames[static_cast<size_t>(level)];
}

RunnerEventKind kind_of(const RunnerEvent& event) {
  return static_cast<RunnerEventKind>(event.index());
}

const char* event_name(RunnerEventKind kind) {
  return kEventNames[static_cast<size_t>(kind)];
}

RunnerEvent warning_event(std::string message) {
  return LogEvent{LogLevel::Warning, std::move(message)};
}

Json event_json(const RunnerEvent& event) {
  Json out{{"event", event_name(kind_of(event))}};
  std::visit(Overloaded{
                 [&](const HelloEvent& e) {
                   out["channel"] = e.channel;
                   out["pid"] = e.pid;
                 },
                 [&](const LogEvent& e) {
                   out["level"] = log_level_text(e.level);
                   out["message"] = e.message;
                 },
                 [&](const MetricEvent& e) {
                   out["name"] = e.name;
                   out["value"] = e.value;
                   out["step"] = e.step;
                 },
                 [&](const ProgressEvent& e) {
                   out["fraction"] = e.fraction;
                   out["message"] = e.message;
                 },
                 [&](const OutputParameterEvent& e) {
                   require_shallow(e.value, "output parameter '" + e.name + "'");
                   out["name"] = e.name;
                   out["value"] = e.value;
                 },
                 [&](const OutputMetadataEvent& e) {
                   require_shallow(e.metadata, "metadata of output '" + e.name + "'");
                   out["name"] = e.name;
                   out["metadata"] = e.metadata;
                 },
                 [&](const ResultEvent& e) {
                   out["ok"] = e.ok;
                   out["code"] = e.code;
                   out["message"] = e.message;
                 },
             },
             event);
  return out;
}

std::string encode(const RunnerEvent& event) {
  return event_json(event).dump(-1, ' ', false, Json::error_handler_t::replace);
}

DecodedLine decode(std::string_view line) {
  const auto fail = [](std::string why) { return DecodedLine{std::nullopt, std::move(why)}; };
  if (line.size() > kMaxRunnerLineBytes)
    return fail("longer than the channel's limit of " + std::to_string(kMaxRunnerLineBytes) + " bytes");
  // The event object is one level; its values may nest kMaxRunnerValueDepth more.
  if (json_text_nested_deeper_than(line, kMaxRunnerValueDepth + 1))
    return fail("a value nested deeper than " + std::to_string(kMaxRunnerValueDepth) + " levels");
  Json object;
  try {
    object = Json::parse(line.begin(), line.end());
  } catch (const Json::parse_error& e) {
    return fail("not JSON (at byte " + std::to_string(e.byte) + ")");
  } catch (const Json::exception&) {  // out_of_range: a number past double's range, e.g. 1e400
    return fail("not JSON (a number out of range)");
  }
  if (!object.is_object()) return fail("not a JSON object");
  const auto name = object.find("event");
  if (name == object.end() || !name->is_string()) return fail("no \"event\" string");
  const std::string& text = name->get_ref<const std::string&>();
  for (size_t i = 0; i < std::size(kEventNames); ++i) {
    if (text != kEventNames[i]) continue;
    FieldReader in(object, text);
    auto event = read_event(static_cast<RunnerEventKind>(i), in);
    if (!in.error().empty()) return fail(in.error());
    return DecodedLine{std::move(event), {}};
  }
  return fail("unknown event \"" + text.substr(0, 64) + "\"");
}

}  // namespace kiln::host

#include <kiln/host/tuner_log.hpp>

#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace kiln::host {
namespace {

[[noreturn]] void bad(const std::string& name, size_t line, const std::string& what) {
  throw std::runtime_error(name + ":" + std::to_string(line) + ": " + what);
}

int trial_id(const Json& value, const std::string& name, size_t line, const char* field) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > INT32_MAX)
    bad(name, line, std::string(field) + ": a trial id (an integer >= 0) is required");
  return static_cast<int>(value.get<int64_t>());
}

TunerRecord parse_line(const Json& j, const std::string& name, size_t line) {
  if (!j.is_object()) bad(name, line, "expected a JSON object");
  TunerRecord r;
  if (j.contains("suggest")) {
    r.kind = TunerRecord::Kind::Suggest;
    if (!j["suggest"].is_array()) bad(name, line, "suggest: a list of trials is required");
    for (const Json& t : j["suggest"]) {
      if (!t.is_object() || !t.contains("trial") || !t.contains("parameters") || !t["parameters"].is_object())
        bad(name, line, "suggest: each trial needs \"trial\" and an object \"parameters\"");
      r.trials.push_back({trial_id(t["trial"], name, line, "suggest.trial"), t["parameters"]});
    }
    return r;
  }
  if (!j.contains("observe")) bad(name, line, "expected \"suggest\" or \"observe\"");
  r.kind = TunerRecord::Kind::Observe;
  r.trial = trial_id(j["observe"], name, line, "observe");
  if (!j.contains("step") || !j["step"].is_number_integer()) bad(name, line, "step: an integer is required");
  r.step = j["step"].get<int64_t>();
  const Json value = j.value("value", Json());
  if (!value.is_null() && !value.is_number()) bad(name, line, "value: a number or null is required");
  r.value = value.is_null() ? std::nan("") : value.get<double>();
  if (j.contains("status")) {
    if (!j["status"].is_string()) bad(name, line, "status: a string is required");
    const auto status = trial_status_from_name(j["status"].get<std::string>());
    if (!status || *status == TrialStatus::Running)
      bad(name, line, "status: succeeded, failed or early-stopped is required");
    r.final = true;
    r.status = *status;
  }
  if (j.contains("values")) {
    if (!r.final || !j["values"].is_array()) bad(name, line, "values: a list on a final observe is required");
    for (const Json& v : j["values"]) {
      if (!v.is_null() && !v.is_number()) bad(name, line, "values: numbers or null are required");
      r.values.push_back(v.is_null() ? std::nan("") : v.get<double>());
    }
  }
  return r;
}

}  // namespace

std::string TunerRecord::to_line() const {
  Json j;
  if (kind == Kind::Suggest) {
    j["suggest"] = Json::array();
    for (const SuggestedTrial& t : trials) j["suggest"].push_back({{"trial", t.id}, {"parameters", t.parameters}});
  } else {
    j["observe"] = trial;
    j["step"] = step;
    j["value"] = std::isfinite(value) ? Json(value) : Json();
    if (final) j["status"] = trial_status_name(status);
    if (final && !values.empty()) {
      j["values"] = Json::array();
      for (const double v : values) j["values"].push_back(std::isfinite(v) ? Json(v) : Json());
    }
  }
  return j.dump() + "\n";
}

std::vector<TunerRecord> TunerLog::parse(std::string_view text, const std::string& name) {
  if (text.size() > kMaxBytes)
    throw std::runtime_error(name + ": " + std::to_string(text.size()) + " bytes, more than the " +
                             std::to_string(kMaxBytes) + " a tuner log may have");
  std::vector<TunerRecord> out;
  size_t start = 0, line = 0;
  for (;;) {
    const size_t end = text.find('\n', start);
    if (end == std::string_view::npos) break;  // no line, or a last one cut mid-write
    ++line;
    const std::string_view body = text.substr(start, end - start);
    start = end + 1;
    Json j;
    try {
      j = Json::parse(body.begin(), body.end());
    } catch (const Json::exception&) {
      bad(name, line, "not JSON");
    }
    out.push_back(parse_line(j, name, line));
  }
  return out;
}

std::vector<TunerRecord> TunerLog::read(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return {};
  if (size > kMaxBytes)
    throw std::runtime_error(path.string() + ": " + std::to_string(size) + " bytes, more than the " +
                             std::to_string(kMaxBytes) + " a tuner log may have");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path.string());
}

TunerLog::TunerLog(std::filesystem::path path) : path_(std::move(path)) {
  std::filesystem::create_directories(path_.parent_path());
  // A last line cut by a crash is dropped before anything is appended after it.
  std::error_code ec;
  const auto size = std::filesystem::file_size(path_, ec);
  if (!ec && size > 0) {
    std::ifstream in(path_, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (keep != text.size()) std::filesystem::resize_file(path_, keep);
  }
  file_ = std::fopen(path_.c_str(), "ab");
  if (file_ == nullptr) throw std::runtime_error(path_.string() + ": cannot open the tuner log for appending");
}

TunerLog::~TunerLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void TunerLog::append(const TunerRecord& record) {
  const std::string line = record.to_line();
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw std::runtime_error(path_.string() + ": cannot append to the tuner log");
}

}  // namespace kiln::host

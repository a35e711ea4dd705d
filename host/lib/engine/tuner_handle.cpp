#include <kiln/host/error.hpp>
#include <kiln/host/step_context.hpp>
#include <kiln/host/tuner_handle.hpp>

#include <climits>
#include <cstddef>
#include <utility>

namespace kiln::host {
namespace {

// Suggest's answer is plugin text: bounded before it is parsed.
constexpr size_t kMaxSuggestBytes = size_t{16} << 20;

// Takes ownership of a tuner's error and throws it.
void check(KilnError* raw) {
  const ErrorPtr error(raw);
  if (error) throw TunerError(error->code, error->message);
}

[[noreturn]] void bad_answer(const std::string& what, const Json& answer) {
  std::string text = answer.dump();
  if (text.size() > 200) text = text.substr(0, 200) + "...";
  throw TunerError(KILN_ERROR_INTERNAL, "suggest returned " + what + ": " + text);
}

}  // namespace

const char* trial_status_name(TrialStatus status) noexcept {
  switch (status) {
    case TrialStatus::Running:
      return "running";
    case TrialStatus::Succeeded:
      return "succeeded";
    case TrialStatus::Failed:
      return "failed";
    case TrialStatus::EarlyStopped:
      return "early-stopped";
  }
  return "running";
}

std::optional<TrialStatus> trial_status_from_name(std::string_view name) noexcept {
  for (const TrialStatus s :
       {TrialStatus::Running, TrialStatus::Succeeded, TrialStatus::Failed, TrialStatus::EarlyStopped})
    if (name == trial_status_name(s)) return s;
  return std::nullopt;
}

TunerHandle::TunerHandle(const KilnTunerApi* api, const Json& config) : api_(api) {
  if (api == nullptr || api->struct_size < offsetof(KilnTunerApi, destroy) + sizeof(api->destroy) ||
      api->create == nullptr || api->suggest == nullptr || api->observe == nullptr || api->should_stop == nullptr ||
      api->destroy == nullptr)
    throw std::invalid_argument("not a complete tuner table");
  check(api_->create(host_api(), config.dump().c_str(), &tuner_));
  if (tuner_ == nullptr) throw TunerError(KILN_ERROR_INTERNAL, "create succeeded but returned no tuner");
}

TunerHandle::~TunerHandle() {
  reset();
}

TunerHandle::TunerHandle(TunerHandle&& other) noexcept
    : api_(std::exchange(other.api_, nullptr)),
      tuner_(std::exchange(other.tuner_, nullptr)),
      suggested_(std::move(other.suggested_)) {}

TunerHandle& TunerHandle::operator=(TunerHandle&& other) noexcept {
  if (this != &other) {
    reset();
    api_ = std::exchange(other.api_, nullptr);
    tuner_ = std::exchange(other.tuner_, nullptr);
    suggested_ = std::move(other.suggested_);
  }
  return *this;
}

void TunerHandle::reset() noexcept {
  if (api_ != nullptr && tuner_ != nullptr) api_->destroy(tuner_);
  tuner_ = nullptr;
}

std::vector<SuggestedTrial> TunerHandle::suggest(uint32_t max_count) {
  if (tuner_ == nullptr) throw std::logic_error("suggest on a moved-from tuner handle");
  const char* text = nullptr;
  check(api_->suggest(tuner_, max_count, &text));
  if (text == nullptr) throw TunerError(KILN_ERROR_INTERNAL, "suggest returned no text");
  const std::string_view view(text);
  if (view.size() > kMaxSuggestBytes)
    throw TunerError(KILN_ERROR_INTERNAL, "suggest returned " + std::to_string(view.size()) + " bytes (limit " +
                                              std::to_string(kMaxSuggestBytes) + ")");
  Json answer;
  try {
    answer = Json::parse(view);
  } catch (const Json::exception& e) {
    throw TunerError(KILN_ERROR_INTERNAL, std::string("suggest returned invalid JSON: ") + e.what());
  }
  if (!answer.is_array()) bad_answer("something other than a list", answer);
  if (answer.size() > max_count)
    bad_answer(std::to_string(answer.size()) + " trials where at most " + std::to_string(max_count) +
                   " were asked for",
               answer);
  std::vector<SuggestedTrial> trials;
  std::set<int> seen = suggested_;
  for (Json& item : answer) {
    if (!item.is_object() || !item.contains("trial") || !item.contains("parameters"))
      bad_answer("an entry that is not {\"trial\": id, \"parameters\": {...}}", item);
    const Json& id = item["trial"];
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT_MAX)
      bad_answer("a trial id that is not a non-negative int", item);
    if (!item["parameters"].is_object()) bad_answer("parameters that are not an object", item);
    SuggestedTrial trial{id.get<int>(), std::move(item["parameters"])};
    if (!seen.insert(trial.id).second)
      throw TunerError(KILN_ERROR_INTERNAL, "suggest returned trial " + std::to_string(trial.id) + " again");
    trials.push_back(std::move(trial));
  }
  suggested_ = std::move(seen);
  return trials;
}

void TunerHandle::observe(int64_t trial, int64_t step, double value, bool final, TrialStatus status) {
  if (tuner_ == nullptr) throw std::logic_error("observe on a moved-from tuner handle");
  if (final && status == TrialStatus::Running)
    throw std::invalid_argument("a final report needs a final status (succeeded, failed or early-stopped)");
  const std::string status_json = final ? Json(trial_status_name(status)).dump() : std::string();
  check(api_->observe(tuner_, trial, step, value, final ? 1 : 0, final ? status_json.c_str() : nullptr));
}

bool TunerHandle::takes_objectives() const noexcept {
  return api_ != nullptr &&
         api_->struct_size >= offsetof(KilnTunerApi, observe_objectives) + sizeof(api_->observe_objectives) &&
         api_->observe_objectives != nullptr;
}

void TunerHandle::observe_objectives(int64_t trial, const std::vector<double>& values) {
  if (tuner_ == nullptr) throw std::logic_error("observe_objectives on a moved-from tuner handle");
  if (!takes_objectives()) return;
  check(api_->observe_objectives(tuner_, trial, values.data(), static_cast<uint32_t>(values.size())));
}

bool TunerHandle::should_stop(int64_t trial) {
  if (tuner_ == nullptr) throw std::logic_error("should_stop on a moved-from tuner handle");
  int32_t stop = 0;
  check(api_->should_stop(tuner_, trial, &stop));
  return stop != 0;
}

}  // namespace kiln::host

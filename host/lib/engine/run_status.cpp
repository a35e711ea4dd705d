#include <kiln/host/run_status.hpp>

#include <array>
#include <utility>

namespace kiln::host {
namespace {

template <typename E, size_t N>
std::optional<E> find(const std::array<std::pair<E, std::string_view>, N>& names, std::string_view text) {
  for (const auto& [value, name] : names)
    if (name == text) return value;
  return std::nullopt;
}

template <typename E, size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& names, E value) {
  for (const auto& [v, name] : names)
    if (v == value) return name;
  return "unknown";
}

constexpr std::array<std::pair<StepStatus, std::string_view>, 9> kStepNames{{
    {StepStatus::pending, "pending"},
    {StepStatus::running, "running"},
    {StepStatus::succeeded, "succeeded"},
    {StepStatus::failed, "failed"},
    {StepStatus::cancelled, "cancelled"},
    {StepStatus::skipped, "skipped"},
    {StepStatus::cached, "cached"},
    {StepStatus::early_stopped, "early-stopped"},
    {StepStatus::upstream_failed, "upstream-failed"},
}};

constexpr std::array<std::pair<RunStatus, std::string_view>, 4> kRunNames{{
    {RunStatus::running, "running"},
    {RunStatus::succeeded, "succeeded"},
    {RunStatus::failed, "failed"},
    {RunStatus::cancelled, "cancelled"},
}};

constexpr std::array<std::pair<FailureClass, std::string_view>, 7> kFailureNames{{
    {FailureClass::none, ""},
    {FailureClass::error, "error"},
    {FailureClass::crash, "crash"},
    {FailureClass::timeout, "timeout"},
    {FailureClass::stopped, "cancelled"},
    {FailureClass::out_of_memory, "out_of_memory"},
    {FailureClass::lost, "lost"},
}};

}  // namespace

std::string_view to_string(StepStatus status) { return name_of(kStepNames, status); }
std::optional<StepStatus> parse_step_status(std::string_view text) { return find(kStepNames, text); }
std::string_view to_string(RunStatus status) { return name_of(kRunNames, status); }
std::optional<RunStatus> parse_run_status(std::string_view text) { return find(kRunNames, text); }
std::string_view to_string(FailureClass failure) { return name_of(kFailureNames, failure); }
std::optional<FailureClass> parse_failure_class(std::string_view text) { return find(kFailureNames, text); }

}  // namespace kiln::host

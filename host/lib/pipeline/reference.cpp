#include <kiln/host/reference.hpp>
#include <kiln/host/suggest.hpp>

#include <utility>

namespace kiln::host {
namespace {

constexpr std::string_view kParams = "params";
constexpr std::string_view kSteps = "steps";
constexpr std::string_view kRun = "run";
constexpr std::string_view kOutputsMarker = ".outputs.";

constexpr std::pair<Reference::Kind, std::string_view> kRunFields[] = {
    {Reference::Kind::RunStatus, "run.status"},
    {Reference::Kind::RunId, "run.id"},
    {Reference::Kind::RunName, "run.name"},
    {Reference::Kind::RunFailedSteps, "run.failed_steps"},
};

// Whether `text` is dotted parts, each a name.
bool is_dotted_name(std::string_view text) {
  size_t part_start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != '.') {
      if (!(i == part_start ? is_reference_name_start(text[i]) : is_reference_name_char(text[i]))) return false;
      continue;
    }
    if (i == part_start) return false;  // an empty part
    part_start = i + 1;
  }
  return true;
}

Reference make(Reference::Kind kind) {
  Reference reference;
  reference.kind = kind;
  return reference;
}

Reference run_field(std::string_view text) {
  for (const auto& [kind, spelling] : kRunFields)
    if (text == spelling) return make(kind);
  const std::string field(text);
  throw ReferenceError(ReferenceError::Problem::UnknownRunField,
                       "unknown run field '" + field + "'" + did_you_mean(field, run_references()));
}

}  // namespace

ReferenceError::ReferenceError(Problem problem, const std::string& message)
    : std::invalid_argument(message), problem_(problem) {}

const std::vector<std::string>& run_references() {
  static const std::vector<std::string> fields = [] {
    std::vector<std::string> spellings;
    for (const auto& field : kRunFields) spellings.emplace_back(field.second);
    return spellings;
  }();
  return fields;
}

std::optional<StepOutputName> split_step_output(std::string_view text) {
  const size_t marker = text.find(kOutputsMarker);
  if (marker == std::string_view::npos || marker == 0 || marker + kOutputsMarker.size() >= text.size())
    return std::nullopt;
  return StepOutputName{std::string(text.substr(0, marker)), std::string(text.substr(marker + kOutputsMarker.size()))};
}

Reference parse_reference(std::string_view text) {
  using Kind = Reference::Kind;
  if (!is_dotted_name(text))
    throw ReferenceError(
        ReferenceError::Problem::NotAName,
        "'" + std::string(text) +
            "' is not a reference (dotted names, each a letter or '_' then letters, digits, '_' or '-')");
  const size_t dot = text.find('.');
  const std::string_view root = text.substr(0, dot);
  const std::string_view rest = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (text == "item") return make(Kind::Item);
  if (text == "pipeline.dir") return make(Kind::PipelineDir);
  if (root == kParams) {
    if (rest.empty())
      throw ReferenceError(ReferenceError::Problem::ParamForm,
                           "'" + std::string(text) + "' must have the form params.NAME");
    Reference reference = make(Kind::Param);
    reference.name = std::string(rest);
    return reference;
  }
  if (root == kRun) return run_field(text);
  if (root == kSteps) {
    const auto split = split_step_output(rest);
    if (!split)
      throw ReferenceError(ReferenceError::Problem::StepOutputForm,
                           "'" + std::string(text) + "' must have the form steps.STEP.outputs.NAME");
    Reference reference = make(Kind::StepOutput);
    reference.step = split->step;
    reference.output = split->output;
    return reference;
  }
  throw ReferenceError(ReferenceError::Problem::UnknownRoot,
                       "unknown reference '" + std::string(text) +
                           "' (use params.NAME, steps.STEP.outputs.NAME, item, pipeline.dir or run.status)");
}

std::string Reference::text() const {
  switch (kind) {
    case Kind::Param:
      return std::string(kParams) + "." + name;
    case Kind::StepOutput:
      return std::string(kSteps) + "." + step + std::string(kOutputsMarker) + output;
    case Kind::Item:
      return "item";
    case Kind::PipelineDir:
      return "pipeline.dir";
    case Kind::RunStatus:
    case Kind::RunId:
    case Kind::RunName:
    case Kind::RunFailedSteps:
      for (const auto& [field_kind, spelling] : kRunFields)
        if (field_kind == kind) return std::string(spelling);
      break;
  }
  return {};
}

}  // namespace kiln::host

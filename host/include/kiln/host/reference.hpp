// A typed reference: what a name in a `when:` condition, a `for_each:` or a
// `{{ }}` placeholder points at. The one grammar of reference text, and the
// only code that splits it:
//
//   params.NAME               a pipeline parameter (NAME: the rest of the text)
//   steps.STEP.outputs.NAME   an output parameter of another step (split at
//                             the first ".outputs."; STEP may be dotted, as
//                             component names are: steps.data.csv.outputs.rows)
//   item                      the current item of a for_each step
//   pipeline.dir              the directory of the pipeline file
//   run.status  run.id  run.name  run.failed_steps
//                             the run, for finally steps
//
// Each dotted part is a name: [A-Za-z_][A-Za-z0-9_-]*, as the expression
// lexer reads them. Whether a parameter, step or output exists is the plan's
// question, not the grammar's.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::host {

struct Reference {
  enum class Kind { Param, StepOutput, Item, PipelineDir, RunStatus, RunId, RunName, RunFailedSteps };
  Kind kind = Kind::Item;
  std::string name;          // Param: the parameter
  std::string step, output;  // StepOutput: the step and its output parameter

  // The reference as it is written ("steps.train.outputs.loss").
  std::string text() const;
  bool operator==(const Reference& other) const {
    return kind == other.kind && name == other.name && step == other.step && output == other.output;
  }
  bool operator!=(const Reference& other) const { return !(*this == other); }
};

// Why a text is not a reference; what() is the message for the user.
class ReferenceError : public std::invalid_argument {
 public:
  enum class Problem {
    NotAName,         // empty, or a part that is not a name ("params..x", "a b")
    UnknownRoot,      // neither params, steps, item, pipeline.dir nor run.*
    ParamForm,        // "params" without a NAME
    StepOutputForm,   // "steps..." not of the form steps.STEP.outputs.NAME
    UnknownRunField,  // "run.x" other than the four run fields
  };
  ReferenceError(Problem problem, const std::string& message);
  Problem problem() const noexcept { return problem_; }

 private:
  Problem problem_;
};

// Parses reference text; throws ReferenceError saying what is wrong.
Reference parse_reference(std::string_view text);

// "STEP.outputs.NAME", split at the first ".outputs.": the tail of a
// steps.* reference and the whole of an input wire. nullopt when there is
// no ".outputs." or either side is empty.
struct StepOutputName {
  std::string step, output;
};
std::optional<StepOutputName> split_step_output(std::string_view text);

// The run fields a finally step may read.
const std::vector<std::string>& run_references();

// The characters of a name part, for the expression lexer.
inline bool is_reference_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline bool is_reference_name_char(char c) {
  return is_reference_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

}  // namespace kiln::host

// The reference grammar (reference.hpp) and how expressions and placeholders
// bind to it.
#include <gtest/gtest.h>
#include <kiln/host/expression.hpp>
#include <kiln/host/placeholders.hpp>
#include <kiln/host/reference.hpp>

#include <ostream>
#include <string>
#include <variant>
#include <vector>

namespace kiln::host {

// How gtest prints a Reference in a failed expectation.
void PrintTo(const Reference& reference, std::ostream* out) {
  *out << reference.text();
}

}  // namespace kiln::host

using kiln::host::Expression;
using kiln::host::ExpressionError;
using kiln::host::Json;
using kiln::host::parse_reference;
using kiln::host::Reference;
using kiln::host::ReferenceError;
using kiln::host::split_step_output;
using Kind = kiln::host::Reference::Kind;
using Problem = kiln::host::ReferenceError::Problem;

namespace {

Reference make(Kind kind, std::string name = "", std::string step = "", std::string output = "") {
  Reference reference;
  reference.kind = kind;
  reference.name = std::move(name);
  reference.step = std::move(step);
  reference.output = std::move(output);
  return reference;
}

struct Failure {
  Problem problem;
  std::string message;
};

// The ReferenceError parse_reference throws for `text`; fails the test if it parses.
Failure failure_of(const std::string& text) {
  try {
    const Reference parsed = parse_reference(text);
    ADD_FAILURE() << "'" << text << "' parsed as " << parsed.text();
  } catch (const ReferenceError& e) {
    return {e.problem(), e.what()};
  }
  return {Problem::NotAName, "<parsed>"};
}

TEST(Reference, ParsesEveryKind) {
  EXPECT_EQ(parse_reference("params.epochs"), make(Kind::Param, "epochs"));
  EXPECT_EQ(parse_reference("steps.train.outputs.accuracy"), make(Kind::StepOutput, "", "train", "accuracy"));
  EXPECT_EQ(parse_reference("item"), make(Kind::Item));
  EXPECT_EQ(parse_reference("pipeline.dir"), make(Kind::PipelineDir));
  EXPECT_EQ(parse_reference("run.status"), make(Kind::RunStatus));
  EXPECT_EQ(parse_reference("run.id"), make(Kind::RunId));
  EXPECT_EQ(parse_reference("run.name"), make(Kind::RunName));
  EXPECT_EQ(parse_reference("run.failed_steps"), make(Kind::RunFailedSteps));
}

TEST(Reference, NamesMayHoldDashesDigitsAndKeywords) {
  EXPECT_EQ(parse_reference("params.in"), make(Kind::Param, "in"));
  EXPECT_EQ(parse_reference("params.learning-rate_2"), make(Kind::Param, "learning-rate_2"));
  EXPECT_EQ(parse_reference("steps.pre-process.outputs.ok"), make(Kind::StepOutput, "", "pre-process", "ok"));
}

TEST(Reference, StepNamesMayBeDottedComponentNames) {
  // A step may be named after its component ("data.csv"): the split is at the first ".outputs.".
  EXPECT_EQ(parse_reference("steps.data.csv.outputs.rows"), make(Kind::StepOutput, "", "data.csv", "rows"));
  EXPECT_EQ(parse_reference("steps.a.outputs.outputs.b"), make(Kind::StepOutput, "", "a", "outputs.b"));
  EXPECT_EQ(parse_reference("steps.outputs.outputs.x"), make(Kind::StepOutput, "", "outputs", "x"));
}

TEST(Reference, TextIsWhatWasWritten) {
  for (const char* text : {"params.epochs", "steps.data.csv.outputs.rows", "item", "pipeline.dir", "run.status",
                           "run.id", "run.name", "run.failed_steps"})
    EXPECT_EQ(parse_reference(text).text(), text);
}

TEST(Reference, RejectsTextThatIsNoDottedName) {
  const std::string rule = "' is not a reference (dotted names, each a letter or '_' then letters, digits, '_' or '-')";
  for (const char* text : {"", ".", "params.", ".params", "params..x", "params.a b", "1x", "params.2x", "a.-b",
                           "run.status ", "steps.a.outputs.é", "item\n"}) {
    const Failure f = failure_of(text);
    EXPECT_EQ(f.problem, Problem::NotAName) << text;
    EXPECT_EQ(f.message, "'" + std::string(text) + rule) << text;
  }
}

TEST(Reference, RejectsUnknownRoots) {
  const std::string help = "' (use params.NAME, steps.STEP.outputs.NAME, item, pipeline.dir or run.status)";
  for (const char* text : {"paramz.who", "x", "x_1", "step.a.outputs.b", "items", "item.x", "pipeline", "pipeline.file",
                           "pipeline.dir.x", "Params.a"}) {
    const Failure f = failure_of(text);
    EXPECT_EQ(f.problem, Problem::UnknownRoot) << text;
    EXPECT_EQ(f.message, "unknown reference '" + std::string(text) + help) << text;
  }
}

TEST(Reference, ParamsNeedAName) {
  const Failure f = failure_of("params");
  EXPECT_EQ(f.problem, Problem::ParamForm);
  EXPECT_EQ(f.message, "'params' must have the form params.NAME");
  // What exists is the plan's question: the NAME is the rest of the text.
  EXPECT_EQ(parse_reference("params.a.b"), make(Kind::Param, "a.b"));
}

TEST(Reference, StepReferencesNeedStepOutputsName) {
  for (const char* text : {"steps", "steps.train", "steps.train.accuracy", "steps.outputs.x", "steps.train.outputs",
                           "steps.train.output.x"}) {
    const Failure f = failure_of(text);
    EXPECT_EQ(f.problem, Problem::StepOutputForm) << text;
    EXPECT_EQ(f.message, "'" + std::string(text) + "' must have the form steps.STEP.outputs.NAME") << text;
  }
}

TEST(Reference, RejectsUnknownRunFieldsWithASuggestion) {
  Failure f = failure_of("run.statu");
  EXPECT_EQ(f.problem, Problem::UnknownRunField);
  EXPECT_EQ(f.message, "unknown run field 'run.statu' (did you mean 'run.status'?)");
  f = failure_of("run.failed");
  EXPECT_EQ(f.message, "unknown run field 'run.failed'");
  f = failure_of("run");
  EXPECT_EQ(f.problem, Problem::UnknownRunField);
  EXPECT_EQ(f.message, "unknown run field 'run'");
  f = failure_of("run.status.x");
  EXPECT_EQ(f.problem, Problem::UnknownRunField);
}

TEST(Reference, SplitsInputWires) {
  const auto wire = split_step_output("prepare.outputs.table");
  ASSERT_TRUE(wire);
  EXPECT_EQ(wire->step, "prepare");
  EXPECT_EQ(wire->output, "table");
  const auto dotted = split_step_output("data.csv.outputs.table");
  ASSERT_TRUE(dotted);
  EXPECT_EQ(dotted->step, "data.csv");
  EXPECT_EQ(dotted->output, "table");
  for (const char* text : {"", "prepare", "prepare.table", ".outputs.table", "prepare.outputs.", "outputs.table"})
    EXPECT_FALSE(split_step_output(text)) << text;
}

// ---- expressions and placeholders bind their references once -------------

TEST(ReferenceBinding, ExpressionBindsEachReferenceWithItsColumn) {
  const auto expression = Expression::parse("params.a > 1 and steps.t.outputs.x == item or paramz.b");
  const auto& uses = expression.reference_uses();
  ASSERT_EQ(uses.size(), 4u);
  EXPECT_EQ(std::get<Reference>(uses[0].binding), make(Kind::Param, "a"));
  EXPECT_EQ(uses[0].column, 1u);
  EXPECT_EQ(std::get<Reference>(uses[1].binding), make(Kind::StepOutput, "", "t", "x"));
  EXPECT_EQ(uses[1].column, 18u);
  EXPECT_EQ(std::get<Reference>(uses[2].binding), make(Kind::Item));
  EXPECT_EQ(uses[2].column, 39u);
  // Not a reference: parsing still succeeds (the plan reports it), and says why.
  EXPECT_EQ(uses[3].text, "paramz.b");
  EXPECT_EQ(uses[3].column, 47u);
  ASSERT_TRUE(std::holds_alternative<ReferenceError>(uses[3].binding));
  EXPECT_EQ(std::get<ReferenceError>(uses[3].binding).problem(), Problem::UnknownRoot);
}

TEST(ReferenceBinding, EvaluatesAgainstTypedReferences) {
  std::vector<Kind> asked;
  const Expression::ReferenceResolver resolve = [&](const Reference& ref) -> Json {
    asked.push_back(ref.kind);
    switch (ref.kind) {
      case Kind::Param:
        return ref.name == "epochs" ? Json(3) : Json(nullptr);
      case Kind::StepOutput:
        return ref.step == "train" && ref.output == "loss" ? Json(0.25) : Json(nullptr);
      case Kind::RunStatus:
        return "Failed";
      case Kind::RunFailedSteps:
        return Json::array({"train"});
      default:
        return nullptr;
    }
  };
  EXPECT_TRUE(Expression::parse("params.epochs == 3 and steps.train.outputs.loss < 0.5").evaluate_condition(resolve));
  EXPECT_TRUE(Expression::parse("run.status == 'Failed' and 'train' in run.failed_steps").evaluate_condition(resolve));
  EXPECT_EQ(asked, (std::vector<Kind>{Kind::Param, Kind::StepOutput, Kind::RunStatus, Kind::RunFailedSteps}));
}

TEST(ReferenceBinding, EvaluatingAnUnboundNameFailsAtItsColumn) {
  const Expression::ReferenceResolver resolve = [](const Reference&) -> Json { return true; };
  const auto expression = Expression::parse("params.ok and steps.t.x");
  try {
    expression.evaluate(resolve);
    FAIL() << "no exception";
  } catch (const ExpressionError& e) {
    EXPECT_STREQ(e.what(), "'steps.t.x' must have the form steps.STEP.outputs.NAME");
    EXPECT_EQ(e.column(), 15u);
  }
  // Short-circuited, it is never resolved.
  EXPECT_TRUE(Expression::parse("params.ok or steps.t.x").evaluate_condition(resolve));
}

TEST(ReferenceBinding, PlaceholdersRenderTypedReferences) {
  const Expression::ReferenceResolver resolve = [](const Reference& ref) -> Json {
    if (ref.kind == Kind::Item) return 7;
    if (ref.kind == Kind::Param && ref.name == "sizes") return Json::array({1, 2});
    if (ref.kind == Kind::PipelineDir) return "/p";
    throw std::runtime_error("unexpected " + ref.text());
  };
  const Json value = Json::parse(R"({"n": "{{ item }}", "all": "{{params.sizes}}", "path": "{{ pipeline.dir }}/x"})");
  EXPECT_EQ(kiln::host::render_placeholders(value, resolve), Json::parse(R"({"n": 7, "all": [1, 2], "path": "/p/x"})"));
  EXPECT_THROW(kiln::host::render_placeholders(Json("{{ params.other }}"), resolve), std::runtime_error);
}

}  // namespace

#include <gtest/gtest.h>
#include <kiln/host/expression.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

using kiln::host::Expression;
using kiln::host::ExpressionError;
using kiln::host::Json;

namespace {

// A resolver over a flat table of dotted names that throws for anything else, as the pipeline's resolver will.
Expression::Resolver table(Json values) {
  return [values = std::move(values)](const std::string& name) -> Json {
    const auto it = values.find(name);
    if (it == values.end()) throw std::out_of_range("unknown reference '" + name + "'");
    return *it;
  };
}

Json eval(const std::string& text, Json values = Json::object()) {
  return Expression::parse(text).evaluate(table(std::move(values)));
}

bool holds(const std::string& text, Json values = Json::object()) {
  return Expression::parse(text).evaluate_condition(table(std::move(values)));
}

struct Error {
  std::string message;
  size_t column = 0;
  bool operator==(const Error& other) const { return message == other.message && column == other.column; }
};

void PrintTo(const Error& error, std::ostream* out) {
  *out << "column " << error.column << ": " << error.message;
}

const Error kNoError{"<no error>", 0};

Error syntax_error(const std::string& text) {
  try {
    Expression::parse(text);
  } catch (const ExpressionError& e) {
    return {e.what(), e.column()};
  }
  return kNoError;
}

// The expression must parse; its evaluation must then fail.
Error evaluation_error(const std::string& text, Json values = Json::object()) {
  const Expression expression = Expression::parse(text);
  try {
    expression.evaluate(table(std::move(values)));
  } catch (const ExpressionError& e) {
    return {e.what(), e.column()};
  }
  return kNoError;
}

Error condition_error(const std::string& text, Json values = Json::object()) {
  const Expression expression = Expression::parse(text);
  try {
    expression.evaluate_condition(table(std::move(values)));
  } catch (const ExpressionError& e) {
    return {e.what(), e.column()};
  }
  return kNoError;
}

}  // namespace

// --- Literals
// ---------------------------------------------------------------------------------------------------------

TEST(Expression, EvaluatesNumberLiterals) {
  EXPECT_EQ(eval("3"), Json(3));
  EXPECT_TRUE(eval("3").is_number_integer());
  EXPECT_EQ(eval("-2"), Json(-2));
  EXPECT_EQ(eval("0.5"), Json(0.5));
  EXPECT_TRUE(eval("0.5").is_number_float());
  EXPECT_DOUBLE_EQ(eval("1e-3").get<double>(), 0.001);
  EXPECT_DOUBLE_EQ(eval("2.5E+2").get<double>(), 250.0);
  EXPECT_TRUE(eval("1e3").is_number_float());
  EXPECT_EQ(eval("18446744073709551615").get<uint64_t>(), std::numeric_limits<uint64_t>::max());
}

TEST(Expression, EvaluatesStringLiteralsWithEscapes) {
  EXPECT_EQ(eval("'plain'"), Json("plain"));
  EXPECT_EQ(eval("\"double\""), Json("double"));
  EXPECT_EQ(eval(R"('it\'s')"), Json("it's"));
  EXPECT_EQ(eval(R"("say \"hi\"")"), Json("say \"hi\""));
  EXPECT_EQ(eval(R"('a\\b')"), Json("a\\b"));
  EXPECT_EQ(eval(R"('mixed "quotes"')"), Json("mixed \"quotes\""));
  EXPECT_EQ(eval("''"), Json(""));
  EXPECT_EQ(eval("'héllo wörld'"), Json("héllo wörld"));
}

TEST(Expression, EvaluatesKeywordAndListLiterals) {
  EXPECT_EQ(eval("true"), Json(true));
  EXPECT_EQ(eval("false"), Json(false));
  EXPECT_TRUE(eval("null").is_null());
  EXPECT_EQ(eval("[]"), Json::array());
  EXPECT_EQ(eval("[1, 'a', [true], null, -0.5]"), Json::parse(R"([1, "a", [true], null, -0.5])"));
  EXPECT_EQ(eval("[params.a, params.a == 1]", {{"params.a", 1}}), Json::parse("[1, true]"));
}

TEST(Expression, IgnoresWhitespaceIncludingNewlines) {
  EXPECT_TRUE(holds("\tparams.x\n==\r\n  1 ", {{"params.x", 1}}));
}

// --- References
// -------------------------------------------------------------------------------------------------------

TEST(Expression, ResolvesDottedReferences) {
  const Json values = {{"params.mode", "fast"}, {"steps.train.outputs.accuracy", 0.93},
                       {"run.status", "ok"},    {"steps.pre-process.outputs.ok", true},
                       {"params.in", 1},        {"x_1", 2}};
  EXPECT_EQ(eval("params.mode", values), Json("fast"));
  EXPECT_EQ(eval("steps.train.outputs.accuracy", values), Json(0.93));
  EXPECT_EQ(eval("run.status", values), Json("ok"));
  EXPECT_EQ(eval("steps.pre-process.outputs.ok", values), Json(true));  // '-' belongs to the name
  EXPECT_EQ(eval("params.in", values), Json(1));                        // a keyword may follow a '.'
  EXPECT_EQ(eval("x_1", values), Json(2));
}

TEST(Expression, ListsReferencesInOrderWithoutDuplicates) {
  const auto expression = Expression::parse("params.a == 1 or params.b > params.a");
  EXPECT_EQ(expression.references(), (std::vector<std::string>{"params.a", "params.b"}));
  EXPECT_EQ(expression.reference_positions(),
            (std::vector<std::pair<std::string, size_t>>{{"params.a", 1}, {"params.b", 18}, {"params.a", 29}}));
  EXPECT_EQ(expression.text(), "params.a == 1 or params.b > params.a");
}

TEST(Expression, ReferencesSkipKeywordsAndIncludeShortCircuitedParts) {
  EXPECT_EQ(Expression::parse("true and not null == x or false and [run.a, 'run.b'] == y.z").references(),
            (std::vector<std::string>{"x", "run.a", "y.z"}));
  EXPECT_EQ(Expression::parse("params.in == run.not").references(), (std::vector<std::string>{"params.in", "run.not"}));
  EXPECT_TRUE(Expression::parse("1 == 1.0 and 'params.x' != ''").references().empty());
  EXPECT_TRUE(Expression::parse("1").reference_positions().empty());
}

TEST(Expression, PropagatesResolverExceptionsUnchanged) {
  EXPECT_THROW(eval("params.missing == 1"), std::out_of_range);
  const auto expression = Expression::parse("params.a and params.b");
  try {
    expression.evaluate([](const std::string& name) -> Json {
      if (name == "params.b") throw ExpressionError("unknown reference '" + name + "'", 14);
      return true;
    });
    FAIL() << "no exception";
  } catch (const ExpressionError& e) {
    EXPECT_STREQ(e.what(), "unknown reference 'params.b'");
    EXPECT_EQ(e.column(), 14u);
  }
}

// --- Precedence
// -------------------------------------------------------------------------------------------------------

TEST(Expression, BindsAndTighterThanOr) {
  EXPECT_TRUE(holds("true or false and false"));  // true or (false and false)
  EXPECT_TRUE(holds("false and false or true"));  // (false and false) or true
  EXPECT_FALSE(holds("(true or false) and false"));
  EXPECT_TRUE(holds("true || false && false"));
}

TEST(Expression, BindsNotTighterThanAndButLooserThanComparisons) {
  EXPECT_FALSE(holds("not false and false"));  // (not false) and false
  EXPECT_TRUE(holds("not true or true"));      // (not true) or true
  EXPECT_TRUE(holds("not 1 == 2"));            // not (1 == 2)
  EXPECT_FALSE(holds("not 1 in [1]"));         // not (1 in [1])
  EXPECT_TRUE(holds("not not true"));
  EXPECT_TRUE(holds("!false && !false"));
  EXPECT_TRUE(holds("1 < 2 and 'a' == 'a'"));
  EXPECT_TRUE(holds("(1 < 2) == true"));
}

TEST(Expression, BindsUnaryMinusTighterThanComparisons) {
  EXPECT_TRUE(holds("-2 < 1"));
  EXPECT_TRUE(holds("-(1) == -1"));
  EXPECT_TRUE(holds("--3 == 3"));
  EXPECT_TRUE(holds("-params.n == -5", {{"params.n", 5}}));
  EXPECT_DOUBLE_EQ(eval("-1.5").get<double>(), -1.5);
}

// --- Operators
// --------------------------------------------------------------------------------------------------------

TEST(Expression, EvaluatesLogicalOperators) {
  for (const char* op : {"and", "&&"}) {
    const std::string o = op;
    EXPECT_TRUE(holds("true " + o + " true"));
    EXPECT_FALSE(holds("true " + o + " false"));
    EXPECT_FALSE(holds("false " + o + " true"));
    EXPECT_FALSE(holds("false " + o + " false"));
  }
  for (const char* op : {"or", "||"}) {
    const std::string o = op;
    EXPECT_TRUE(holds("true " + o + " true"));
    EXPECT_TRUE(holds("true " + o + " false"));
    EXPECT_TRUE(holds("false " + o + " true"));
    EXPECT_FALSE(holds("false " + o + " false"));
  }
  EXPECT_FALSE(holds("not true"));
  EXPECT_TRUE(holds("!false"));
  EXPECT_TRUE(holds("true and true and true and true"));
  EXPECT_FALSE(holds("true and true and false and true"));
  EXPECT_TRUE(holds("false or false or false or true"));
  EXPECT_TRUE(holds("false or true and true"));
  EXPECT_TRUE(holds("true and false or true and true"));  // mixing spellings
}

TEST(Expression, EvaluatesNumericComparisons) {
  EXPECT_TRUE(holds("1 == 1"));
  EXPECT_FALSE(holds("1 == 2"));
  EXPECT_TRUE(holds("1 != 2"));
  EXPECT_FALSE(holds("1 != 1"));
  EXPECT_TRUE(holds("1 < 2"));
  EXPECT_FALSE(holds("2 < 2"));
  EXPECT_TRUE(holds("2 <= 2"));
  EXPECT_FALSE(holds("3 <= 2"));
  EXPECT_TRUE(holds("3 > 2"));
  EXPECT_FALSE(holds("2 > 2"));
  EXPECT_TRUE(holds("2 >= 2"));
  EXPECT_FALSE(holds("1 >= 2"));
  EXPECT_TRUE(holds("steps.train.outputs.accuracy >= 0.9", {{"steps.train.outputs.accuracy", 0.93}}));
}

TEST(Expression, ComparesIntegersAndFloatsByValue) {
  EXPECT_TRUE(holds("1 == 1.0"));
  EXPECT_TRUE(holds("1.0 == 1"));
  EXPECT_FALSE(holds("1 != 1.0"));
  EXPECT_TRUE(holds("1 != 1.5"));
  EXPECT_TRUE(holds("2 > 1.5"));
  EXPECT_TRUE(holds("1.5 < 2"));
  EXPECT_TRUE(holds("-1 < 0.5"));
  EXPECT_TRUE(holds("1e2 == 100"));
  EXPECT_TRUE(holds("[1, 2] == [1.0, 2e0]"));
}

TEST(Expression, ComparesSignedAndUnsignedIntegersExactly) {
  // nlohmann parses non-negative integers as unsigned; literals here are signed.
  const Json values = {{"params.u", Json::parse("3")},
                       {"params.big", std::numeric_limits<uint64_t>::max()},
                       {"params.min", std::numeric_limits<int64_t>::min()}};
  ASSERT_TRUE(values["params.u"].is_number_unsigned());
  EXPECT_TRUE(holds("params.u == 3", values));
  EXPECT_TRUE(holds("params.u > -1", values));
  EXPECT_TRUE(holds("params.big > 9223372036854775807", values));
  EXPECT_TRUE(holds("-1 < params.big", values));
  EXPECT_TRUE(holds("params.big == 18446744073709551615", values));
  EXPECT_TRUE(holds("params.big != 18446744073709551614", values));  // equal as doubles, not as integers
  EXPECT_TRUE(holds("params.min < params.big", values));
  EXPECT_TRUE(holds("params.min == -9223372036854775808", values));
  EXPECT_TRUE(holds("-params.min == 9223372036854775808", values));  // negation does not overflow
}

TEST(Expression, TreatsDifferentTypesAsUnequal) {
  EXPECT_FALSE(holds("'1' == 1"));
  EXPECT_TRUE(holds("'1' != 1"));
  EXPECT_FALSE(holds("null == false"));
  EXPECT_FALSE(holds("true == 1"));
  EXPECT_FALSE(holds("[] == null"));
  EXPECT_TRUE(holds("null == null"));
  EXPECT_TRUE(holds("params.x == null", {{"params.x", nullptr}}));
}

TEST(Expression, ComparesListsAndObjectsStructurally) {
  const Json values = {{"params.a", Json::parse(R"({"x": 1, "y": [2, "z"]})")},
                       {"params.b", Json::parse(R"({"y": [2.0, "z"], "x": 1.0})")},
                       {"params.c", Json::parse(R"({"x": 1, "y": [2, "Z"]})")}};
  EXPECT_TRUE(holds("params.a == params.b", values));  // key order does not matter
  EXPECT_FALSE(holds("params.a == params.c", values));
  EXPECT_TRUE(holds("[1, [2, 'x']] == [1, [2, 'x']]"));
  EXPECT_FALSE(holds("[1, 2] == [2, 1]"));
  EXPECT_FALSE(holds("[1] == [1, 2]"));
}

TEST(Expression, NanIsUnorderedAndUnequal) {
  const Json values = {{"params.nan", std::nan("")}};
  EXPECT_FALSE(holds("params.nan == params.nan", values));
  EXPECT_TRUE(holds("params.nan != 1", values));
  EXPECT_FALSE(holds("params.nan < 1", values));
  EXPECT_FALSE(holds("params.nan >= 1", values));
}

TEST(Expression, ComparesStringsLexicographically) {
  EXPECT_TRUE(holds("'abc' < 'abd'"));
  EXPECT_TRUE(holds("'b' > 'a'"));
  EXPECT_TRUE(holds("'' < 'a'"));
  EXPECT_TRUE(holds("'a' <= 'a'"));
  EXPECT_TRUE(holds("'abc' >= 'ab'"));
  EXPECT_TRUE(holds("'Z' < 'a'"));  // by code point, not case-folded
  EXPECT_TRUE(holds("'é' > 'z'"));
  EXPECT_TRUE(holds("'a' == \"a\""));
  EXPECT_TRUE(holds("'a' != 'A'"));
  EXPECT_TRUE(holds("run.status == 'succeeded'", {{"run.status", "succeeded"}}));
}

TEST(Expression, TestsMembershipInLists) {
  EXPECT_TRUE(holds("2 in [1, 2, 3]"));
  EXPECT_FALSE(holds("4 in [1, 2, 3]"));
  EXPECT_TRUE(holds("2.0 in [1, 2]"));
  EXPECT_FALSE(holds("'2' in [1, 2]"));
  EXPECT_TRUE(holds("null in [1, null]"));
  EXPECT_TRUE(holds("[1] in [[1], [2]]"));
  EXPECT_FALSE(holds("1 in []"));
  const Json values = {{"params.list", {"a", "b"}}, {"params.mode", "slow"}};
  EXPECT_TRUE(holds("'a' in params.list", values));
  EXPECT_FALSE(holds("'c' in params.list", values));
  EXPECT_TRUE(holds("params.mode in ['fast', 'slow']", values));
}

TEST(Expression, TestsSubstringsAndObjectKeys) {
  EXPECT_TRUE(holds("'ab' in 'xabc'"));
  EXPECT_FALSE(holds("'abd' in 'xabc'"));
  EXPECT_TRUE(holds("'' in 'x'"));
  const Json values = {{"params.obj", {{"lr", 0.1}}}};
  EXPECT_TRUE(holds("'lr' in params.obj", values));
  EXPECT_FALSE(holds("'epochs' in params.obj", values));
}

TEST(Expression, NegatesMembershipWithNotIn) {
  EXPECT_TRUE(holds("4 not in [1, 2]"));
  EXPECT_FALSE(holds("2 not in [1, 2]"));
  EXPECT_FALSE(holds("'ab' not in 'xabc'"));
  EXPECT_TRUE(holds("'z' not in params.obj", {{"params.obj", {{"a", 1}}}}));
}

// --- Short-circuit
// ----------------------------------------------------------------------------------------------------

TEST(Expression, ShortCircuitsWithoutResolvingTheRest) {
  std::vector<std::string> resolved;
  const auto resolve = [&](const std::string& name) -> Json {
    resolved.push_back(name);
    if (name == "steps.boom") throw std::logic_error("steps.boom must not be evaluated");
    return name == "params.yes";
  };
  EXPECT_FALSE(Expression::parse("params.no and steps.boom").evaluate_condition(resolve));
  EXPECT_TRUE(Expression::parse("params.yes or steps.boom").evaluate_condition(resolve));
  EXPECT_FALSE(Expression::parse("params.yes && params.no && steps.boom").evaluate_condition(resolve));
  EXPECT_TRUE(Expression::parse("params.no || params.yes || steps.boom").evaluate_condition(resolve));
  EXPECT_TRUE(Expression::parse("params.yes or (steps.boom > 1)").evaluate_condition(resolve));
  EXPECT_EQ(resolved, (std::vector<std::string>{"params.no", "params.yes", "params.yes", "params.no", "params.no",
                                                "params.yes", "params.yes"}));
  // The resolver really would have thrown: the operand is evaluated when it decides the result.
  EXPECT_THROW(Expression::parse("params.yes and steps.boom").evaluate(resolve), std::logic_error);
}

TEST(Expression, ShortCircuitSkipsTypeErrorsInTheUnevaluatedSide) {
  EXPECT_FALSE(holds("false and (1 < 'x')"));
  EXPECT_TRUE(holds("true or -'x' == 1"));
  EXPECT_FALSE(holds("false and 3"));
}

// --- Syntax errors
// ----------------------------------------------------------------------------------------------------

TEST(ExpressionSyntax, ReportsMissingValues) {
  EXPECT_EQ(syntax_error(""), (Error{"unexpected end of expression, expected a value", 1}));
  EXPECT_EQ(syntax_error("   "), (Error{"unexpected end of expression, expected a value", 4}));
  EXPECT_EQ(syntax_error("params.a =="), (Error{"unexpected end of expression, expected a value", 12}));
  EXPECT_EQ(syntax_error("not"), (Error{"unexpected end of expression, expected a value", 4}));
  EXPECT_EQ(syntax_error("-"), (Error{"unexpected end of expression, expected a value", 2}));
  EXPECT_EQ(syntax_error("a and or b"), (Error{"unexpected 'or', expected a value", 7}));
  EXPECT_EQ(syntax_error("a == not b"), (Error{"unexpected 'not', expected a value", 6}));
  EXPECT_EQ(syntax_error("()"), (Error{"unexpected ')', expected a value", 2}));
}

TEST(ExpressionSyntax, ReportsUnbalancedBrackets) {
  EXPECT_EQ(syntax_error("a == 1)"), (Error{"unexpected ')' without a matching '('", 7}));
  EXPECT_EQ(syntax_error("(a == 1"),
            (Error{"unexpected end of expression, expected ')' to close the '(' at column 1", 8}));
  EXPECT_EQ(syntax_error("x and ((a) or b"),
            (Error{"unexpected end of expression, expected ')' to close the '(' at column 7", 16}));
  EXPECT_EQ(syntax_error("[1, 2"),
            (Error{"unexpected end of expression, expected ',' or ']' to close the '[' at column 1", 6}));
  EXPECT_EQ(syntax_error("[1 2]"), (Error{"unexpected '2', expected ',' or ']' to close the '[' at column 1", 4}));
  EXPECT_EQ(syntax_error("[1,]"), (Error{"unexpected ']', expected a value", 4}));
}

TEST(ExpressionSyntax, ReportsTrailingTokens) {
  EXPECT_EQ(syntax_error("a b"), (Error{"unexpected 'b', expected an operator or the end of the expression", 3}));
  EXPECT_EQ(syntax_error("a == 1 'x'"),
            (Error{"unexpected 'x', expected an operator or the end of the expression", 8}));
  EXPECT_EQ(syntax_error("1, 2"), (Error{"unexpected ',', expected an operator or the end of the expression", 2}));
  EXPECT_EQ(syntax_error("a ! b"), (Error{"unexpected '!', expected an operator or the end of the expression", 3}));
  EXPECT_EQ(syntax_error("a ]"), (Error{"unexpected ']', expected an operator or the end of the expression", 3}));
}

TEST(ExpressionSyntax, ReportsBadStrings) {
  EXPECT_EQ(syntax_error("x == 'abc"), (Error{"unterminated string (no closing ')", 6}));
  EXPECT_EQ(syntax_error(R"(x == "ab\")"), (Error{"unterminated string (no closing \")", 6}));
  EXPECT_EQ(syntax_error(R"('abc\)"), (Error{"unterminated string (no closing ')", 1}));
  EXPECT_EQ(syntax_error(R"(x == 'a\nb')"),
            (Error{R"(unknown escape '\n' in string (only \\, \' and \" are escapes))", 8}));
}

TEST(ExpressionSyntax, ReportsUnknownOperatorsWithSuggestions) {
  EXPECT_EQ(syntax_error("a = 1"), (Error{"unknown operator '=' (did you mean '=='?)", 3}));
  EXPECT_EQ(syntax_error("a === 1"), (Error{"unknown operator '===' (did you mean '=='?)", 3}));
  EXPECT_EQ(syntax_error("a !== 1"), (Error{"unknown operator '!==' (did you mean '!='?)", 3}));
  EXPECT_EQ(syntax_error("a <> 1"), (Error{"unknown operator '<>' (did you mean '!='?)", 3}));
  EXPECT_EQ(syntax_error("a => 1"), (Error{"unknown operator '=>' (did you mean '>='?)", 3}));
  EXPECT_EQ(syntax_error("a =< 1"), (Error{"unknown operator '=<' (did you mean '<='?)", 3}));
  EXPECT_EQ(syntax_error("a & b"), (Error{"unknown operator '&' (did you mean '&&'?)", 3}));
  EXPECT_EQ(syntax_error("a | b"), (Error{"unknown operator '|' (did you mean '||'?)", 3}));
}

TEST(ExpressionSyntax, RejectsChainedComparisons) {
  EXPECT_EQ(syntax_error("a < b < c"),
            (Error{"comparisons cannot be chained ('<' then '<'); combine them with 'and'", 7}));
  EXPECT_EQ(syntax_error("a == b in c"),
            (Error{"comparisons cannot be chained ('==' then 'in'); combine them with 'and'", 8}));
  EXPECT_EQ(syntax_error("a in b not in c"),
            (Error{"comparisons cannot be chained ('in' then 'not in'); combine them with 'and'", 8}));
  EXPECT_EQ(syntax_error("(a < b) < c"), kNoError);  // explicit grouping is fine
}

TEST(ExpressionSyntax, ReportsBadNumbers) {
  EXPECT_EQ(syntax_error("1."), (Error{"invalid number '1.'", 1}));
  EXPECT_EQ(syntax_error("x > 1e"), (Error{"invalid number '1e'", 5}));
  EXPECT_EQ(syntax_error("3abc"), (Error{"invalid number '3abc'", 1}));
  EXPECT_EQ(syntax_error("1.2.3"), (Error{"invalid number '1.2.3'", 1}));
  EXPECT_EQ(syntax_error("x < .5"), (Error{"a number needs a digit before its '.' (0.5, not .5)", 5}));
  EXPECT_EQ(syntax_error("99999999999999999999"), (Error{"integer '99999999999999999999' is too large", 1}));
  EXPECT_EQ(syntax_error("1e999"), (Error{"number '1e999' is out of range", 1}));
}

TEST(ExpressionSyntax, ReportsBadNames) {
  EXPECT_EQ(syntax_error("params."), (Error{"expected a name after '.'", 8}));
  EXPECT_EQ(syntax_error("params..x"), (Error{"expected a name after '.'", 8}));
  EXPECT_EQ(syntax_error("steps.1.x"), (Error{"expected a name after '.'", 7}));
  EXPECT_EQ(syntax_error("true.x"), (Error{"'true' is a keyword and cannot start a reference", 1}));
  EXPECT_EQ(syntax_error("True"), (Error{"'True' is not a keyword (did you mean 'true'?)", 1}));
  EXPECT_EQ(syntax_error("a AND b"), (Error{"'AND' is not a keyword (did you mean 'and'?)", 3}));
}

TEST(ExpressionSyntax, ReportsUnexpectedCharacters) {
  EXPECT_EQ(syntax_error("a # b"), (Error{"unexpected character '#'", 3}));
  EXPECT_EQ(syntax_error("a \x01"), (Error{"unexpected character '\\x01'", 3}));
  EXPECT_EQ(syntax_error("x == ∞"), (Error{"unexpected character '∞'", 6}));
}

TEST(ExpressionSyntax, CountsColumnsInCharactersNotBytes) {
  EXPECT_EQ(syntax_error("'héllo' == x = 1"), (Error{"unknown operator '=' (did you mean '=='?)", 14}));
}

TEST(ExpressionSyntax, LimitsNesting) {
  const auto wrap = [](int depth, const std::string& inner) {
    return std::string(static_cast<size_t>(depth), '(') + inner + std::string(static_cast<size_t>(depth), ')');
  };
  EXPECT_TRUE(holds(wrap(100, "true")));
  EXPECT_EQ(syntax_error(wrap(5000, "true")), (Error{"expression is nested too deeply (more than 100 levels)", 101}));
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_EQ(syntax_error(nots + "true"), (Error{"expression is nested too deeply (more than 100 levels)", 401}));
  // A long flat chain is not nesting.
  std::string chain = "true";
  for (int i = 0; i < 5000; ++i) chain += " and true";
  EXPECT_TRUE(holds(chain));
}

// --- Type errors
// ------------------------------------------------------------------------------------------------------

TEST(ExpressionTypes, OrderingNeedsTwoNumbersOrTwoStrings) {
  EXPECT_EQ(evaluation_error("'a' < 3"), (Error{R"(cannot compare string "a" with number 3)", 5}));
  EXPECT_EQ(evaluation_error("null >= 1"), (Error{"cannot compare null with number 1", 6}));
  EXPECT_EQ(evaluation_error("[1] < [2]"), (Error{"cannot compare list [1] with list [2]", 5}));
  EXPECT_EQ(evaluation_error("true > false"), (Error{"cannot compare boolean true with boolean false", 6}));
  EXPECT_EQ(evaluation_error("params.x <= 'b'", {{"params.x", 1.5}}),
            (Error{R"(cannot compare number 1.5 with string "b")", 10}));
  EXPECT_EQ(evaluation_error("params.o > 1", {{"params.o", {{"k", 1}}}}),
            (Error{R"(cannot compare object {"k":1} with number 1)", 10}));
  EXPECT_EQ(evaluation_error("(1 == 1) and (2 < 'x')"), (Error{R"(cannot compare number 2 with string "x")", 17}));
}

TEST(ExpressionTypes, ShortensLongValuesInMessages) {
  const Error error = evaluation_error("params.s < 1", {{"params.s", std::string(500, 'x')}});
  EXPECT_EQ(error.column, 10u);
  EXPECT_EQ(error.message, "cannot compare string \"" + std::string(56, 'x') + "... with number 1");
}

TEST(ExpressionTypes, LogicalOperatorsNeedBooleans) {
  EXPECT_EQ(evaluation_error("1 and true"), (Error{"'and' needs true or false, got 1", 3}));
  EXPECT_EQ(evaluation_error("true && 'x'"), (Error{R"('&&' needs true or false, got "x")", 6}));
  EXPECT_EQ(evaluation_error("false or null"), (Error{"'or' needs true or false, got null", 7}));
  EXPECT_EQ(evaluation_error("false || [true]"), (Error{"'||' needs true or false, got [true]", 7}));
  EXPECT_EQ(evaluation_error("true and true and 2"), (Error{"'and' needs true or false, got 2", 15}));
  EXPECT_EQ(evaluation_error("params.flag and true", {{"params.flag", "true"}}),
            (Error{R"('and' needs true or false, got "true")", 13}));
  EXPECT_EQ(evaluation_error("not 'x'"), (Error{R"('not' needs true or false, got "x")", 1}));
  EXPECT_EQ(evaluation_error("true and !0"), (Error{"'!' needs true or false, got 0", 10}));
}

TEST(ExpressionTypes, UnaryMinusNeedsANumber) {
  EXPECT_EQ(evaluation_error("-'a'"), (Error{R"('-' needs a number, got "a")", 1}));
  EXPECT_EQ(evaluation_error("1 == -true"), (Error{"'-' needs a number, got true", 6}));
  EXPECT_EQ(evaluation_error("-params.x", {{"params.x", nullptr}}), (Error{"'-' needs a number, got null", 1}));
}

TEST(ExpressionTypes, MembershipNeedsAContainer) {
  EXPECT_EQ(evaluation_error("1 in 2"), (Error{"'in' needs a list, string or object on the right, got 2", 3}));
  EXPECT_EQ(evaluation_error("1 not in null"),
            (Error{"'not in' needs a list, string or object on the right, got null", 3}));
  EXPECT_EQ(evaluation_error("1 in 'abc'"),
            (Error{R"(cannot look for number 1 in string "abc" (only a string can be found in a string))", 3}));
  EXPECT_EQ(evaluation_error("null in params.o", {{"params.o", {{"k", 1}}}}),
            (Error{R"(cannot look for null in object {"k":1} (only a string can be an object's key))", 6}));
}

TEST(ExpressionTypes, ConditionMustBeBoolean) {
  EXPECT_EQ(condition_error("1"), (Error{"condition must be true or false, got 1", 1}));
  EXPECT_EQ(condition_error("  params.flag", {{"params.flag", "yes"}}),
            (Error{R"(condition must be true or false, got "yes")", 3}));
  EXPECT_EQ(condition_error("null"), (Error{"condition must be true or false, got null", 1}));
  EXPECT_EQ(condition_error("[true]"), (Error{"condition must be true or false, got [true]", 1}));
  EXPECT_EQ(eval("[true]"), Json::parse("[true]"));  // evaluate() itself accepts any value
}

// --- Value semantics
// --------------------------------------------------------------------------------------------------

TEST(Expression, IsMovable) {
  Expression expression = Expression::parse("params.a > 1");
  Expression moved = std::move(expression);
  EXPECT_TRUE(moved.evaluate_condition(table({{"params.a", 2}})));
  EXPECT_EQ(moved.text(), "params.a > 1");
  EXPECT_EQ(moved.references(), (std::vector<std::string>{"params.a"}));
  moved = Expression::parse("params.b");
  EXPECT_EQ(moved.references(), (std::vector<std::string>{"params.b"}));
  EXPECT_FALSE(moved.evaluate_condition(table({{"params.b", false}})));
}

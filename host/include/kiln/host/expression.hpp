// The expression language of pipeline `when:` conditions: a step runs only if its condition is true.
//
// Values are JSON values: null, booleans, numbers (integers and floats), strings, lists and objects.
//
// Literals
//   3   0.5   1e-3   2.5E+2        numbers; `-2` is unary minus applied to 2
//   'text'   "text"                strings; a backslash escapes a quote (\' or \") or a backslash (\\), nothing else
//   true   false   null
//   [1, 2, 'a']                    a list; its items are expressions, `[]` is the empty list
//
// References
//   params.mode   steps.train.outputs.accuracy   run.status
//   Dotted names, each part [A-Za-z_][A-Za-z0-9_-]* (so `a-b` is one name, not a subtraction). A bare keyword (true,
//   false, null, and, or, not, in) is never a reference, but a later part may be one: `params.in` is a reference.
//   parse() binds each name once to a typed Reference (reference.hpp) where it is one, and keeps why not where it is
//   not; the pipeline reports those and decides which parameters, steps and outputs exist. An expression can be
//   evaluated against the typed references (what a pipeline does) or against the names as written.
//
// Operators, lowest to highest precedence
//   or   ||                        either side true; the right side is only evaluated when the left is false
//   and  &&                        both sides true; the right side is only evaluated when the left is true
//   not  !                         negation (unary)
//   ==  !=  <  <=  >  >=  in  not in
//                                  comparisons; they do not chain: `a < b < c` is a syntax error, write
//                                  `a < b and b < c`
//   -                              negation of a number (unary)
//   ( )                            grouping
//
// Semantics
//   - `and`, `or` and `not` need true or false; anything else (including null or 0) is an error, not "falsy".
//   - `==` / `!=` never fail: numbers compare by value (1 == 1.0), values of different types are unequal
//     ('1' != 1, null != false), lists compare item by item and objects key by key, with the same rules.
//   - `<` `<=` `>` `>=` need two numbers or two strings (strings compare by code point); anything else is an error.
//   - `x in list` is true if an item equals x (as `==`); `'ab' in 'xabc'` finds a substring; `'k' in object` tests
//     for a key. `x not in y` is `not (x in y)`.
//   - Unary `-` needs a number.
//   - The condition as a whole must evaluate to true or false.
//
// Syntax and type errors carry the 1-based column, in characters, of the offending token or operator, so a caller can
// point at it. Unknown references are the caller's to report; reference_uses() gives their bindings and columns.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <kiln/host/json.hpp>
#include <kiln/host/reference.hpp>

namespace kiln::host {

// A syntax or evaluation error; column is the 1-based character position in the expression text where the problem is.
// what() is the message alone ("unexpected end of expression, expected a value"), with no column in it, so callers
// can lay out text, column and caret as they see fit.
class ExpressionError : public std::runtime_error {
 public:
  ExpressionError(const std::string& message, size_t column);
  size_t column() const noexcept { return column_; }

 private:
  size_t column_;
};

namespace detail {
struct ExpressionNode;  // the parsed tree; defined in host/lib/pipeline/expression_tree.hpp
}  // namespace detail

class Expression {
 public:
  // Maps a bound reference to its value: how a pipeline evaluates.
  using ReferenceResolver = std::function<Json(const Reference&)>;
  // Maps a reference by its name as written ("params.epochs"): for names outside the pipeline grammar.
  using Resolver = std::function<Json(const std::string&)>;

  // One reference in the text: as written, its 1-based column, and what parse_reference() made of it.
  struct ReferenceUse {
    std::string text;
    size_t column = 1;
    std::variant<Reference, ReferenceError> binding;
  };

  // Parses `text`; throws ExpressionError (message + column) on a syntax error.
  static Expression parse(const std::string& text);

  Expression(Expression&&) noexcept;
  Expression& operator=(Expression&&) noexcept;
  ~Expression();

  // Evaluates. `resolve` maps each reference to its JSON value; whatever it throws propagates unchanged. With a
  // ReferenceResolver, a name that is no reference throws ExpressionError (its ReferenceError's message and column)
  // when it is evaluated. Type errors throw ExpressionError naming the types/values, with the column of the offending
  // operator.
  Json evaluate(const ReferenceResolver& resolve) const;
  Json evaluate(const Resolver& resolve) const;
  // evaluate() that requires a boolean result (else ExpressionError "condition must be true or false, got ...").
  bool evaluate_condition(const ReferenceResolver& resolve) const;
  bool evaluate_condition(const Resolver& resolve) const;

  // Every reference in the expression, in order of first appearance, without duplicates.
  const std::vector<std::string>& references() const { return references_; }
  // Each reference with its 1-based column (for error messages), in order of appearance, duplicates included.
  const std::vector<std::pair<std::string, size_t>>& reference_positions() const { return reference_positions_; }
  // Each reference bound, in order of appearance, duplicates included.
  const std::vector<ReferenceUse>& reference_uses() const { return reference_uses_; }
  const std::string& text() const { return text_; }

 private:
  Expression();

  std::string text_;
  size_t start_column_ = 1;  // where the first token is: what "the condition" points at
  std::unique_ptr<const detail::ExpressionNode> root_;
  std::vector<std::string> references_;
  std::vector<std::pair<std::string, size_t>> reference_positions_;
  std::vector<ReferenceUse> reference_uses_;  // a reference node holds its index here

  bool as_condition(const Json& result) const;
};

}  // namespace kiln::host

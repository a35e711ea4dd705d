// Expression: parse (expression_lexer, expression_parser), bind references, evaluate (expression_evaluator).
#include <kiln/host/expression.hpp>

#include <algorithm>

#include "expression_evaluator.hpp"
#include "expression_parser.hpp"

namespace kiln::host {

ExpressionError::ExpressionError(const std::string& message, size_t column)
    : std::runtime_error(message), column_(column) {}

Expression::Expression() = default;
Expression::Expression(Expression&&) noexcept = default;
Expression& Expression::operator=(Expression&&) noexcept = default;
Expression::~Expression() = default;

Expression Expression::parse(const std::string& text) {
  expr::ParsedExpression parsed = expr::parse_tokens(expr::tokenize(text));
  Expression expression;
  expression.root_ = std::move(parsed.root);
  expression.text_ = text;
  expression.start_column_ = parsed.first_column;
  expression.reference_positions_ = std::move(parsed.references);
  auto& unique = expression.references_;
  for (const auto& [name, column] : expression.reference_positions_) {
    if (std::find(unique.begin(), unique.end(), name) == unique.end()) unique.push_back(name);
    try {
      expression.reference_uses_.push_back({name, column, parse_reference(name)});
    } catch (const ReferenceError& e) {
      expression.reference_uses_.push_back({name, column, e});
    }
  }
  return expression;
}

Json Expression::evaluate(const ReferenceResolver& resolve) const {
  if (!root_) throw std::logic_error("Expression::evaluate on a moved-from expression");
  const auto by_index = [&](size_t index) -> Json {
    const ReferenceUse& use = reference_uses_[index];
    if (const auto* reference = std::get_if<Reference>(&use.binding)) return resolve(*reference);
    throw ExpressionError(std::get<ReferenceError>(use.binding).what(), use.column);
  };
  return expr::Evaluator<decltype(by_index)>(by_index).evaluate(*root_);
}

Json Expression::evaluate(const Resolver& resolve) const {
  if (!root_) throw std::logic_error("Expression::evaluate on a moved-from expression");
  const auto by_index = [&](size_t index) { return resolve(reference_positions_[index].first); };
  return expr::Evaluator<decltype(by_index)>(by_index).evaluate(*root_);
}

bool Expression::evaluate_condition(const ReferenceResolver& resolve) const {
  return as_condition(evaluate(resolve));
}

bool Expression::evaluate_condition(const Resolver& resolve) const {
  return as_condition(evaluate(resolve));
}

bool Expression::as_condition(const Json& result) const {
  if (!result.is_boolean())
    throw ExpressionError("condition must be true or false, got " + expr::render(result), start_column_);
  return result.get<bool>();
}

}  // namespace kiln::host

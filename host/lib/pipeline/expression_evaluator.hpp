// The evaluator of `when:` expressions, internal to host/lib/pipeline: walks the tree of expression_tree.hpp over
// JSON values with the language's equality, ordering, membership and negation (expression_values.cpp).
#pragma once

#include "expression_tree.hpp"

#include <string>

namespace kiln::host::expr {

// The value as JSON, shortened: a message should name a value, not reprint a whole output file.
std::string render(const Json& value);
// Equality for `==`, `!=` and `in`: numbers by value, other types must match, lists item by item, objects key by key.
bool equal(const Json& a, const Json& b);
// `<`, `<=`, `>`, `>=` on two numbers or two strings (NaN is neither); anything else throws ExpressionError at `where`.
bool ordered(CompareOp op, const Json& a, const Json& b, const Operator& where);
// `needle in haystack` for a list, a string (substring) or an object (key); anything else throws at `where`.
bool contains(const Json& haystack, const Json& needle, const Operator& where);
// Negation that cannot overflow: -INT64_MIN becomes unsigned, and -(unsigned beyond INT64_MIN) a float.
Json negate(const Json& number);
// The boolean `value`, or ExpressionError at `where`.
bool require_boolean(const Json& value, const Operator& where);

// `resolve` maps a reference's index (ReferenceNode::index) to its value.
template <typename ResolveIndex>
class Evaluator {
 public:
  explicit Evaluator(const ResolveIndex& resolve) : resolve_(resolve) {}

  Json evaluate(const detail::ExpressionNode& node) const {
    return std::visit([this](const auto& payload) { return eval(payload); }, node.payload);
  }

 private:
  Json eval(const LiteralNode& node) const { return node.value; }
  Json eval(const ReferenceNode& node) const { return resolve_(node.index); }

  Json eval(const ListNode& node) const {
    Json list = Json::array();
    for (const auto& item : node.items) list.push_back(evaluate(*item));
    return list;
  }

  Json eval(const UnaryNode& node) const {
    const Json operand = evaluate(*node.operand);
    if (node.op == UnaryOp::kNot) return !require_boolean(operand, node.where);
    if (!operand.is_number())
      throw ExpressionError("'" + node.where.spelling + "' needs a number, got " + render(operand), node.where.column);
    return negate(operand);
  }

  // Short-circuits: `and` stops at the first false, `or` at the first true, without evaluating (or resolving) the
  // rest. That is what lets `steps.a.skipped or steps.a.outputs.x > 1` avoid an output that was never produced.
  Json eval(const LogicalNode& node) const {
    const bool decisive = node.op == LogicalOp::kOr;
    for (size_t i = 0; i < node.operands.size(); ++i) {
      // The first operand is checked on behalf of the operator after it, the others on behalf of the one before.
      const Operator& where = node.operators[i == 0 ? 0 : i - 1];
      if (require_boolean(evaluate(*node.operands[i]), where) == decisive) return decisive;
    }
    return !decisive;
  }

  Json eval(const CompareNode& node) const {
    const Json left = evaluate(*node.left);
    const Json right = evaluate(*node.right);
    switch (node.op) {
      case CompareOp::kEq:
        return equal(left, right);
      case CompareOp::kNe:
        return !equal(left, right);
      case CompareOp::kIn:
        return contains(right, left, node.where);
      case CompareOp::kNotIn:
        return !contains(right, left, node.where);
      case CompareOp::kLt:
      case CompareOp::kLe:
      case CompareOp::kGt:
      case CompareOp::kGe:
        return ordered(node.op, left, right, node.where);
    }
    return false;
  }

  const ResolveIndex& resolve_;
};

}  // namespace kiln::host::expr

// The parsed form of a `when:` expression, internal to host/lib/pipeline: the tree expression_parser builds and
// expression_evaluator walks. Every operator keeps its spelling and column so evaluation errors can point at it as
// written ('&&' or 'and').
#pragma once

#include <kiln/host/expression.hpp>

#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace kiln::host {
namespace expr {

using NodePtr = std::unique_ptr<const detail::ExpressionNode>;

struct Operator {
  std::string spelling;
  size_t column = 1;
};

struct LiteralNode {
  Json value;
};

// Which reference of the expression: an index into its reference_positions() and reference_uses().
struct ReferenceNode {
  size_t index;
};

struct ListNode {
  std::vector<NodePtr> items;
};

enum class UnaryOp { kNot, kNegate };

struct UnaryNode {
  UnaryOp op;
  Operator where;
  NodePtr operand;
};

// `a and b and c` is one node with three operands rather than a left-leaning tree, so a long chain neither deepens the
// recursion of evaluation nor of destruction. operators[i] sits between operands[i] and operands[i + 1].
enum class LogicalOp { kAnd, kOr };

struct LogicalNode {
  LogicalOp op;
  std::vector<NodePtr> operands;
  std::vector<Operator> operators;
};

enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct CompareNode {
  CompareOp op;
  Operator where;
  NodePtr left, right;
};

}  // namespace expr

struct detail::ExpressionNode {
  using Payload = std::variant<expr::LiteralNode, expr::ReferenceNode, expr::ListNode, expr::UnaryNode,
                               expr::LogicalNode, expr::CompareNode>;
  explicit ExpressionNode(Payload p) : payload(std::move(p)) {}
  Payload payload;
};

namespace expr {

template <typename T>
NodePtr make_node(T payload) {
  return std::make_unique<const detail::ExpressionNode>(std::move(payload));
}

}  // namespace expr
}  // namespace kiln::host

#include "expression_parser.hpp"

#include <algorithm>

namespace kiln::host::expr {

namespace {

// ExpressionParser: recursive descent, one function per precedence level.
//
//   or_expr    := and_expr (('or' | '||') and_expr)*
//   and_expr   := not_expr (('and' | '&&') not_expr)*
//   not_expr   := ('not' | '!') not_expr | comparison
//   comparison := unary [('==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not' 'in') unary]
//   unary      := '-' unary | primary
//   primary    := number | string | 'true' | 'false' | 'null' | reference | '(' or_expr ')'
//               | '[' [or_expr (',' or_expr)*] ']'

// Deeper nesting than this is no real condition, and bounding it keeps a hostile one from exhausting the stack.
constexpr int kMaxNesting = 100;

class ExpressionParser {
 public:
  explicit ExpressionParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  NodePtr parse() {
    NodePtr root = parse_or();
    const Token& rest = peek();
    if (rest.kind == Tok::kRParen) fail("unexpected ')' without a matching '('", rest.column);
    if (rest.kind != Tok::kEnd) unexpected(rest, "an operator or the end of the expression");
    return root;
  }

  size_t first_column() const { return tokens_.front().column; }
  std::vector<std::pair<std::string, size_t>> take_references() { return std::move(references_); }

 private:
  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }

  // The kEnd token is never consumed, so peek() and next() stay in bounds.
  const Token& next() {
    const Token& token = tokens_[pos_];
    if (token.kind != Tok::kEnd) ++pos_;
    return token;
  }

  bool accept(Tok kind) {
    if (peek().kind != kind) return false;
    next();
    return true;
  }

  void expect(Tok kind, const std::string& what) {
    if (!accept(kind)) unexpected(peek(), what);
  }

  [[noreturn]] static void fail(const std::string& message, size_t column) { throw ExpressionError(message, column); }

  [[noreturn]] static void unexpected(const Token& token, const std::string& expected) {
    fail("unexpected " + describe(token) + ", expected " + expected, token.column);
  }

  static std::string describe(const Token& token) {
    if (token.kind == Tok::kEnd) return "end of expression";
    if (token.kind == Tok::kString) return token.spelling;  // already quoted
    return "'" + token.spelling + "'";
  }

  template <typename ParseFn>
  NodePtr nested(size_t column, ParseFn parse_inner) {
    if (++depth_ > kMaxNesting)
      fail("expression is nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)", column);
    NodePtr node = parse_inner();
    --depth_;
    return node;
  }

  NodePtr parse_or() { return parse_chain(LogicalOp::kOr, Tok::kOr, &ExpressionParser::parse_and); }
  NodePtr parse_and() { return parse_chain(LogicalOp::kAnd, Tok::kAnd, &ExpressionParser::parse_not); }

  NodePtr parse_chain(LogicalOp op, Tok op_token, NodePtr (ExpressionParser::*parse_operand)()) {
    NodePtr first = (this->*parse_operand)();
    if (peek().kind != op_token) return first;
    LogicalNode chain{op, {}, {}};
    chain.operands.push_back(std::move(first));
    while (peek().kind == op_token) {
      const Token& token = next();
      chain.operators.push_back({token.spelling, token.column});
      chain.operands.push_back((this->*parse_operand)());
    }
    return make_node(std::move(chain));
  }

  NodePtr parse_not() {
    if (peek().kind != Tok::kNot) return parse_comparison();
    const Token& token = next();
    Operator where{token.spelling, token.column};
    NodePtr operand = nested(token.column, [this] { return parse_not(); });
    return make_node(UnaryNode{UnaryOp::kNot, std::move(where), std::move(operand)});
  }

  // The comparison operator at the current token, if any, and how many tokens it spans.
  std::optional<std::pair<CompareOp, size_t>> comparison_here() const {
    switch (peek().kind) {
      case Tok::kEq:
        return std::pair{CompareOp::kEq, size_t{1}};
      case Tok::kNe:
        return std::pair{CompareOp::kNe, size_t{1}};
      case Tok::kLt:
        return std::pair{CompareOp::kLt, size_t{1}};
      case Tok::kLe:
        return std::pair{CompareOp::kLe, size_t{1}};
      case Tok::kGt:
        return std::pair{CompareOp::kGt, size_t{1}};
      case Tok::kGe:
        return std::pair{CompareOp::kGe, size_t{1}};
      case Tok::kIn:
        return std::pair{CompareOp::kIn, size_t{1}};
      case Tok::kNot:
        if (peek(1).kind == Tok::kIn) return std::pair{CompareOp::kNotIn, size_t{2}};
        return std::nullopt;
      default:
        return std::nullopt;
    }
  }

  // Consumes the operator comparison_here() found, spelled as written ("not in" for the two-token one).
  Operator take_comparison(size_t token_count) {
    const Token& first = next();
    Operator where{first.spelling, first.column};
    for (size_t i = 1; i < token_count; ++i) where.spelling += " " + next().spelling;
    return where;
  }

  NodePtr parse_comparison() {
    NodePtr left = parse_unary();
    const auto op = comparison_here();
    if (!op) return left;
    Operator where = take_comparison(op->second);
    NodePtr right = parse_unary();
    // `a < b < c` means something different in every language that allows it; refuse rather than guess.
    if (comparison_here()) {
      const Token& second = peek();
      fail("comparisons cannot be chained ('" + where.spelling + "' then '" +
               (second.kind == Tok::kNot ? std::string("not in") : second.spelling) + "'); combine them with 'and'",
           second.column);
    }
    return make_node(CompareNode{op->first, std::move(where), std::move(left), std::move(right)});
  }

  NodePtr parse_unary() {
    if (peek().kind != Tok::kMinus) return parse_primary();
    const Token& token = next();
    Operator where{token.spelling, token.column};
    NodePtr operand = nested(token.column, [this] { return parse_unary(); });
    return make_node(UnaryNode{UnaryOp::kNegate, std::move(where), std::move(operand)});
  }

  NodePtr parse_primary() {
    const Token& token = next();
    switch (token.kind) {
      case Tok::kNumber:
      case Tok::kString:
        return make_node(LiteralNode{token.value});
      case Tok::kTrue:
        return make_node(LiteralNode{true});
      case Tok::kFalse:
        return make_node(LiteralNode{false});
      case Tok::kNull:
        return make_node(LiteralNode{nullptr});
      case Tok::kName:
        references_.emplace_back(token.spelling, token.column);
        return make_node(ReferenceNode{references_.size() - 1});
      case Tok::kLParen:
        return parse_group(token);
      case Tok::kLBracket:
        return parse_list(token);
      default:
        unexpected(token, "a value");
    }
  }

  NodePtr parse_group(const Token& open) {
    NodePtr inner = nested(open.column, [this] { return parse_or(); });
    expect(Tok::kRParen, "')' to close the '(' at column " + std::to_string(open.column));
    return inner;
  }

  NodePtr parse_list(const Token& open) {
    ListNode list;
    if (!accept(Tok::kRBracket)) {
      do {
        list.items.push_back(nested(open.column, [this] { return parse_or(); }));
      } while (accept(Tok::kComma));
      expect(Tok::kRBracket, "',' or ']' to close the '[' at column " + std::to_string(open.column));
    }
    return make_node(std::move(list));
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<std::pair<std::string, size_t>> references_;
};

}  // namespace

ParsedExpression parse_tokens(std::vector<Token> tokens) {
  ExpressionParser parser(std::move(tokens));
  ParsedExpression parsed;
  parsed.root = parser.parse();
  parsed.first_column = parser.first_column();
  parsed.references = parser.take_references();
  return parsed;
}

}  // namespace kiln::host::expr

// The parser of `when:` expressions, internal to host/lib/pipeline: tokens → the tree of expression_tree.hpp.
#pragma once

#include "expression_lexer.hpp"
#include "expression_tree.hpp"

#include <string>
#include <utility>
#include <vector>

namespace kiln::host::expr {

struct ParsedExpression {
  NodePtr root;
  size_t first_column = 1;                                  // where the first token is
  std::vector<std::pair<std::string, size_t>> references;  // as written, with their columns, in order
};

// Throws ExpressionError (message + column) on a syntax error or nesting deeper than the parser allows.
ParsedExpression parse_tokens(std::vector<Token> tokens);

}  // namespace kiln::host::expr

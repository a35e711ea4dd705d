// The lexer of `when:` expressions, internal to host/lib/pipeline: text → tokens with their columns.
#pragma once

#include <kiln/host/json.hpp>

#include <string>
#include <vector>

namespace kiln::host::expr {

enum class Tok {
  kEnd,
  kNumber,
  kString,
  kName,
  kTrue,
  kFalse,
  kNull,
  kAnd,
  kOr,
  kNot,
  kIn,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kMinus,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string spelling;  // exactly as written, quotes and escapes included
  Json value;            // for numbers and strings
  size_t column = 1;
};

// Turns text into tokens, ending with one kEnd token whose column is just past the last character. Throws
// ExpressionError (message + column, counted in characters) on text that is no token.
std::vector<Token> tokenize(const std::string& text);

}  // namespace kiln::host::expr

#include <kiln/host/expression.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <variant>

namespace kiln::host {

ExpressionError::ExpressionError(const std::string& message, size_t column)
    : std::runtime_error(message), column_(column) {}

namespace {

// ---------------------------------------------------------------------------------------------------------------------
// The tree. Every operator keeps its spelling and column so evaluation errors can point at it as written ('&&' or
// 'and').

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

}  // namespace

struct detail::ExpressionNode {
  using Payload = std::variant<LiteralNode, ReferenceNode, ListNode, UnaryNode, LogicalNode, CompareNode>;
  explicit ExpressionNode(Payload p) : payload(std::move(p)) {}
  Payload payload;
};

namespace {

template <typename T>
NodePtr make_node(T payload) {
  return std::make_unique<const detail::ExpressionNode>(std::move(payload));
}

// ---------------------------------------------------------------------------------------------------------------------
// Tokens

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

constexpr std::pair<std::string_view, Tok> kKeywords[] = {
    {"and", Tok::kAnd},   {"or", Tok::kOr},       {"not", Tok::kNot},   {"in", Tok::kIn},
    {"true", Tok::kTrue}, {"false", Tok::kFalse}, {"null", Tok::kNull},
};

std::optional<Tok> keyword(std::string_view word) {
  for (const auto& [spelling, kind] : kKeywords)
    if (word == spelling) return kind;
  return std::nullopt;
}

std::string lowercase(std::string_view word) {
  std::string lower(word);
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return lower;
}

// Character classes by hand: <cctype> depends on the locale, and the language is ASCII outside strings.
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
// Names are the reference grammar's (reference.hpp).
bool is_name_start(char c) {
  return is_reference_name_start(c);
}
bool is_name_char(char c) {
  return is_reference_name_char(c);
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_utf8_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// Turns text into tokens, ending with one kEnd token whose column is just past the last character.
class Lexer {
 public:
  explicit Lexer(const std::string& text) : text_(text) {}

  std::vector<Token> tokenize() {
    std::vector<Token> tokens;
    for (;;) {
      while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
      if (pos_ == text_.size()) break;
      tokens.push_back(next_token());
    }
    tokens.push_back(make(Tok::kEnd, pos_));
    return tokens;
  }

 private:
  char peek(size_t ahead) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }

  // Columns count characters, not bytes, so a caret lines up under UTF-8 text. Tokens are made left to right, so
  // counting on from the previous answer keeps tokenizing linear.
  size_t column(size_t offset) const {
    if (offset < counted_offset_) {
      counted_offset_ = 0;
      counted_column_ = 1;
    }
    for (; counted_offset_ < offset; ++counted_offset_)
      if (!is_utf8_continuation(text_[counted_offset_])) ++counted_column_;
    return counted_column_;
  }

  // The whole (UTF-8) character at `offset`, printable in a message.
  std::string character_at(size_t offset) const {
    const unsigned char c = static_cast<unsigned char>(text_[offset]);
    if (c < 0x20 || c == 0x7F) {
      static constexpr char kHex[] = "0123456789abcdef";
      return std::string("\\x") + kHex[c >> 4] + kHex[c & 0xF];
    }
    size_t end = offset + 1;
    while (end < text_.size() && is_utf8_continuation(text_[end])) ++end;
    return text_.substr(offset, end - offset);
  }

  [[noreturn]] void fail(const std::string& message, size_t offset) const {
    throw ExpressionError(message, column(offset));
  }

  [[noreturn]] void unknown_operator(size_t length, const std::string& suggestion) const {
    fail("unknown operator '" + text_.substr(pos_, length) + "' (did you mean '" + suggestion + "'?)", pos_);
  }

  Token make(Tok kind, size_t start, Json value = nullptr) const {
    return Token{kind, text_.substr(start, pos_ - start), std::move(value), column(start)};
  }

  Token next_token() {
    const char c = text_[pos_];
    if (is_digit(c)) return lex_number();
    if (c == '\'' || c == '"') return lex_string();
    if (is_name_start(c)) return lex_word();
    return lex_symbol();
  }

  Token lex_number() {
    const size_t start = pos_;
    // Swallow everything that could be part of a number, so "3abc" or "1.2.3" is reported whole as one bad number
    // instead of as a confusing token after it.
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      const bool exponent_sign = (c == '+' || c == '-') && (text_[pos_ - 1] == 'e' || text_[pos_ - 1] == 'E');
      if (!is_name_start(c) && !is_digit(c) && c != '.' && !exponent_sign) break;
      ++pos_;
    }
    const std::string_view number(text_.data() + start, pos_ - start);
    if (!well_formed_number(number)) fail("invalid number '" + std::string(number) + "'", start);
    const bool is_float = number.find_first_of(".eE") != std::string_view::npos;
    return make(Tok::kNumber, start, is_float ? parse_float(number, start) : parse_integer(number, start));
  }

  // digits ['.' digits] [('e' | 'E') ['+' | '-'] digits]
  static bool well_formed_number(std::string_view s) {
    size_t i = 0;
    const auto digits = [&] {
      const size_t from = i;
      while (i < s.size() && is_digit(s[i])) ++i;
      return i > from;
    };
    if (!digits()) return false;
    if (i < s.size() && s[i] == '.' && (++i, !digits())) return false;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      if (!digits()) return false;
    }
    return i == s.size();
  }

  Json parse_integer(std::string_view s, size_t start) const {
    uint64_t value = 0;
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (error != std::errc() || end != s.data() + s.size())
      fail("integer '" + std::string(s) + "' is too large", start);
    // Like nlohmann::json, keep integers signed when they fit and unsigned only beyond that.
    if (value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<int64_t>(value);
    return value;
  }

  Json parse_float(std::string_view s, size_t start) const {
    double value = 0;
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (error != std::errc() || end != s.data() + s.size())
      fail("number '" + std::string(s) + "' is out of range", start);
    return value;
  }

  Token lex_string() {
    const size_t start = pos_;
    const char quote = text_[pos_++];
    std::string value;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] != '\\') {
        value += text_[pos_++];
        continue;
      }
      if (pos_ + 1 == text_.size()) break;  // a trailing backslash escapes nothing; the string never ends
      const char escaped = text_[pos_ + 1];
      if (escaped != '\\' && escaped != '\'' && escaped != '"')
        fail("unknown escape '\\" + character_at(pos_ + 1) + "' in string (only \\\\, \\' and \\\" are escapes)", pos_);
      value += escaped;
      pos_ += 2;
    }
    if (pos_ == text_.size() || text_[pos_] != quote)
      fail(std::string("unterminated string (no closing ") + quote + ")", start);
    ++pos_;
    return make(Tok::kString, start, std::move(value));
  }

  void skip_name_part() {
    while (pos_ < text_.size() && is_name_char(text_[pos_])) ++pos_;
  }

  // A keyword or a dotted reference.
  Token lex_word() {
    const size_t start = pos_;
    skip_name_part();
    const std::string_view first(text_.data() + start, pos_ - start);
    if (const auto kind = keyword(first)) {
      if (peek(0) == '.') fail("'" + std::string(first) + "' is a keyword and cannot start a reference", start);
      return make(*kind, start);
    }
    if (peek(0) != '.') {
      // References always have a dotted prefix in practice, so "True" or "AND" is far likelier a miscased keyword
      // than a name; stopping here beats a baffling "unknown reference" at run time.
      const std::string lower = lowercase(first);
      if (keyword(lower)) fail("'" + std::string(first) + "' is not a keyword (did you mean '" + lower + "'?)", start);
    }
    while (peek(0) == '.') {
      ++pos_;
      if (!is_name_start(peek(0))) fail("expected a name after '.'", pos_);
      skip_name_part();
    }
    return make(Tok::kName, start);
  }

  Token lex_symbol() {
    const size_t start = pos_;
    const char next = peek(1);
    const auto take = [&](Tok kind, size_t length) {
      pos_ += length;
      return make(kind, start);
    };
    switch (text_[pos_]) {
      case '(':
        return take(Tok::kLParen, 1);
      case ')':
        return take(Tok::kRParen, 1);
      case '[':
        return take(Tok::kLBracket, 1);
      case ']':
        return take(Tok::kRBracket, 1);
      case ',':
        return take(Tok::kComma, 1);
      case '-':
        return take(Tok::kMinus, 1);
      case '<':
        if (next == '>') unknown_operator(2, "!=");
        return next == '=' ? take(Tok::kLe, 2) : take(Tok::kLt, 1);
      case '>':
        return next == '=' ? take(Tok::kGe, 2) : take(Tok::kGt, 1);
      case '=':
        if (next == '=') {
          if (peek(2) == '=') unknown_operator(3, "==");
          return take(Tok::kEq, 2);
        }
        if (next == '<') unknown_operator(2, "<=");
        if (next == '>') unknown_operator(2, ">=");
        unknown_operator(1, "==");
      case '!':
        if (next == '=') {
          if (peek(2) == '=') unknown_operator(3, "!=");
          return take(Tok::kNe, 2);
        }
        return take(Tok::kNot, 1);
      case '&':
        if (next == '&') return take(Tok::kAnd, 2);
        unknown_operator(1, "&&");
      case '|':
        if (next == '|') return take(Tok::kOr, 2);
        unknown_operator(1, "||");
      case '.':
        if (is_digit(next)) fail("a number needs a digit before its '.' (0.5, not .5)", start);
        break;
      default:
        break;
    }
    fail("unexpected character '" + character_at(start) + "'", start);
  }

  const std::string& text_;
  size_t pos_ = 0;
  mutable size_t counted_offset_ = 0, counted_column_ = 1;  // a cache for column()
};

// ---------------------------------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------------------------------
// Values: naming them in messages, comparing them.

const char* type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "number";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "object";
    case Json::value_t::binary:
      return "binary";
    case Json::value_t::discarded:
      return "discarded";
  }
  return "value";
}

// The value as JSON, shortened: a message should name a value, not reprint a whole output file.
std::string render(const Json& value) {
  constexpr size_t kMaxLength = 60;
  // `replace`: a resolved string need not be valid UTF-8, and an error message must not throw.
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() <= kMaxLength) return text;
  size_t cut = kMaxLength - 3;
  while (cut > 0 && is_utf8_continuation(text[cut])) --cut;
  return text.substr(0, cut) + "...";
}

// "string \"a\"", "number 3", "null".
std::string describe(const Json& value) {
  return value.is_null() ? "null" : type_name(value) + (" " + render(value));
}

template <typename T>
int three_way(const T& a, const T& b) {
  return (b < a) - (a < b);
}

// nlohmann::json stores integers as int64 or uint64 (non-negative numbers parse as unsigned); compare them exactly
// rather than through double, which loses precision above 2^53.
int compare_integers(const Json& a, const Json& b) {
  const auto negative = [](const Json& n) { return !n.is_number_unsigned() && n.get<int64_t>() < 0; };
  const bool a_negative = negative(a), b_negative = negative(b);
  if (a_negative != b_negative) return a_negative ? -1 : 1;
  if (a_negative) return three_way(a.get<int64_t>(), b.get<int64_t>());
  return three_way(a.get<uint64_t>(), b.get<uint64_t>());
}

// -1, 0 or 1; nullopt when unordered (NaN).
std::optional<int> compare_numbers(const Json& a, const Json& b) {
  if (a.is_number_float() || b.is_number_float()) {
    const double x = a.get<double>(), y = b.get<double>();
    if (std::isnan(x) || std::isnan(y)) return std::nullopt;
    return three_way(x, y);
  }
  return compare_integers(a, b);
}

// Equality for `==`, `!=` and `in`: numbers by value, other types must match, lists item by item, objects key by key
// (in any order; ordered_json's own == would also compare key order).
bool equal(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.type() != b.type()) return false;
  if (a.is_array()) return std::equal(a.begin(), a.end(), b.begin(), b.end(), equal);
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [key, value] : a.items()) {
      const auto match = b.find(key);
      if (match == b.end() || !equal(value, *match)) return false;
    }
    return true;
  }
  return a == b;
}

bool ordered(CompareOp op, const Json& a, const Json& b, const Operator& where) {
  std::optional<int> order;
  if (a.is_number() && b.is_number()) {
    order = compare_numbers(a, b);
  } else if (a.is_string() && b.is_string()) {
    order = three_way(a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>()), 0);
  } else {
    throw ExpressionError("cannot compare " + describe(a) + " with " + describe(b), where.column);
  }
  if (!order) return false;  // NaN is neither less, equal nor greater
  switch (op) {
    case CompareOp::kLt:
      return *order < 0;
    case CompareOp::kLe:
      return *order <= 0;
    case CompareOp::kGt:
      return *order > 0;
    case CompareOp::kGe:
      return *order >= 0;
    default:
      return false;  // not an ordering; the caller never asks
  }
}

bool contains(const Json& haystack, const Json& needle, const Operator& where) {
  if (haystack.is_array())
    return std::any_of(haystack.begin(), haystack.end(), [&](const Json& item) { return equal(item, needle); });
  if (haystack.is_string() || haystack.is_object()) {
    if (!needle.is_string())
      throw ExpressionError("cannot look for " + describe(needle) + " in " + describe(haystack) +
                                (haystack.is_string() ? " (only a string can be found in a string)"
                                                      : " (only a string can be an object's key)"),
                            where.column);
    const auto& key = needle.get_ref<const std::string&>();
    if (haystack.is_object()) return haystack.contains(key);
    return haystack.get_ref<const std::string&>().find(key) != std::string::npos;
  }
  throw ExpressionError("'" + where.spelling + "' needs a list, string or object on the right, got " + render(haystack),
                        where.column);
}

// Negation that cannot overflow: -INT64_MIN becomes unsigned, and -(unsigned beyond INT64_MIN) a float.
Json negate(const Json& number) {
  constexpr uint64_t kInt64MinMagnitude = uint64_t{1} << 63;
  if (number.is_number_float()) return -number.get<double>();
  if (number.is_number_unsigned()) {
    const uint64_t magnitude = number.get<uint64_t>();
    if (magnitude == kInt64MinMagnitude) return std::numeric_limits<int64_t>::min();
    if (magnitude < kInt64MinMagnitude) return -static_cast<int64_t>(magnitude);
    return -static_cast<double>(magnitude);
  }
  const int64_t value = number.get<int64_t>();
  if (value == std::numeric_limits<int64_t>::min()) return kInt64MinMagnitude;
  return -value;
}

bool require_boolean(const Json& value, const Operator& where) {
  if (!value.is_boolean())
    throw ExpressionError("'" + where.spelling + "' needs true or false, got " + render(value), where.column);
  return value.get<bool>();
}

// ---------------------------------------------------------------------------------------------------------------------
// Evaluation

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

}  // namespace

// ---------------------------------------------------------------------------------------------------------------------
// Expression

Expression::Expression() = default;
Expression::Expression(Expression&&) noexcept = default;
Expression& Expression::operator=(Expression&&) noexcept = default;
Expression::~Expression() = default;

Expression Expression::parse(const std::string& text) {
  ExpressionParser parser(Lexer(text).tokenize());
  Expression expression;
  expression.root_ = parser.parse();
  expression.text_ = text;
  expression.start_column_ = parser.first_column();
  expression.reference_positions_ = parser.take_references();
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
  return Evaluator<decltype(by_index)>(by_index).evaluate(*root_);
}

Json Expression::evaluate(const Resolver& resolve) const {
  if (!root_) throw std::logic_error("Expression::evaluate on a moved-from expression");
  const auto by_index = [&](size_t index) { return resolve(reference_positions_[index].first); };
  return Evaluator<decltype(by_index)>(by_index).evaluate(*root_);
}

bool Expression::evaluate_condition(const ReferenceResolver& resolve) const {
  return as_condition(evaluate(resolve));
}

bool Expression::evaluate_condition(const Resolver& resolve) const {
  return as_condition(evaluate(resolve));
}

bool Expression::as_condition(const Json& result) const {
  if (!result.is_boolean())
    throw ExpressionError("condition must be true or false, got " + render(result), start_column_);
  return result.get<bool>();
}

}  // namespace kiln::host

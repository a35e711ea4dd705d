#include "expression_lexer.hpp"

#include <kiln/host/expression.hpp>
#include <kiln/host/reference.hpp>

#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace kiln::host::expr {

namespace {

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

}  // namespace

std::vector<Token> tokenize(const std::string& text) {
  return Lexer(text).tokenize();
}

}  // namespace kiln::host::expr

#include "csv_reader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common.hpp"

namespace kiln::data {
namespace {

char delimiter_char(Delimiter d) {
  switch (d) {
    case Delimiter::Comma:
      return ',';
    case Delimiter::Tab:
      return '\t';
    case Delimiter::Semicolon:
      return ';';
    case Delimiter::Whitespace:
      return ' ';
  }
  return ',';
}

// Accumulates fields and records; knows how each mode ends a field.
class RecordBuilder {
 public:
  explicit RecordBuilder(Delimiter d) : whitespace_(d == Delimiter::Whitespace) {}

  void add_char(char c) { field_ += c; }
  void mark_quoted() { quoted_ = true; }
  bool field_empty() const { return field_.empty() && !quoted_; }
  void end_field() {
    // In whitespace mode a run of separators is one separator.
    if (whitespace_ && field_empty()) return;
    fields_.push_back(quoted_ ? field_ : std::string(trim(field_)));
    field_.clear();
    quoted_ = false;
  }
  void end_record(int64_t line, std::vector<CsvRecord>& out) {
    end_field();
    const bool blank = fields_.empty() || (fields_.size() == 1 && fields_[0].empty() && !last_quoted_);
    if (!blank) out.push_back({line, std::move(fields_)});
    fields_.clear();
  }
  void remember_quote() { last_quoted_ = quoted_; }

 private:
  bool whitespace_;
  bool quoted_ = false;
  bool last_quoted_ = false;
  std::string field_;
  std::vector<std::string> fields_;
};

bool is_separator(char c, Delimiter d) {
  if (d == Delimiter::Whitespace) return c == ' ' || c == '\t';
  return c == delimiter_char(d);
}

}  // namespace

std::optional<Delimiter> parse_delimiter(const std::string& name, std::string_view sample) {
  if (name == ",") return Delimiter::Comma;
  if (name == "\t" || name == "\\t" || name == "tab") return Delimiter::Tab;
  if (name == ";") return Delimiter::Semicolon;
  if (name == "whitespace") return Delimiter::Whitespace;
  if (name != "auto") return std::nullopt;
  if (sample.find('\t') != std::string_view::npos) return Delimiter::Tab;
  if (sample.find(',') != std::string_view::npos) return Delimiter::Comma;
  if (sample.find(';') != std::string_view::npos) return Delimiter::Semicolon;
  return Delimiter::Whitespace;
}

std::vector<CsvRecord> split_records(std::string_view text, Delimiter delimiter, int64_t first_line,
                                     const std::string& where) {
  std::vector<CsvRecord> records;
  RecordBuilder builder(delimiter);
  int64_t line = first_line;
  int64_t record_line = first_line;
  bool in_quotes = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        builder.add_char('"');
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        if (c == '\n') ++line;
        builder.add_char(c);
      }
    } else if (c == '"' && builder.field_empty()) {
      in_quotes = true;
      builder.mark_quoted();
    } else if (is_separator(c, delimiter)) {
      builder.end_field();
    } else if (c == '\n') {
      builder.remember_quote();
      builder.end_record(record_line, records);
      record_line = ++line;
    } else if (c != '\r') {
      builder.add_char(c);
    }
  }
  if (in_quotes) bad_input(where + ":" + std::to_string(record_line) + ": unterminated quoted field");
  builder.remember_quote();
  builder.end_record(record_line, records);
  return records;
}

std::string_view trim(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

bool is_missing_token(std::string_view token) {
  token = trim(token);
  std::string lower(token);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.empty() || lower == "na" || lower == "n/a" || lower == "nan" || lower == "null" || lower == "?";
}

std::optional<double> parse_number(std::string_view token) {
  token = trim(token);
  if (!token.empty() && token.front() == '+') token.remove_prefix(1);
  if (token.empty()) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (ec != std::errc() || end != token.data() + token.size()) return std::nullopt;
  return value;
}

}  // namespace kiln::data

// Splitting delimited text into records: quoted fields (RFC 4180 style, ""
// for a quote, delimiters and newlines allowed inside quotes), CRLF, blank
// lines ignored, and a whitespace mode where runs of spaces/tabs separate.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::data {

enum class Delimiter { Comma, Tab, Semicolon, Whitespace };

struct CsvRecord {
  int64_t line = 0;  // 1-based line of the file where the record starts
  std::vector<std::string> fields;
};

// "auto" looks at `sample` (the first data line): tab, else comma, else
// semicolon, else whitespace. Returns nullopt for an unknown spelling.
std::optional<Delimiter> parse_delimiter(const std::string& name, std::string_view sample);

// `first_line` is the file line number `text` starts at (after skipped lines).
// Throws bad_input naming `where` and the line for an unterminated quote.
std::vector<CsvRecord> split_records(std::string_view text, Delimiter delimiter, int64_t first_line,
                                     const std::string& where);

// Missing-value spellings (case-insensitive): "", NA, N/A, NaN, null, ?.
bool is_missing_token(std::string_view token);
// A whole-token number (locale-independent; accepts a leading '+', inf).
std::optional<double> parse_number(std::string_view token);
std::string_view trim(std::string_view text);

}  // namespace kiln::data

// data.csv's reader (plugins/ml/data/csv_reader.cpp, csv_typing.cpp): the
// input split into records with the delimiter its first byte picks, each
// column typed and converted, the first column planned as a label. Only
// bad_input's kiln::Error may come out.
#include "csv_reader.hpp"
#include "csv_typing.hpp"

#include <kiln/sdk.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const kiln::data::Delimiter delimiters[] = {kiln::data::Delimiter::Comma, kiln::data::Delimiter::Tab,
                                                    kiln::data::Delimiter::Semicolon,
                                                    kiln::data::Delimiter::Whitespace};
  const std::string text = kiln::fuzz::text_of(data + 1, size - 1);
  try {
    const auto auto_delimiter = kiln::data::parse_delimiter("auto", text.substr(0, text.find('\n')));
    const auto delimiter = (data[0] & 4) != 0 && auto_delimiter ? *auto_delimiter : delimiters[data[0] & 3];
    const auto records = kiln::data::split_records(text, delimiter, 1, "fuzz.csv");
    size_t columns = 0;
    for (const auto& r : records) columns = std::max(columns, r.fields.size());
    for (size_t j = 0; j < std::min<size_t>(columns, 8); ++j) {
      kiln::data::Tokens tokens;
      for (const auto& r : records) tokens.push_back(j < r.fields.size() ? std::string_view(r.fields[j]) : "");
      const auto column = kiln::data::infer_column(tokens, kiln::data::DeclaredType::Inferred);
      for (const auto token : tokens) (void)kiln::data::convert_token(token, column);
      if (j == 0) (void)kiln::data::plan_label(tokens, "auto", {}, "fuzz.csv");
    }
  } catch (const kiln::Error&) {
  }
  return 0;
}

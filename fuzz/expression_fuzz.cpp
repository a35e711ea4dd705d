// The `when:` expression language (host/lib/pipeline/expression.cpp): parse
// any text; what parses is evaluated against references that resolve to a
// few typed values. Only ExpressionError may come out.
#include <kiln/host/expression.hpp>

#include "fuzz_support.hpp"

using kiln::host::Expression;
using kiln::host::ExpressionError;
using kiln::host::Json;

namespace {

Json value_of(const std::string& name) {
  static const Json values = Json::parse(
      R"({"params.n": 3, "params.x": 0.5, "params.s": "text", "params.b": true, "params.l": [1, "a", null],
          "params.o": {"k": 1}, "run.status": "succeeded"})");
  const auto it = values.find(name);
  return it != values.end() ? *it : Json(name.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = kiln::fuzz::text_of(data, size);
  try {
    const Expression e = Expression::parse(text);
    (void)e.references();
    try {
      (void)e.evaluate(Expression::Resolver(value_of));
      (void)e.evaluate_condition(Expression::Resolver(value_of));
    } catch (const ExpressionError&) {
    }
    try {
      (void)e.evaluate(Expression::ReferenceResolver([](const kiln::host::Reference&) { return Json(1); }));
    } catch (const ExpressionError&) {
    }
  } catch (const ExpressionError& error) {
    if (error.column() < 1 || error.column() > text.size() + 1)
      kiln::fuzz::fail("column " + std::to_string(error.column()) + " outside the text");
  }
  return 0;
}

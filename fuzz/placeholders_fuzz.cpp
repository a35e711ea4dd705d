// "{{ expression }}" placeholders (host/lib/pipeline/placeholders.cpp): the
// input as a string value, alone and nested in a list and an object, found
// and rendered. Only ExpressionError may come out.
#include <kiln/host/placeholders.hpp>

#include "fuzz_support.hpp"

using kiln::host::ExpressionError;
using kiln::host::Json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = kiln::fuzz::text_of(data, size);
  (void)kiln::host::whole_placeholder(text);
  const Json value = Json::array({text, Json::object({{"k", text}}), 1});
  try {
    (void)kiln::host::find_placeholders(value);
    (void)kiln::host::render_placeholders(
        value, kiln::host::Expression::Resolver([](const std::string& name) -> Json {
          if (name == "params.list") return Json::array({1, 2});
          if (name == "params.obj") return Json::object({{"a", "b"}});
          return Json(name);
        }));
  } catch (const ExpressionError&) {
  }
  return 0;
}

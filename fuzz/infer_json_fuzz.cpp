// An inference request's body (host/serve/infer_json.cpp): the streaming
// reader and the tree reader. Only ServeError may come out, and when both
// accept a body they agree on its inputs.
#include <kiln/serve/infer_json.hpp>

#include "fuzz_support.hpp"

using kiln::serve::InferBody;
using kiln::serve::ServeError;

namespace {

std::optional<InferBody> read(InferBody (*reader)(const std::string&), const std::string& body) {
  try {
    return reader(body);
  } catch (const ServeError&) {
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body = kiln::fuzz::text_of(data, size);
  const auto streamed = read(kiln::serve::read_infer_body, body);
  const auto tree = read(kiln::serve::read_infer_body_with_tree, body);
  if (streamed && tree) {
    if (streamed->inputs.size() != tree->inputs.size()) kiln::fuzz::fail("the readers disagree on the inputs");
    for (size_t i = 0; i < tree->inputs.size(); ++i)
      if (streamed->inputs[i].name != tree->inputs[i].name || streamed->inputs[i].datatype != tree->inputs[i].datatype ||
          streamed->inputs[i].shape != tree->inputs[i].shape ||
          streamed->inputs[i].bytes != tree->inputs[i].bytes)
        kiln::fuzz::fail("the readers disagree on input " + tree->inputs[i].name);
    if (streamed->wanted_outputs != tree->wanted_outputs || streamed->id != tree->id)
      kiln::fuzz::fail("the readers disagree on outputs or id");
  }
  return 0;
}

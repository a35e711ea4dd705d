// The JSON of an inference call (Open Inference Protocol, REST): reading a
// request body into dense tensors and writing the response, without a JSON
// tree on the way. Values go straight between the text and the buffers: on
// the digits benchmark building and freeing a tree per request cost more
// CPU than the model (docs/serving.md, "The request path").
#pragma once

#include <kiln/serve/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::serve {

struct InferBody {
  std::vector<HostTensor> inputs;
  std::vector<std::string> wanted_outputs;  // "outputs": [{"name"}, ...]; empty: all
  std::optional<std::string> id;            // echoed in the response
};

// How deep a request body may nest arrays and objects (a tensor's rows count:
// "data" of rank r sits r + 3 levels down). Deeper bodies are refused.
constexpr size_t kMaxJsonNesting = 64;

// Reads {"inputs": [...], "outputs"?: [...], "id"?: "...", "parameters"?: {...}}.
// Throws ServeError(400) naming the problem (the input, the value, the JSON
// syntax error, nesting past kMaxJsonNesting); values are quoted as short
// excerpts. Nothing recurses on the body's nesting.
InferBody read_infer_body(const std::string& body);
// The same through a JSON tree (nlohmann): slower, but it reads every JSON
// form and words every error. read_infer_body falls back to it for bodies
// its streaming reader does not take; tests check the two agree.
InferBody read_infer_body_with_tree(const std::string& body);

// Appends {"model_name", "model_version", "id"?, "outputs": [...]} with the
// outputs named in `wanted` (all when it is empty). Floating-point values
// are written in their shortest exact form, non-finite ones as null.
// Throws ServeError(500) for an output whose datatype JSON cannot carry.
void write_infer_response(std::string& out, const std::string& model, int64_t version,
                          const std::optional<std::string>& id, const std::vector<HostTensor>& outputs,
                          const std::vector<std::string>& wanted);

}  // namespace kiln::serve

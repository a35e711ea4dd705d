#include <fstream>
#include <sstream>

#include "components.hpp"

namespace kiln::util {

Manifest Echo::manifest() {
  return Manifest("util.echo", "1.0.0", Kind::Generic)
      .description("Echo a message as a text artifact and an output parameter")
      .param(Param::String("message").default_value("hello").description("the text to echo"))
      .input(Port("text", "Text").optional().description("upstream text written before the message"))
      .output(Port("text", "Text").description("message.txt holding the echoed text"))
      .output_parameter(Port("message", "string").description("the echoed text"));
}

void Echo::run(Context& ctx) {
  std::string text;
  if (const auto upstream = ctx.optional_input_path("text")) {
    std::ifstream in(*upstream / "message.txt");
    if (!in) throw Error("input 'text' has no message.txt", KILN_ERROR_INVALID_ARGUMENT);
    std::ostringstream content;
    content << in.rdbuf();
    text = content.str() + "\n";
  }
  text += ctx.param_string("message");
  ctx.info("echo: " + text);
  std::ofstream out(ctx.output_path("text") / "message.txt");
  out << text;
  if (!out.flush()) throw Error("cannot write message.txt", KILN_ERROR_IO);
  ctx.output_metadata("text", "{\"length\": " + std::to_string(text.size()) + "}");
  ctx.set_output("message", text);
  ctx.progress(1.0, "echoed");
}

}  // namespace kiln::util

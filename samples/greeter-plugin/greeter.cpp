// A complete kiln component: docs/plugin-authoring.md walks through it.
#include <kiln/sdk.hpp>

#include <fstream>

struct Greeter {
  static kiln::Manifest manifest() {
    return kiln::Manifest("sample.greet", "1.0.0", kiln::Kind::Generic)
        .description("Greet someone, a number of times")
        .param(kiln::Param::String("name").description("who to greet"))
        .param(kiln::Param::Int("times").default_value(1).min(1).max(100))
        .output(kiln::Port("greeting", "Text").description("greeting.txt"))
        .output_parameter(kiln::Port("words", "int"));
  }

  void run(kiln::Context& ctx) {
    const std::string name = ctx.param_string("name");
    const int64_t times = ctx.param_int("times");
    std::ofstream out(ctx.output_path("greeting") / "greeting.txt");
    for (int64_t i = 0; i < times; ++i) {
      ctx.throw_if_cancelled();
      out << "Hello, " << name << "!\n";
      ctx.progress(double(i + 1) / double(times));
    }
    if (!out.flush()) throw kiln::Error("cannot write greeting.txt", KILN_ERROR_IO);
    ctx.metric("greetings", double(times));
    ctx.set_output("words", 2 * times);
  }
};

KILN_PLUGIN(Greeter)

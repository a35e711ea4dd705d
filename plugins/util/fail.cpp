#include <chrono>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include <kiln/sdk/replica.hpp>

#include "components.hpp"

namespace kiln::util {
namespace {

// A real invalid memory access (no raise()): UBSan must not turn it into a
// report-and-exit, so this one function is left unchecked.
__attribute__((no_sanitize_undefined)) void write_through_null() {
  volatile int* volatile nowhere = nullptr;  // volatile: the store cannot be elided
  *nowhere = 1;
}

}  // namespace

Manifest Fail::manifest() {
  return Manifest("util.fail", "1.0.0", Kind::Generic)
      .description("Fail on purpose, in the way `mode` names (for testing executors)")
      .param(Param::String("mode")
                 .default_value("error")
                 .choices({"error", "throw", "segfault", "abort", "kill", "hang", "exit"})
                 .description("error: return an error value; throw: throw std::runtime_error; segfault: write "
                              "through a null pointer; abort: call abort(); kill: SIGKILL itself, as the kernel's OOM "
                              "killer does; hang: never return, ignoring "
                              "cancellation; exit: exit the process with exit_code"))
      .param(Param::Int("exit_code").default_value(3).min(0).max(255).description("exit status for mode=exit"))
      .param(Param::String("message").default_value("failing on purpose").description("the error message"))
      .param(
          Param::Int("rank")
              .default_value(-1)
              .min(-1)
              .max(kMaxReplicas - 1)
              .description(
                  "-1: fail in every process; R: only rank R of a distributed step fails (KILN_RANK), the others wait "
                  "until they are stopped"));
}

void Fail::run(Context& ctx) {
  const std::string mode = ctx.param_string("mode");
  const std::string message = ctx.param_string("message");
  const int64_t only = ctx.param_int("rank");
  if (only >= 0 && replica().rank != only) {
    ctx.info("rank " + std::to_string(replica().rank) + " waits for rank " + std::to_string(only) + " to fail");
    for (;;) {
      ctx.throw_if_cancelled();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ctx.info("failing with mode " + mode);
  if (mode == "throw") throw std::runtime_error(message);
  if (mode == "segfault") write_through_null();
  if (mode == "abort") std::abort();
  if (mode == "kill") std::raise(SIGKILL);
  if (mode == "exit") std::_Exit(static_cast<int>(ctx.param_int("exit_code")));
  if (mode == "hang")
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  throw Error(message, KILN_ERROR_INVALID_ARGUMENT);
}

}  // namespace kiln::util

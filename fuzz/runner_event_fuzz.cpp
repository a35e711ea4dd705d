// The runner channel (host/lib/execution/runner_event.cpp): the bytes cut
// into lines as the host reads a runner's channel, each line decoded. decode
// never throws; an event it accepts encodes to a line it accepts again.
#include <kiln/host/runner_event.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::host::RunnerLineSplitter splitter;
  splitter.feed(
      std::string_view(reinterpret_cast<const char*>(data), size),
      [](std::string_view line) {
        const auto decoded = kiln::host::decode(line);
        if (!decoded.ok()) {
          if (decoded.error.empty()) kiln::fuzz::fail("a refused line without a reason");
          return;
        }
        const std::string again = kiln::host::encode(*decoded.event);
        const auto redecoded = kiln::host::decode(again);
        if (!redecoded.ok()) kiln::fuzz::fail("an accepted event encodes to a refused line: " + redecoded.error);
        if (kiln::host::encode(*redecoded.event) != again) kiln::fuzz::fail("encode/decode is not stable: " + again);
      },
      [] {});
  return 0;
}

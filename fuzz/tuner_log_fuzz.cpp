// The tuner log kiln resume replays (host/lib/engine/tuner_log.cpp): any
// bytes either parse or are refused with a reason; every record parsed
// writes back to a line that parses to the same record.
#include <kiln/host/tuner_log.hpp>

#include "fuzz_support.hpp"

#include <cmath>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<kiln::host::TunerRecord> records;
  try {
    records = kiln::host::TunerLog::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).empty()) kiln::fuzz::fail("a refused log without a reason");
    return 0;
  }
  for (const auto& record : records) {
    const std::string line = record.to_line();
    const auto again = kiln::host::TunerLog::parse(line, "again");
    if (again.size() != 1 || again[0].to_line() != line) kiln::fuzz::fail("a record does not write back: " + line);
  }
  return 0;
}

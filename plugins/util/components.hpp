// The util plugin's components: small, dependency-free steps for tests,
// demos and benchmarks.
#pragma once

#include <kiln/sdk.hpp>

namespace kiln::util {

// Echoes `message` (after an optional upstream text) as a Text artifact and
// an output parameter.
struct Echo {
  static Manifest manifest();
  void run(Context& ctx);
};

// Sleeps `seconds`, reporting progress; stops early when cancelled.
struct Sleep {
  static Manifest manifest();
  void run(Context& ctx);
};

// Fails in the way `mode` names: error, throw, segfault, abort, hang, exit.
struct Fail {
  static Manifest manifest();
  void run(Context& ctx);
};

// Does nothing, successfully: the unit of per-step overhead.
struct Noop {
  static Manifest manifest();
  void run(Context& ctx);
};

// Fails its first `failures` runs (counted in a file), then succeeds.
struct Flaky {
  static Manifest manifest();
  void run(Context& ctx);
};

// Tries to write into `write_dirs`, to reach 127.0.0.1:`connect_port` and to
// allocate `allocate_mib`; reports what worked (for isolation tests).
struct Probe {
  static Manifest manifest();
  void run(Context& ctx);
};

// A synthetic trial with a known optimum (x = 0.3, y = 2): reports "loss"
// per epoch, honours cancellation, fails on purpose above `fail_above`.
struct Objective {
  static Manifest manifest();
  void run(Context& ctx);
};

}  // namespace kiln::util

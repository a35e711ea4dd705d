// Which process on which boot of which machine runs a kiln host, so that a
// later `kiln resume` can tell a dead host from a live one. A pid alone is
// not enough: pids are recycled, and a reboot resets them.
#pragma once

#include <kiln/host/json.hpp>

#include <optional>
#include <string>

namespace kiln::host {

struct HostIdentity {
  std::string host;  // gethostname
  int pid = 0;
  std::string boot_id;        // /proc/sys/kernel/random/boot_id
  std::string process_start;  // start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22)
};

HostIdentity current_host_identity();

// This machine's name (gethostname), "" when it has none.
std::string host_name();

// UTC now as 2026-01-31T12:00:00Z.
std::string wall_clock_now();

// The start time of a process as in HostIdentity, or "" when there is none.
std::string process_start_time(int pid);

enum class HostState { alive, dead, unknown };
// alive: the same process still runs; dead: this machine, and the process is
// gone (or the machine rebooted); unknown: another machine.
HostState host_state(const HostIdentity& recorded);

// The identity a run recorded: the host, pid, boot_id and process_start
// fields of its row in the runs table or of its run.json record; nullopt
// unless all four are there.
std::optional<HostIdentity> recorded_identity(const Json& run);

// Whether the host that a run recorded still runs it: host_state of
// recorded_identity(run), and unknown when the run recorded no full
// identity. The one rule of `kiln runs list/show` and `kiln resume`.
HostState liveness_of(const Json& run);

// Test-only fault injection: with KILN_TEST_KILL_AT=<name>:<n> in the
// environment, the n-th call of kill_point(<name>) in this process raises
// SIGKILL on the process, as a power cut would stop it there.
void kill_point(const char* name);

}  // namespace kiln::host

// Starting and signalling `kiln run` / `kiln resume` processes that live on
// their own: kiln ui starts them detached (a double fork and a new session,
// so stopping the server, or its terminal, stops no run) and cancels them by
// signalling the very process a run recorded (a pidfd opened, then the
// process's start time checked against the record: never a recycled pid).
#pragma once

#include <kiln/host/host_identity.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::ui {

// Starts `argv` (argv[0] a path) in a new session, reparented to init:
// stdin /dev/null, stdout and stderr appended to `log` (created 0600), no
// other descriptor inherited, the signal mask and dispositions reset.
// Returns its pid once it has executed the program; throws
// std::runtime_error naming the program when it could not.
int launch_detached(const std::vector<std::string>& argv, const std::filesystem::path& log);

enum class SignalResult {
  sent,       // the recorded process got the signal
  gone,       // it no longer runs (its pid is free or now another process's)
  elsewhere,  // it was started on another machine or boot: kiln cannot reach it
};

// Sends `signal` to the process `recorded` names, when it is still that process.
SignalResult signal_recorded_process(const host::HostIdentity& recorded, int signal);

}  // namespace kiln::ui

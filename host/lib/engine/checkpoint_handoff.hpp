// Population-based training through a trial's checkpoint directory: a trial
// whose suggestion carries the engine directive "kiln.pbt" {"from": T} starts
// from a copy of trial T's checkpoint (as a retry resumes from its own), and
// such trials keep their checkpoint after they succeed, for the rounds after
// them. Suggestion keys starting "kiln." are directives, never component
// parameters.
#pragma once

#include "run_state.hpp"

#include <functional>

namespace kiln::host {

// Whether a suggested parameter name is an engine directive ("kiln.pbt").
bool is_engine_directive(const std::string& name);

// The unit's "kiln.pbt" directive, or null when it is no PBT trial.
const Json* pbt_directive(const UnitState& unit);

// Before a PBT trial's first attempt: its checkpoint directory becomes a copy
// of the donor trial's (the unit of trial "from" and the same template part),
// unless it already has one (a retry, a resume). Copied to a temporary
// directory and renamed, so a crash leaves no half copy. A donor that left no
// checkpoint (a component that does not write one) leaves nothing to copy.
// Throws std::runtime_error when the donor trial is unknown or the copy fails.
void hand_over_checkpoint(const RunState& state, const UnitState& unit);

// The directive's contract: a trial of round r starts from one of round
// r - 1, and round r is suggested only once every trial of round r - 1 has
// ended (tune.pbt's barrier). So once round r exists, no trial can start from
// a round before r - 1 again, a resumed one included: their checkpoints are
// removed; the last two rounds' stay. Best effort: one that cannot be removed stays.
// `before_removing` runs once before the first removal: the trials whose
// checkpoints go must never run again, so their records must be written
// (a trial whose record a crash lost runs again on resume).
void prune_pbt_checkpoints(const RunState& state, size_t step, const std::function<void()>& before_removing);

}  // namespace kiln::host

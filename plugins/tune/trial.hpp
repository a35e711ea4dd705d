// What samplers and schedulers see of a search: its trials, their curves and
// results, as scores (lower is better whatever the objective's goal), and the
// settings.* readers. All of it is the SDK's (kiln/sdk/search.hpp), so a
// plugin outside the tree sees the same.
#pragma once

#include "space.hpp"

namespace kiln::tune {

using search::setting_bool;
using search::setting_float;
using search::setting_int;
using search::Trial;
using search::Trials;
using search::TrialState;

}  // namespace kiln::tune

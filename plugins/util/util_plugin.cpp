// The util plugin's one registration.
#include "components.hpp"

KILN_PLUGIN(kiln::util::Echo, kiln::util::Sleep, kiln::util::Fail, kiln::util::Noop, kiln::util::Flaky,
            kiln::util::Probe, kiln::util::Objective)

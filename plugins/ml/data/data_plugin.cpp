// The data plugin's one registration.
#include "components.hpp"

KILN_PLUGIN(kiln::data::Csv, kiln::data::Idx, kiln::data::Clean, kiln::data::Split, kiln::data::TransformFit,
            kiln::data::Augment, kiln::data::Validate)

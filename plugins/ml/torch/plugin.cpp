// The torch plugin's one registration (no LibTorch headers here).
#include "components.hpp"

KILN_PLUGIN(kiln::ml::TrainTorch, kiln::ml::Evaluate, kiln::ml::ServeTorch)

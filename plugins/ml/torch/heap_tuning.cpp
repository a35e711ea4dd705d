#include "heap_tuning.hpp"

#include <malloc.h>

#include <climits>

namespace kiln::ml {

void retain_freed_memory() {
  // Large blocks come from the heap, not from fresh mmaps; a non-main arena
  // that cannot grow still falls back to mmap, so nothing fails for it.
  mallopt(M_MMAP_MAX, 0);
  // Never shrink the heap top: the next batch needs the same bytes again.
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

}  // namespace kiln::ml

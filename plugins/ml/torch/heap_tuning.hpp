// How a LibTorch step process keeps its freed tensor memory for reuse.
#pragma once

namespace kiln::ml {

// LibTorch frees and reallocates the same multi-megabyte activation and
// im2col buffers on every batch. glibc's defaults hand such blocks back to
// the kernel (mmap above the threshold, heap trimming below it), so every
// batch page-faults them in again: on the 2-core VMs kiln targets that was
// over half of a CNN epoch (perf: exc_page_fault). This turns both off for
// the rest of the process: the step process (or, with the inprocess
// executor, the host) keeps its peak heap until it exits. Idempotent.
void retain_freed_memory();

}  // namespace kiln::ml

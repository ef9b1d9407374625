// Walking the heap: every live block (address, usable size), found from the
// layout descriptor alone, the same way tools/gdb/assay.py does in a core.
// The walk reads the structures without locks, so the caller must make them
// still: assay_heap_iterate runs it in a forked copy of the process taken
// while every allocator lock was held.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/layout.h"

namespace assay::internal {

// Calls emit(address, usable, arg) for every live block. Uses only the OS
// for scratch memory (never malloc). Returns false if scratch memory ran out.
bool WalkHeap(const AssayLayout& l, void (*emit)(uintptr_t address, size_t usable, void* arg),
              void* arg);

}  // namespace assay::internal

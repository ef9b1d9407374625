// The per-thread cache of interned stacks in front of the stack table: a
// sample from a stack the thread met recently takes no shard lock, computes
// no full hash and makes no table lookup.
#pragma once

#include <cstddef>
#include <cstdint>

#include "profiler/stack_table.h"

namespace assay::profiler::stack_cache {

// stack_table::Intern's contract (one more reference, cumulative counts
// raised by (objects, bytes)), answered from the thread's cache when it
// holds the same frames and cache label.
Stack* Intern(const uintptr_t* frames, size_t depth, double objects, double bytes,
              const char* cache);

// The thread is exiting: drops the cache's references; later calls go
// straight to the table.
void FlushThread();

}  // namespace assay::profiler::stack_cache

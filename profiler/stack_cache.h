// The per-thread cache of interned stacks in front of the stack table: a
// sample from a stack the thread met recently takes no shard lock, computes
// no full hash and makes no table lookup. Each slot holds a bundle of
// references to its stack: a sample takes one from it and a free on any
// thread caching the stack gives one back, without touching the stack's
// shared count (where every other core's samples at the site had it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "profiler/stack_table.h"

namespace assay::profiler::stack_cache {

// stack_table::Intern's contract (one more reference, cumulative counts
// raised by (objects, bytes)), answered from the thread's cache when it
// holds the same frames and cache label.
// *slot: the stack's slot in every thread's cache (a hash of its frames),
// for Release.
Stack* Intern(const uintptr_t* frames, size_t depth, double objects, double bytes,
              const char* cache, uint8_t* slot);

// Drops a reference Intern gave (an entry's, at its free): back to this
// thread's slot when it caches the stack, else stack_table::Unref. slot is
// Intern's: the stack's own frames are not read again.
void Release(Stack* stack, uint8_t slot);

// The thread is exiting: drops the cache's references; later calls go
// straight to the table.
void FlushThread();

}  // namespace assay::profiler::stack_cache

// Mapped debug blocks (big, over-aligned or guarded): a mapping each, its
// record in its first page, found through a table keyed by the user pointer;
// and, with `guard` alone, the cache of freed guard mappings kept for reuse.
#pragma once

#include "debug_heap/debug_internal.h"

namespace assay::internal::debug {

// A new mapped block of n bytes with its record in the table (state kLive,
// no stacks), or nullptr. guard: against a PROT_NONE page (a page-aligned
// block also starts after one). capacity > 0: a grown block (kGrown) with
// room for capacity bytes, at the front of its pages, ending at its guard
// page; or, unguarded, room for realloc to grow in place.
void* AllocMapped(size_t n, size_t align, bool guard, size_t capacity = 0);
// Takes b out of the table and unmaps it (or keeps it in the guard cache).
void ReleaseMapped(const Block& b);
// The mapped block whose user pointer is exactly user (nullptr header if none).
Block FindMappedExact(uintptr_t user);
// Calls fn for every live mapped block, under the table's lock.
void ForEachLiveMapped(void (*fn)(const Block& b, void* arg), void* arg);
// The same, the table lock held by the caller (the leak scan).
void ForEachLiveMappedLocked(void (*fn)(const Block& b, void* arg), void* arg);

void LockTableForFork();
void UnlockTableAfterFork(bool child);

}  // namespace assay::internal::debug

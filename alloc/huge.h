// Huge blocks (above kMaxLargeSize): each is its own mapping, recorded in a
// hash table keyed by address under one lock. free() reaches here only for
// pointers outside every segment, so the table also decides "invalid free".
#pragma once

#include "base/base.h"

struct AssayLayout;

namespace assay::internal::huge {

// A block of at least n bytes aligned to `align` (a power of two); nullptr
// when the OS has no memory. *zeroed tells whether it reads as zero (a fresh
// mapping) or was reused from the cache of freed mappings.
void* Alloc(size_t n, size_t align, bool* zeroed);

// Frees p if it is a huge block's start (false if it is not). The mapping
// is kept in a small cache for reuse and unmapped by Release once it has
// been free for the decay time.
bool Free(void* p);

// Unmaps cached mappings freed at least age_ms ago (0: all); returns bytes.
size_t Release(uint64_t now_ms, uint64_t age_ms);

// Bytes of freed mappings waiting in the cache.
size_t CachedBytes();

// Usable bytes of huge block p, or 0 if p is not a huge block's start;
// *sampled (if not null) tells whether the block carries a sample point.
size_t UsableSize(const void* p, bool* sampled = nullptr);

// Marks huge block p as carrying a sample point (the profiler has an entry for it).
void SetSampled(const void* p);

// Resizes huge block p to hold n (> kMaxLargeSize) bytes, keeping its
// contents; mremap moves it without copying. The result is not sampled. Returns the new address, or
// nullptr when the OS has no memory (p is then untouched).
//
// Concurrency: p's entry is removed from the table before mremap releases
// p's old address range, and the new range is entered after, so another
// thread that maps the old range meanwhile can register it without clashing
// (the race of the 2011 jemalloc huge-realloc report).
void* Resize(void* p, size_t n);

struct Stats {
  size_t blocks;
  size_t mapped;          // bytes mapped for live huge blocks
  size_t cached;          // bytes of freed mappings kept for reuse
  size_t unmapped_total;  // cumulative
  size_t table_bytes;     // the table's own memory
};
Stats GetStats();

// Calls fn(address, usable_bytes, arg) for every huge block, under the lock.
void ForEach(void (*fn)(void* p, size_t usable, void* arg), void* arg);

// Aborts (base/assert.h) unless the table, the cache and the counters
// agree (huge.cc State) and every entry's range is mapped. Takes the lock.
void AssertValid();

void LockForFork();
void UnlockAfterFork(bool child);

// Fills this part's fields of the layout descriptor (init/init.cc).
void DescribeLayout(AssayLayout* l);

}  // namespace assay::internal::huge

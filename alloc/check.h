// The checked build's heap walks (CMake option ASSAY_CHECKED): one entry
// point that takes the locks in their documented order and validates the
// thread caches, the central lists and their spans, the page heap and the
// huge table against the invariants written beside their fields.
#pragma once

#include "alloc/thread_cache.h"

namespace assay::internal {

// Which thread caches AssertHeapValid walks. A thread cache is written by
// its thread without any lock (the fast paths), so another thread's cache
// may be read only while that thread is quiescent: joined, blocked outside
// the allocator, or gone (a fork child). The calling thread's own cache is
// always safe to read (from outside the allocator).
enum class CacheScope { kOwn, kAllQuiescent };

// In the checked build: walks everything (aborting with "assay: assertion
// failed: ..." on the first broken invariant) and returns true. Otherwise
// does nothing and returns false. Does not allocate. Locks, in order: the
// thread-cache registry (kAllQuiescent; released before the next), every
// central list, the page heap, the huge table.
bool AssertHeapValid(CacheScope scope);

// Checks one thread cache: lists[0] empty with max 0; every other list's
// count equals its length, count <= max <= max_cached, and each block is a
// carved block start of a kSmall span of the list's class. tc must be the
// caller's own cache or a quiescent thread's. The sampled-pool magazine
// (none in g_empty_cache) likewise: count == length <= max = SampledMagazineMax(cls),
// a class's `nonempty` bit set iff its list is,
// blocks of kSampled spans of the class. Returns the blocks per class
// through cached and sampled (may be null) by adding to them.
void AssertThreadCacheValid(const ThreadCache* tc, uint32_t* cached, uint32_t* sampled = nullptr);

// One list of tc (the cheap check the checked build runs at refills and
// overflows).
void AssertFreeListValid(const ThreadCache* tc, size_t cls);

}  // namespace assay::internal

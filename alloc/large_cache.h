// The slice-run cache: a few recently freed large spans (slice runs,
// 256 KiB - 2 MiB blocks and realloc's growable runs) per thread, so that a
// malloc/free pair of such a block skips the page heap's lock, first fit
// and span setup. A cached run stays kLarge in the page heap with
// Span::cached = 1: free to walkers and stats, reused only by its thread,
// returned to the page heap after decay_ms by the purger, on trim, at
// thread exit, and in a fork child for the threads that did not fork.
#pragma once

#include "alloc/segment.h"

struct AssayLayout;

namespace assay::internal::large_cache {

// A cached run of exactly `slices` slices of the calling thread, taken out
// of the cache (Span::cached cleared, kind kLarge), or nullptr; on a miss
// the thread's cached runs go back to the page heap, whose first fit then
// serves the request from them if they fit (see large_cache.cc).
Span* Take(size_t slices);

// Caches the freed large span `span` (not sampled any more, no longer in
// use) for the calling thread; false when it should go to the page heap
// (no thread cache, decay_ms 0, too big).
bool Put(Span* span);

// Gives back to the page heap the calling thread's cached runs that start
// in the `slices` slices following `span` (in its segment), so that span can
// grow over them in place (realloc); true if it gave back any.
bool ReleaseFollowing(const Span* span, size_t slices);

// Returns to the page heap every cached run put before now_ms - age_ms as
// the purger counts time (age_ms 0: every run); the purger's pass calls it
// with its clock. Returns bytes returned.
size_t Reclaim(uint64_t now_ms, uint64_t age_ms);

// True while some thread holds a cached run (read without the lock).
bool HasCached();

// Bytes of runs held by all threads' caches.
size_t CachedBytes();

// The calling thread exits: its runs go back to the page heap.
void OnThreadExit();

// Aborts unless every cached run is a kLarge span marked cached, held by
// one slot only. Takes the registry lock (before the page heap's).
void AssertValid();

void LockForFork();
// In the child, the runs of the threads that did not fork go back to the
// page heap (whose lock is free again by then: called after its handler).
void UnlockAfterFork(bool child);

}  // namespace assay::internal::large_cache

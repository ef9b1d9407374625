// The allocation paths under the fast paths, shared by the slow paths
// (slow_path.cc), realloc (realloc.cc), comalloc (comalloc.cc) and the rest
// of heap.h: routing a request to a class, a slice run or a mapping, the
// sampling countdown's slow side, and the debug heap's override.
#pragma once

#include <errno.h>

#include "alloc/central.h"
#include "alloc/sample_hooks.h"
#include "alloc/size_classes.h"
#include "alloc/thread_cache.h"

namespace assay::internal {

ASSAY_INLINE void* AllocSmall(ThreadCache* tc, size_t cls) {
  if (ASSAY_UNLIKELY(tc == nullptr)) {
    void* head;
    return central::Take(cls, 1, &head) == 0 ? nullptr : head;
  }
  FreeList& l = tc->lists[cls];
  if (void* p = l.head; ASSAY_LIKELY(p != nullptr)) return l.PopLinked(p);
  return thread_cache::Refill(tc, cls);
}

// The class serving n bytes at alignment align (<= kSliceSize).
size_t ClassFor(size_t n, size_t align);

// A block above kMaxSmallSize: a slice run up to kMaxLargeSize, else a
// mapping of its own. *zeroed tells whether it reads as zero already.
void* AllocBig(size_t n, size_t align, bool* zeroed);

ASSAY_INLINE bool IsSmall(size_t n, size_t align) {
  return n <= kMaxSmallSize && align <= kSliceSize;
}

// An ordinary block (not sampled); with slice_run, a slice run whatever its
// size (AllocGrowable).
ASSAY_INLINE void* AllocPlain(ThreadCache* tc, size_t n, size_t align, bool* zeroed,
                              bool slice_run = false) {
  if (slice_run) return AllocBig(n, align, zeroed);
  *zeroed = false;
  if (ASSAY_LIKELY(n <= kMaxSmallSize && align <= kMinAlign)) return AllocSmall(tc, ClassOfSize(n));
  if (IsSmall(n, align)) return AllocSmall(tc, ClassFor(n, align));
  return AllocBig(n, align, zeroed);
}

// A block that carries a sample point: small ones from the sampled pool (so
// that only their frees take the profiler's path), big ones (and, with
// slice_run, any: see AllocGrowable) flagged. *usable: its usable size.
void* AllocSampledBlock(size_t n, size_t align, bool* zeroed, size_t* usable,
                        bool slice_run = false);

// Gives back a block obtained from AllocSampledBlock or AllocPlain, as free would.
ASSAY_INLINE void ReleaseBlock(void* p) { Free(p); }

// Brings tc in line with the profiler's current session, if it changed.
ASSAY_INLINE void SyncProfiler(ThreadCache* tc) {
  if (ASSAY_UNLIKELY(tc->countdown.epoch != profiler::Epoch())) {
    profiler::SyncCountdown(&tc->countdown);
  }
}

// Every allocation that is not the fast path's pop: the debug heap's
// override, the guard sampler, then the countdown and the plain paths.
// nullptr with errno ENOMEM on failure.
void* AllocAccounted(size_t n, size_t align, bool* zeroed);

// A huge block that changed address in place of an allocation (mremap):
// counts it toward the countdown and records it if a sample point lands in it.
void AccountResized(void* p, size_t n);
// The same for a large block realloc resized in place (a sampled one's old
// entry freed by the caller, span->sampled cleared): n bytes counted afresh;
// true if it is sampled now.
bool AccountResizedLarge(Span* span, void* p, size_t n);

// A block realloc moves to grow to n > kSliceSize bytes: a slice run.
void* AllocGrowable(size_t n);

}  // namespace assay::internal

// realloc (heap.h): in place when the block's class or slices allow, by
// mremap for huge blocks, else a move with room to grow.
#include <errno.h>
#include <string.h>

#include "alloc/debug_hooks.h"
#include "alloc/heap.h"
#include "alloc/huge.h"
#include "alloc/large_cache.h"
#include "alloc/locate.h"
#include "alloc/page_heap.h"
#include "alloc/purger.h"
#include "alloc/slow_path.h"

namespace assay::internal::heap {

namespace {

// Whether realloc to n leaves a block of `size` usable bytes where it is: n
// fits and fills more than half of it (a block of 32 bytes or less always
// stays). n == 0 fails `n - 1 < size`. Bitwise, for Realloc's fast path.
ASSAY_INLINE bool StaysInPlace(size_t size, size_t n) {
  return (n - 1 < size) & ((n > size / 2) | (size <= 32));
}

// Resizes a large block in place to `slices`; runs of this thread's
// slice-run cache in the way are free, so they go back to the page heap and
// the block grows over them. Out of line: ReallocSlow serves small blocks too.
ASSAY_NOINLINE bool GrowLargeInPlace(Span* span, size_t slices) {
  return page_heap::ResizeLargeInPlace(span, slices) ||
         (large_cache::ReleaseFollowing(span, slices) &&
          page_heap::ResizeLargeInPlace(span, slices));
}

ASSAY_NOINLINE void* ReallocSlow(void* p, size_t n) {
  if (p == nullptr) return Malloc(n);
  if (n == 0) {  // as glibc: frees p and returns NULL
    Free(p);
    return nullptr;
  }
  if (ASSAY_UNLIKELY(debug::g_on)) return debug::Realloc(p, n);
  const Location loc = Locate(p);
  if (loc.home == Home::kInvalid) {
    size_t old;
    if (!debug::g_guard || !debug::MappedSize(p, &old)) ReportInvalid("realloc", p);
    if (debug::GrowsInPlace(p, n)) return debug::ReallocInPlace(p, n);
    void* q = Malloc(n);
    if (q == nullptr) return nullptr;
    memcpy(q, p, n < old ? n : old);
    Free(p);
    return q;
  }
  const size_t old = UsableOf(loc, p);
  // In place when the block's class or slices allow (a sampled block too:
  // its entry keeps the size first requested; ReallocNotSmall keeps a large
  // one whose slice count still fits). A sampled large block that needs other
  // slices moves instead; a huge one moves by mremap without copying: its
  // entry is freed and the new block is accounted as a fresh allocation.
  switch (loc.home) {
    case Home::kSmall:
    case Home::kSampled:
      if (StaysInPlace(old, n)) return p;
      break;
    case Home::kLarge:
      if (n > kSliceSize && n <= kMaxLargeSize) {
        const size_t slices = AlignUp(n, kSliceSize) >> kSliceShift;
        if (GrowLargeInPlace(loc.span, slices)) {
          loc.span->aux = n;
          if (slices * kSliceSize < old) purger::OnFreed();
          // Resized in place, a block is to the profiler freed and allocated
          // again at its new size, as when it moves (and as a huge block's
          // mremap): every resize draws afresh, so a sampled block's entry
          // keeps no stale size, sampled and plain blocks follow one law,
          // and a sampled block needs no copy to grow (it used to move:
          // strbuild with the profiler spent +6 M instructions in memcpy).
          if (loc.sampled) {
            profiler::OnSampledFree(p);
            loc.span->sampled = 0;
          }
          const bool sampled = AccountResizedLarge(loc.span, p, n);
          if (loc.sampled || sampled) profiler::SafePoint();
          return p;
        }
      } else if (!loc.sampled && StaysInPlace(old, n)) {
        return p;
      }
      break;
    case Home::kHuge:
      if (n > kMaxLargeSize) {
        if (loc.sampled) profiler::OnSampledFree(p);
        void* q = huge::Resize(p, n);
        if (q == nullptr) {
          errno = ENOMEM;
        } else {
          AccountResized(q, n);
        }
        profiler::SafePoint();
        return q;
      }
      break;
    case Home::kInvalid:
      break;
  }
  // Moving to grow: take at least 25% more than the old block (as tcmalloc
  // does), so a block grown a little at a time (a string appended to, a
  // vector pushed to, each realloc to the exact length) moves O(log n)
  // times instead of once per size class on its way up.
  size_t want = n;
  if (n > old) {
    const size_t grown = old + old / 4;
    if (grown > want) want = grown;
  }
  void* q = n > old && n > kSliceSize && want <= kMaxLargeSize ? AllocGrowable(want) : Malloc(want);
  if (q == nullptr && want != n) q = Malloc(n);  // the slack is optional
  if (q == nullptr) return nullptr;
  memcpy(q, p, n < old ? n : old);
  Free(p);
  return q;
}

// realloc of a block in a segment whose slice is not in a plain small span
// (e.cls == 0). Two cases stay put without the slow path's Location and
// locks: a sampled small block, by the rule of Realloc's fast path (sampling
// is size-biased: the strings a program grows longest are the ones most often
// sampled, and each comes here hundreds of times), and a large block that n
// still fits by the same rule (a buffer grown past 64 KiB by small appends;
// see AllocGrowable). The caller owns p, so its span cannot change under us.
// `offset` is p's from the span's first slice, as Realloc decoded it: the
// span's own index follows from it without a second load of the slice map
// (strbuild: 2.5% fewer instructions, all of realloc's, with the fast path
// scheduled better too, its registers no longer kept for this call).
ASSAY_NOINLINE void* ReallocNotSmall(void* p, size_t n, uint32_t offset) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  Span& span = SegmentOf(a)->spans[SliceOf(a) - (offset >> kSliceShift)];
  if (span.kind == SpanKind::kSampled) {
    const SizeClassInfo& c = kClasses[span.cls];
    if (IsBlockOffset(c, offset) && StaysInPlace(c.size, n)) return p;
  } else if (span.kind == SpanKind::kLarge && offset == 0) {
    const size_t usable = span.slices * kSliceSize;
    if (StaysInPlace(usable, n)) {
      if (span.sampled == 0) span.aux = n;  // a sampled one's entry keeps its first size
      return p;
    }
  }
  return ReallocSlow(p, n);
}

}  // namespace

ASSAY_FIRST_USE void* Realloc(void* p, size_t n) {
  // Fast path: a block of a plain small span whose class still suits n (the
  // common case of a buffer grown a little at a time): the checks of the free
  // fast path, no Location built. n == 0 fails `n - 1 < size` and goes on to
  // free p; a null p is in no segment; the debug heap takes the slow path.
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (ASSAY_LIKELY(segment_map::Contains(a) && !debug::g_on)) {
    const auto [seg, e, offset] = Decode(a);
    const SizeClassInfo& c = kClasses[e.cls];
    if (ASSAY_LIKELY((e.cls != 0) & IsBlockOffset(c, offset) & StaysInPlace(c.size, n))) {
      return p;
    }
    if (e.cls == 0) return ReallocNotSmall(p, n, offset);
  }
  return ReallocSlow(p, n);
}

}  // namespace assay::internal::heap

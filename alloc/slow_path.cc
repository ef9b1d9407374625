// The slow paths under malloc's and free's fast paths (thread_cache.h) and
// the allocation routing of slow_path.h: sampled blocks, the debug heap's
// override, the production guard's share of the countdown.
#include "alloc/slow_path.h"

#include "alloc/central.h"
#include "alloc/debug_hooks.h"
#include "alloc/heap.h"
#include "alloc/huge.h"
#include "alloc/large_cache.h"
#include "alloc/locate.h"
#include "alloc/page_heap.h"
#include "alloc/purger.h"
#include "base/options.h"

namespace assay::internal {

// The class serving n bytes at alignment align (<= kSliceSize): a class
// whose size is a multiple of align has aligned blocks, as spans start on a
// slice boundary; the power-of-two classes end the search.
size_t ClassFor(size_t n, size_t align) {
  // Every class but 8 B is 16-aligned, and only requests of at most 8 bytes
  // get 8 B: for n >= align (align <= 16), n's own class is aligned enough.
  if (align <= kMinAlign && n >= align) return ClassOfSize(n);
  size_t cls = ClassOfSize(n < align ? align : n);
  while (kClasses[cls].size % align != 0) ++cls;
  return cls;
}

// A block above kMaxSmallSize: a slice run up to kMaxLargeSize, else a
// mapping of its own. *zeroed tells whether it reads as zero already.
void* AllocBig(size_t n, size_t align, bool* zeroed) {
  if (n <= kMaxLargeSize && align <= kSliceSize) {
    const size_t slices = AlignUp(n, kSliceSize) >> kSliceShift;
    // The slice-run cache serves blocks above the size classes only: the
    // smaller runs are realloc's growable ones (AllocGrowable), whose sizes
    // do not recur and whose slices first fit must see.
    Span* span = n > kMaxSmallSize ? large_cache::Take(slices) : nullptr;
    if (span != nullptr) {
      *zeroed = false;
    } else {
      span = page_heap::AllocSpan(slices, SpanKind::kLarge, 0, zeroed);
      if (span == nullptr) return nullptr;
    }
    span->aux = n;
    return SpanStart(span);
  }
  return huge::Alloc(n, align, zeroed);
}

namespace {

// AllocSampledBlock's big blocks, out of line: the small ones' path makes
// no call that returns.
ASSAY_NOINLINE void* AllocSampledBig(size_t n, size_t align, bool* zeroed, size_t* usable) {
  void* p = AllocBig(n, align, zeroed);
  if (p == nullptr) return nullptr;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (segment_map::Contains(a)) {
    Span* span = &SegmentOf(a)->spans[SliceOf(a)];
    span->sampled = 1;
    *usable = span->slices * kSliceSize;
  } else {
    huge::SetSampled(p);
    *usable = huge::UsableSize(p);
  }
  return p;
}

}  // namespace

// A block that carries a sample point: small ones from the sampled pool (so
// that only their frees take the profiler's path), big ones (and, with
// slice_run, any: see AllocGrowable) flagged.
void* AllocSampledBlock(size_t n, size_t align, bool* zeroed, size_t* usable, bool slice_run) {
  if (!slice_run && IsSmall(n, align)) {
    const size_t cls = ClassFor(n, align);
    *zeroed = false;
    *usable = kClasses[cls].size;
    return thread_cache::TakeSampled(cls);
  }
  return AllocSampledBig(n, align, zeroed, usable);
}

namespace {

// A debug-heap block (guarded_only: one against a guard page) for which the
// countdown decided d; recorded if d says so (its entry is keyed by the
// pointer the program sees).
void* DebugBlock(size_t n, size_t align, bool guarded_only, const profiler::SampleDecision& d) {
  void* p = guarded_only ? debug::AllocGuarded(n, align) : debug::Alloc(n, align);
  if (p == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  if (d.record &&
      profiler::RecordAlloc(p, n, n, align > kMinAlign ? align : 0, d.points, 0, 1) != nullptr) {
    debug::MarkProfiled(p);
    profiler::SafePoint();
  }
  return p;
}

// The allocation crosses the thread's countdown: a point of the profiler's
// lies in it, or (ASSAY_DEBUG=guard=N alone, which shares the countdown) a
// guard point. slice_run: the block must be a slice run (AllocGrowable).
ASSAY_NOINLINE void* SampledAlloc(ThreadCache* tc, size_t n, size_t align, bool* zeroed,
                                  bool slice_run = false) {
  profiler::SampleDecision d;
  bool guard;
  void* p = nullptr;
  {
    // One session reader for the decision and the record; SafePoint, which
    // may run callbacks, comes after it.
    profiler::ReadingScope reading;
    d = profiler::OnSamplePoint(&tc->countdown, n);
    guard = ASSAY_UNLIKELY(d.guard) && n <= kMaxTableSize && !slice_run;
    if (d.record && !guard) {
      size_t usable = 0;
      p = AllocSampledBlock(n, align, zeroed, &usable, slice_run);
      if (p == nullptr) {
        errno = ENOMEM;
        return nullptr;
      }
      profiler::RecordAlloc(p, n, usable, align > kMinAlign ? align : 0, d.points, 0, 1);
    }
  }
  if (p != nullptr) {
    profiler::SafePoint();
    return p;
  }
  if (guard) {
    *zeroed = false;  // a small block guarded by guard=N's sampling
    return DebugBlock(n, align, /*guarded_only=*/true, d);
  }
  p = AllocPlain(tc, n, align, zeroed, slice_run);
  if (p == nullptr) errno = ENOMEM;
  return p;
}

// Runs tc's countdown over n bytes allocated outside AllocAccounted's path;
// the decision (record false: no sample point in them, or not recording).
profiler::SampleDecision CountAllocated(ThreadCache* tc, size_t n) {
  SyncProfiler(tc);
  if (CountdownConsume(&tc->countdown, n)) return {0, false, false};
  return profiler::OnSamplePoint(&tc->countdown, n);
}

// An ordinary allocation with tc's countdown run over it (tc synced): a
// sampled block if a sample point lies in it. slice_run: see AllocPlain.
ASSAY_INLINE void* AllocCounted(ThreadCache* tc, size_t n, size_t align, bool* zeroed,
                                bool slice_run = false) {
  if (ASSAY_UNLIKELY(!CountdownConsume(&tc->countdown, n))) {
    return SampledAlloc(tc, n, align, zeroed, slice_run);
  }
  void* p = AllocPlain(tc, n, align, zeroed, slice_run);
  if (ASSAY_UNLIKELY(p == nullptr)) errno = ENOMEM;
  return p;
}

// ASSAY_DEBUG: the debug heap serves every block (or, with `guard`, the
// blocks of a page or more, and with guard=N one in N above 1 KiB); the
// profiler still samples them.
ASSAY_NOINLINE void* DebugAlloc(ThreadCache* tc, size_t n, size_t align, bool guarded_only) {
  // The countdown moves only for a block that exists.
  void* p = DebugBlock(n, align, guarded_only, {0, false, false});
  if (p == nullptr || tc == nullptr) return p;
  const profiler::SampleDecision d = CountAllocated(tc, n);
  if (d.record &&
      profiler::RecordAlloc(p, n, n, align > kMinAlign ? align : 0, d.points, 0, 1) != nullptr) {
    debug::MarkProfiled(p);
    profiler::SafePoint();
  }
  return p;
}

}  // namespace

ASSAY_FIRST_USE void* AllocAccounted(size_t n, size_t align, bool* zeroed) {
  ThreadCache* tc = thread_cache::Current();
  if (ASSAY_UNLIKELY(debug::g_on)) {
    *zeroed = false;
    return DebugAlloc(tc, n, align, /*guarded_only=*/false);
  }
  if (ASSAY_UNLIKELY(debug::g_guard)) {
    // guard=N alone: blocks up to 1 KiB are guarded at guard points of the
    // countdown (SampledAlloc); bigger ones, which never take the fast
    // path, one in N each.
    const bool guard =
        (debug::g_guard_all_big && (n >= kPageSize || align >= kPageSize)) ||
        (debug::g_guard_sampling && tc != nullptr && n > kMaxTableSize && debug::GuardOneInN());
    if (guard) {
      *zeroed = false;
      return DebugAlloc(tc, n, align, /*guarded_only=*/true);
    }
  }
  if (ASSAY_LIKELY(tc != nullptr)) {
    SyncProfiler(tc);
    return AllocCounted(tc, n, align, zeroed);
  }
  void* p = AllocPlain(tc, n, align, zeroed);  // no cache (thread exiting): no countdown
  if (ASSAY_UNLIKELY(p == nullptr)) errno = ENOMEM;
  return p;
}

// A huge block that changed address in place of an allocation (mremap):
// counts it toward the countdown and records it if a sample point lands in it.
void AccountResized(void* p, size_t n) {
  ThreadCache* tc = thread_cache::Current();
  if (tc == nullptr) return;
  const profiler::SampleDecision d = CountAllocated(tc, n);
  if (!d.record) return;
  huge::SetSampled(p);
  profiler::RecordAlloc(p, n, huge::UsableSize(p), 0, d.points, 0, 1);
}

bool AccountResizedLarge(Span* span, void* p, size_t n) {
  ThreadCache* tc = thread_cache::Current();
  if (tc == nullptr) return false;
  const profiler::SampleDecision d = CountAllocated(tc, n);
  if (!d.record) return false;
  span->sampled = 1;
  profiler::RecordAlloc(p, n, span->slices * kSliceSize, 0, d.points, 0, 1);
  return true;
}

// A block realloc moves to grow to n > kSliceSize bytes: a slice run (a
// large block), not a size class, counted and sampled like any allocation.
// A block grown past 64 KiB tends to keep growing (a buffer, a string built
// by appends), and a slice run grows in place while the slices after it are
// free, wastes less than one slice, and gives its slices back to the page
// heap when freed. A size class would carve it from a span of at least four
// blocks, which one long-lived string of that class pins: on the
// string-building workload that pinning was a third of the peak RSS.
void* AllocGrowable(size_t n) {
  ThreadCache* tc = thread_cache::Current();
  if (tc == nullptr || debug::g_guard) return Malloc(n);  // debug::g_on never gets here
  SyncProfiler(tc);
  bool zeroed;
  return AllocCounted(tc, n, 0, &zeroed, /*slice_run=*/true);
}

namespace {
[[noreturn]] void ReportInvalidFree(const void* p) { heap::ReportInvalid("free", p); }
}  // namespace

// ---- Slow paths of the fast paths in thread_cache.h ----

ASSAY_FIRST_USE void* MallocSlow(size_t n) {
  // Above the fast path's lookup table but still small (1 KiB - 256 KiB):
  // the same pop, the class by formula, without AllocAccounted's routing.
  // The debug heap and guards decide every such block themselves.
  if (n - (kMaxTableSize + 1) < kMaxSmallSize - kMaxTableSize && !debug::g_on && !debug::g_guard) {
    void* p = TryPop(tls_cache, ClassOfLarge(n), n);
    if (ASSAY_LIKELY(p != nullptr)) return p;
  }
  // harden=1: the fast path never sees the thread's cache; its pop is here,
  // through link:: (free_link.h).
  if (ASSAY_UNLIKELY(link::g_key != 0) && n <= kMaxSmallSize && !debug::g_on && !debug::g_guard) {
    if (ThreadCache* tc = thread_cache::Existing()) {
      const size_t cls = n <= kMaxTableSize ? kSmallLookup[(n + 7) >> 3] : ClassOfLarge(n);
      void* p = TryPop</*kLinked=*/true>(tc, cls, n);
      if (ASSAY_LIKELY(p != nullptr)) return p;
    }
  }
  bool zeroed;
  return AllocAccounted(n, 0, &zeroed);
}

ASSAY_FIRST_USE void FreeSlow(void* p) {
  if (p == nullptr) return;
  if (ASSAY_UNLIKELY(debug::g_on)) return debug::Free(p);
  // harden=1: the fast path's push, through link:: (see MallocSlow).
  if (ASSAY_UNLIKELY(link::g_key != 0)) {
    if (ThreadCache* tc = thread_cache::Existing(); tc != nullptr && TryPush<true>(tc, p)) return;
  }
  const Location loc = Locate(p);
  switch (loc.home) {
    case Home::kSmall: {
      ThreadCache* tc = thread_cache::Current();
      if (tc == nullptr) {
        link::Store(p, nullptr);
        central::Give(loc.cls, p, 1);
      } else {
        FreeList& l = tc->lists[loc.cls];
        // Free's fast path declines p == head: the block was freed and not
        // allocated since (it heads this thread's list of its class).
        if (ASSAY_UNLIKELY(p == l.head) && GetOptions().double_free != 0) {
          link::ReportDoubleFree(p, kClasses[loc.cls].size);
        }
        if (l.count < l.max) {
          l.PushLinked(p);
          return;
        }
        thread_cache::PushOverflow(tc, loc.cls, p);
      }
      // Also when the purger sleeps: the spans may have gained free pages.
      // OnCached: no fence while the purger is awake (OnFreed's fence was
      // 3-4% of sizemix, whose page heap always has dirty slices).
      if (page_heap::HasDirty() || purger::Asleep()) purger::OnCached();
      return;
    }
    case Home::kSampled:
      // The entry goes before the memory can be handed out again.
      profiler::OnSampledFree(p);
      thread_cache::GiveSampled(loc.cls, p);
      profiler::SafePoint();
      return;
    case Home::kLarge:
      if (loc.sampled) profiler::OnSampledFree(p);
      // The thread's slice-run cache first (it clears the sampled flag).
      if (!large_cache::Put(loc.span)) {
        page_heap::FreeSpan(loc.span);
        purger::OnFreed();
      }
      if (loc.sampled) profiler::SafePoint();
      return;
    case Home::kHuge:
      if (loc.sampled) profiler::OnSampledFree(p);
      if (huge::Free(p)) {
        purger::OnFreed();
        if (loc.sampled) profiler::SafePoint();
        return;
      }
      break;  // freed by another thread meanwhile: a double free
    case Home::kInvalid:
      if (ASSAY_UNLIKELY(debug::g_guard) && debug::FreeMapped(p)) return;
      break;
  }
  ReportInvalidFree(p);
}

}  // namespace assay::internal

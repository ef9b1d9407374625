// The allocator's slow paths and compound operations (heap.h).
#include "alloc/heap.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/central.h"
#include "alloc/debug_hooks.h"
#include "alloc/huge.h"
#include "alloc/page_heap.h"
#include "alloc/purger.h"
#include "alloc/sample_hooks.h"
#include "alloc/thread_cache.h"
#include "base/layout.h"
#include "base/meta.h"
#include "base/options.h"
#include "base/os.h"

namespace assay::internal {
namespace {

// ---- Where a pointer lives ----

enum class Home { kSmall, kSampled, kLarge, kHuge, kInvalid };

struct Location {
  Home home;
  size_t cls;    // kSmall, kSampled
  Span* span;    // kLarge
  bool sampled;  // the block carries a sample point (kSampled always)
};

Location Locate(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (segment_map::Contains(a)) {
    Segment* seg = SegmentOf(a);
    SliceEntry e;
    __atomic_load(&seg->slice_map[SliceOf(a)], &e, __ATOMIC_RELAXED);
    const uint32_t offset = static_cast<uint32_t>(a - seg->Base() - e.first * kSliceSize);
    if (e.cls != 0) {
      if (IsBlockOffset(kClasses[e.cls], offset)) return {Home::kSmall, e.cls, nullptr, false};
      return {Home::kInvalid, 0, nullptr, false};
    }
    Span* span = &seg->spans[e.first];
    if (span->kind == SpanKind::kLarge && SpanStart(span) == p) {
      return {Home::kLarge, 0, span, span->sampled != 0};
    }
    if (span->kind == SpanKind::kSampled && span->first == e.first &&
        IsBlockOffset(kClasses[span->cls], offset)) {
      return {Home::kSampled, span->cls, span, true};
    }
    return {Home::kInvalid, 0, nullptr, false};
  }
  bool sampled = false;
  if (p != nullptr && huge::UsableSize(p, &sampled) != 0) {
    return {Home::kHuge, 0, nullptr, sampled};
  }
  return {Home::kInvalid, 0, nullptr, false};
}

size_t UsableOf(const Location& loc, const void* p) {
  switch (loc.home) {
    case Home::kSmall:
    case Home::kSampled:
      return kClasses[loc.cls].size;
    case Home::kLarge:
      return loc.span->slices * kSliceSize;
    case Home::kHuge:
      return huge::UsableSize(p);
    case Home::kInvalid:
      break;
  }
  return 0;
}

// ---- Allocation ----

ASSAY_INLINE void* AllocSmall(ThreadCache* tc, size_t cls) {
  if (ASSAY_UNLIKELY(tc == nullptr)) {
    void* head;
    return central::Take(cls, 1, &head) == 0 ? nullptr : head;
  }
  FreeList& l = tc->lists[cls];
  void* p = l.head;
  if (ASSAY_LIKELY(p != nullptr)) {
    l.head = *static_cast<void**>(p);
    l.count--;
    return p;
  }
  return thread_cache::Refill(tc, cls);
}

// The class serving n bytes at alignment align (<= kSliceSize): a class
// whose size is a multiple of align has aligned blocks, as spans start on a
// slice boundary; the power-of-two classes end the search.
size_t ClassFor(size_t n, size_t align) {
  if (align <= kMinAlign) align = n < align ? align : 1;  // every class is 16-aligned but 8 B
  size_t cls = ClassOfSize(n < align ? align : n);
  while (kClasses[cls].size % align != 0) ++cls;
  return cls;
}

// A block above kMaxSmallSize: a slice run up to kMaxLargeSize, else a
// mapping of its own. *zeroed tells whether it reads as zero already.
void* AllocBig(size_t n, size_t align, bool* zeroed) {
  if (n <= kMaxLargeSize && align <= kSliceSize) {
    const size_t slices = AlignUp(n, kSliceSize) >> kSliceShift;
    Span* span = page_heap::AllocSpan(slices, SpanKind::kLarge, 0, zeroed);
    if (span == nullptr) return nullptr;
    span->aux = n;
    return SpanStart(span);
  }
  return huge::Alloc(n, align, zeroed);
}

bool IsSmall(size_t n, size_t align) { return n <= kMaxSmallSize && align <= kSliceSize; }

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
// slice_run, any: see AllocGrowable) flagged.
void* AllocSampledBlock(size_t n, size_t align, bool* zeroed, size_t* usable,
                        bool slice_run = false) {
  if (!slice_run && IsSmall(n, align)) {
    const size_t cls = ClassFor(n, align);
    void* p;
    *zeroed = false;
    *usable = kClasses[cls].size;
    return central::Take(cls, 1, &p, central::kSampled) == 0 ? nullptr : p;
  }
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

// Gives back a block obtained from AllocSampledBlock or AllocPlain, as free would.
void ReleaseBlock(void* p) { Free(p); }

// The allocation crosses the thread's countdown: a sample point lies in it.
// slice_run: the block must be a slice run (AllocGrowable).
ASSAY_NOINLINE void* SampledAlloc(ThreadCache* tc, size_t n, size_t align, bool* zeroed,
                                  bool slice_run = false) {
  const profiler::SampleDecision d = profiler::OnSamplePoint(&tc->countdown, n);
  void* p;
  if (!d.record) {
    p = AllocPlain(tc, n, align, zeroed, slice_run);
  } else {
    size_t usable = 0;
    p = AllocSampledBlock(n, align, zeroed, &usable, slice_run);
    if (p != nullptr) {
      profiler::RecordAlloc(p, n, usable, align > kMinAlign ? align : 0, d.points, 0, 1);
      profiler::SafePoint();
    }
  }
  if (p == nullptr) errno = ENOMEM;
  return p;
}

// Brings tc in line with the profiler's current session, if it changed.
ASSAY_INLINE void SyncProfiler(ThreadCache* tc) {
  if (ASSAY_UNLIKELY(tc->countdown.epoch != profiler::Epoch())) {
    profiler::SyncCountdown(&tc->countdown);
  }
}

// Runs tc's countdown over n bytes allocated outside AllocAccounted's path;
// the decision (record false: no sample point in them, or not recording).
profiler::SampleDecision CountAllocated(ThreadCache* tc, size_t n) {
  SyncProfiler(tc);
  if (CountdownConsume(&tc->countdown, n)) return {0, false};
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

// ASSAY_DEBUG: the debug heap serves every block (or, with `guard` alone,
// the blocks of a page or more); the profiler still samples them (its entry
// is keyed by the pointer the program sees).
ASSAY_NOINLINE void* DebugAlloc(ThreadCache* tc, size_t n, size_t align, bool guarded_only) {
  void* p = guarded_only ? debug::AllocGuarded(n, align) : debug::Alloc(n, align);
  if (p == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  if (tc == nullptr) return p;
  const profiler::SampleDecision d = CountAllocated(tc, n);
  if (d.record &&
      profiler::RecordAlloc(p, n, n, align > kMinAlign ? align : 0, d.points, 0, 1) != nullptr) {
    debug::MarkProfiled(p);
    profiler::SafePoint();
  }
  return p;
}

// ---- guard=N alone: guard points on the fast path's countdown ----
//
// The fast path counts down C = min(P, G): P is the profiler's countdown, G
// the guard sampler's (bytes to the next guard point). Between slow paths,
// tc->prof_over = P - C and tc->guard_over = G - C. A slow path splits C
// back into P (in countdown.left, where the profiler reads and moves it) and
// G, then joins them again. A session start or stop that resets the countdown
// from another thread makes the next slow path redraw P (its epoch changed)
// and shifts G by a little: harmless for a sampler.

ASSAY_TLS bool tls_guard_started = false;

ASSAY_INLINE int64_t SplitCountdown(ThreadCache* tc) {
  const int64_t c = CountdownLeftAfter(&tc->countdown, 0);
  CountdownSet(&tc->countdown, c + tc->prof_over);
  int64_t g = c + tc->guard_over;
  tc->prof_over = tc->guard_over = 0;
  if (ASSAY_UNLIKELY(!tls_guard_started)) {
    tls_guard_started = true;
    g = debug::DrawGuardGap() - 1;
  }
  return g;
}

ASSAY_INLINE void JoinCountdown(ThreadCache* tc, int64_t g) {
  const int64_t p = CountdownLeftAfter(&tc->countdown, 0);
  const int64_t c = p < g ? p : g;
  tc->prof_over = p - c;
  tc->guard_over = g - c;
  CountdownSet(&tc->countdown, c);
}

ASSAY_NOINLINE void* GuardSampledAlloc(ThreadCache* tc, size_t n, size_t align, bool* zeroed) {
  int64_t g = SplitCountdown(tc);
  SyncProfiler(tc);
  bool guard;
  if (n <= kMaxTableSize) {
    // A guard point lies in the block iff g < n; the distance to the next one
    // after the block is then a fresh draw (geometric gaps are memoryless).
    guard = g < 0 || static_cast<uint64_t>(g) < n;
    g = guard ? debug::DrawGuardGap() - 1 : g - static_cast<int64_t>(n);
  } else {
    guard = debug::GuardOneInN();  // never on the fast path: counted one by one
  }
  if (debug::g_guard_all_big && (n >= kPageSize || align >= kPageSize)) guard = true;
  void* p;
  if (guard) {
    // countdown.left holds P while split: DebugAlloc runs the profiler's countdown on it.
    p = DebugAlloc(tc, n, align, /*guarded_only=*/true);
    *zeroed = false;
  } else {
    p = AllocCounted(tc, n, align, zeroed);
  }
  JoinCountdown(tc, g);
  return p;
}

void* AllocAccounted(size_t n, size_t align, bool* zeroed) {
  ThreadCache* tc = thread_cache::Current();
  if (ASSAY_UNLIKELY(debug::g_on)) {
    *zeroed = false;
    return DebugAlloc(tc, n, align, /*guarded_only=*/false);
  }
  if (ASSAY_UNLIKELY(debug::g_guard)) {
    if (debug::g_guard_sampling && tc != nullptr) return GuardSampledAlloc(tc, n, align, zeroed);
    if (debug::g_guard_all_big && (n >= kPageSize || align >= kPageSize)) {
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

[[noreturn]] void ReportInvalidFree(const void* p) { heap::ReportInvalid("free", p); }

}  // namespace

// ---- Slow paths of the fast paths in thread_cache.h ----

void* MallocSlow(size_t n) {
  // Above the fast path's lookup table but still small (1 KiB - 256 KiB):
  // the same pop, the class by formula, without AllocAccounted's routing.
  // The debug heap and guards decide every such block themselves.
  if (n - (kMaxTableSize + 1) < kMaxSmallSize - kMaxTableSize && !debug::g_on && !debug::g_guard) {
    void* p = TryPop(tls_cache, ClassOfLarge(n), n);
    if (ASSAY_LIKELY(p != nullptr)) return p;
  }
  bool zeroed;
  return AllocAccounted(n, 0, &zeroed);
}

void FreeSlow(void* p) {
  if (p == nullptr) return;
  if (ASSAY_UNLIKELY(debug::g_on)) return debug::Free(p);
  const Location loc = Locate(p);
  switch (loc.home) {
    case Home::kSmall: {
      ThreadCache* tc = thread_cache::Current();
      if (tc == nullptr) {
        *static_cast<void**>(p) = nullptr;
        central::Give(loc.cls, p, 1);
      } else {
        FreeList& l = tc->lists[loc.cls];
        if (l.count < l.max) {
          *static_cast<void**>(p) = l.head;
          l.head = p;
          l.count++;
          return;
        }
        thread_cache::PushOverflow(tc, loc.cls, p);
      }
      if (page_heap::HasDirty()) purger::OnFreed();
      return;
    }
    case Home::kSampled:
      // The entry goes before the memory can be handed out again.
      profiler::OnSampledFree(p);
      *static_cast<void**>(p) = nullptr;
      central::Give(loc.cls, p, 1, central::kSampled);
      profiler::SafePoint();
      return;
    case Home::kLarge:
      if (loc.sampled) profiler::OnSampledFree(p);
      page_heap::FreeSpan(loc.span);
      purger::OnFreed();
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

namespace heap {

void ReportInvalid(const char* what, const void* p) {
  char buf[96];
  char* out = buf;
  const char* prefix = "assay: invalid ";
  for (const char* s = prefix; *s != '\0'; ++s) *out++ = *s;
  for (const char* s = what; *s != '\0' && out < buf + 40; ++s) *out++ = *s;
  for (const char* s = " of 0x"; *s != '\0'; ++s) *out++ = *s;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  bool started = false;
  for (int shift = 60; shift >= 0; shift -= 4) {
    const unsigned digit = (a >> shift) & 0xf;
    if (digit != 0 || started || shift == 0) {
      *out++ = "0123456789abcdef"[digit];
      started = true;
    }
  }
  const char* suffix = " (not a block assay returned, or already freed)\n";
  for (const char* s = suffix; *s != '\0'; ++s) *out++ = *s;
  os::WriteStderr(buf, static_cast<size_t>(out - buf));
  os::Abort();
}

void* Calloc(size_t count, size_t size) {
  size_t total;
  if (ASSAY_UNLIKELY(__builtin_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return nullptr;
  }
  if (ASSAY_LIKELY(total <= kMaxSmallSize)) {
    void* p = Malloc(total);
    if (ASSAY_LIKELY(p != nullptr)) memset(p, 0, total);
    return p;
  }
  bool zeroed;
  void* p = AllocAccounted(total, 0, &zeroed);
  if (p != nullptr && !zeroed) memset(p, 0, total);
  return p;
}

void* AlignedAlloc(size_t align, size_t n) {
  // Every class is 16-aligned but the 8-byte one, which is 8-aligned.
  if (align <= kMinAlign) return Malloc(n < align ? align : n);
  bool zeroed;
  return AllocAccounted(n, align, &zeroed);
}

size_t UsableSize(const void* p) {
  if (ASSAY_UNLIKELY(debug::g_on)) return debug::UsableSize(p);
  const Location loc = Locate(p);
  if (loc.home == Home::kInvalid) {
    size_t size;
    if (debug::g_guard && debug::MappedSize(p, &size)) return size;
    ReportInvalid("malloc_usable_size", p);
  }
  return UsableOf(loc, p);
}

namespace {

// Whether realloc to n leaves a block of `size` usable bytes where it is: n
// fits and fills more than half of it (a block of 32 bytes or less always
// stays). n == 0 fails `n - 1 < size`. Bitwise, for Realloc's fast path.
ASSAY_INLINE bool StaysInPlace(size_t size, size_t n) {
  return (n - 1 < size) & ((n > size / 2) | (size <= 32));
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
      if (loc.sampled) break;
      if (n > kSliceSize && n <= kMaxLargeSize) {
        const size_t slices = AlignUp(n, kSliceSize) >> kSliceShift;
        if (page_heap::ResizeLargeInPlace(loc.span, slices)) {
          loc.span->aux = n;
          if (slices * kSliceSize < old) purger::OnFreed();
          return p;
        }
      } else if (StaysInPlace(old, n)) {
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
ASSAY_NOINLINE void* ReallocNotSmall(void* p, size_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  Segment* seg = SegmentOf(a);
  const uint32_t first = seg->slice_map[SliceOf(a)].first;
  const uint32_t offset = static_cast<uint32_t>(a - seg->Base() - first * kSliceSize);
  Span& span = seg->spans[first];
  if (span.kind == SpanKind::kSampled && span.first == first) {
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

void* Realloc(void* p, size_t n) {
  // Fast path: a block of a plain small span whose class still suits n (the
  // common case of a buffer grown a little at a time): the checks of the free
  // fast path, no Location built. n == 0 fails `n - 1 < size` and goes on to
  // free p; a null p is in no segment; the debug heap takes the slow path.
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (ASSAY_LIKELY(segment_map::Contains(a) && !debug::g_on)) {
    Segment* seg = SegmentOf(a);
    SliceEntry e;
    __atomic_load(&seg->slice_map[SliceOf(a)], &e, __ATOMIC_RELAXED);
    const SizeClassInfo& c = kClasses[e.cls];
    const uint32_t offset = static_cast<uint32_t>(a - seg->Base() - e.first * kSliceSize);
    if (ASSAY_LIKELY((e.cls != 0) & IsBlockOffset(c, offset) & StaysInPlace(c.size, n))) {
      return p;
    }
    if (e.cls == 0) return ReallocNotSmall(p, n);
  }
  return ReallocSlow(p, n);
}

namespace {

// Comalloc when a sample point lies in the batch: the countdown walks the
// blocks in order; each block that holds a point is allocated from the
// sampled pools and gets its own entry and batch index. Callbacks wait
// until the whole batch exists.
int ComallocSampled(ThreadCache* tc, size_t n, const size_t* sizes, void** out) {
  for (size_t i = 0; i < n; ++i) {
    const size_t size = sizes[i];
    bool zeroed;
    void* p = nullptr;
    if (CountdownConsume(&tc->countdown, size)) {
      p = AllocPlain(tc, size, 0, &zeroed);
    } else {
      const profiler::SampleDecision d = profiler::OnSamplePoint(&tc->countdown, size);
      if (!d.record) {
        p = AllocPlain(tc, size, 0, &zeroed);
      } else {
        size_t usable = 0;
        p = AllocSampledBlock(size, 0, &zeroed, &usable);
        if (p != nullptr) {
          profiler::RecordAlloc(p, size, usable, 0, d.points, static_cast<uint32_t>(i),
                                static_cast<uint32_t>(n));
        }
      }
    }
    if (ASSAY_UNLIKELY(p == nullptr)) {
      while (i-- > 0) {
        void* block = out[i];
        out[i] = *static_cast<void**>(block);
        profiler::CancelAlloc(block);  // no callback for a batch that never existed
        ReleaseBlock(block);
      }
      profiler::SafePoint();
      return ENOMEM;
    }
    *static_cast<void**>(p) = out[i];
    out[i] = p;
  }
  profiler::SafePoint();
  return 0;
}

}  // namespace

// Comalloc in the debug heap: block by block, out[] saved aside so that a
// failure leaves it as it was.
int ComallocDebug(size_t n, const size_t* sizes, void** out) {
  void** saved = static_cast<void**>(Malloc(n * sizeof(void*) + 1));
  if (saved == nullptr) return ENOMEM;
  memcpy(saved, out, n * sizeof(void*));
  for (size_t i = 0; i < n; ++i) {
    out[i] = Malloc(sizes[i]);
    if (out[i] == nullptr) {
      for (size_t j = 0; j < i; ++j) Free(out[j]);
      memcpy(out, saved, n * sizeof(void*));
      Free(saved);
      return ENOMEM;
    }
  }
  Free(saved);
  return 0;
}

int Comalloc(size_t n, const size_t* sizes, void** out) {
  ThreadCache* tc = thread_cache::Current();
  if (ASSAY_UNLIKELY(debug::g_on || debug::g_guard)) return ComallocDebug(n, sizes, out);
  // One countdown step for the whole batch when no sample point lies in it.
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    total = total + sizes[i] < total ? SIZE_MAX : total + sizes[i];  // saturating
  }
  if (tc != nullptr) {
    SyncProfiler(tc);
    const size_t counted = total > (size_t{1} << 62) ? size_t{1} << 62 : total;
    if (ASSAY_UNLIKELY(!CountdownConsume(&tc->countdown, counted))) {
      return ComallocSampled(tc, n, sizes, out);
    }
  }
  // Each block keeps the caller's old out[i] in its first word until the
  // whole batch exists, so a failure can put `out` back as it was without
  // scratch memory.
  for (size_t i = 0; i < n; ++i) {
    const size_t size = sizes[i];
    void* p;
    FreeList* l;
    if (ASSAY_LIKELY(size <= kMaxTableSize && tc != nullptr &&
                     (p = (l = &tc->lists[kSmallLookup[(size + 7) >> 3]])->head) != nullptr)) {
      l->head = *static_cast<void**>(p);
      l->count--;
    } else {
      bool zeroed;
      p = AllocPlain(tc, size, 0, &zeroed);
      if (ASSAY_UNLIKELY(p == nullptr)) {
        while (i-- > 0) {
          void* block = out[i];
          out[i] = *static_cast<void**>(block);
          Free(block);
        }
        return ENOMEM;
      }
    }
    *static_cast<void**>(p) = out[i];
    out[i] = p;
  }
  return 0;
}

void BulkFree(void** ptrs, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (ptrs[i] != nullptr) Free(ptrs[i]);
    ptrs[i] = nullptr;
  }
}

size_t Trim() {
  if (tls_cache != &g_empty_cache) thread_cache::FlushAll(tls_cache);
  central::Drain(/*idle_only=*/false);
  const uint64_t now = os::NowMs();
  return page_heap::Purge(now, 0, /*wait=*/true) + huge::Release(now, 0);
}

}  // namespace heap
}  // namespace assay::internal

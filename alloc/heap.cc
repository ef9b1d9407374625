// The allocator's slow paths and compound operations (heap.h).
#include "alloc/heap.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "alloc/central.h"
#include "alloc/huge.h"
#include "alloc/meta.h"
#include "alloc/options.h"
#include "alloc/os.h"
#include "alloc/page_heap.h"
#include "alloc/purger.h"
#include "alloc/thread_cache.h"

namespace assay::internal {
namespace {

// ---- Where a pointer lives ----

enum class Home { kSmall, kLarge, kHuge, kInvalid };

struct Location {
  Home home;
  size_t cls;   // kSmall
  Span* span;   // kLarge
};

Location Locate(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (segment_map::Contains(a)) {
    Segment* seg = SegmentOf(a);
    SliceEntry e;
    __atomic_load(&seg->slice_map[SliceOf(a)], &e, __ATOMIC_RELAXED);
    if (e.cls != 0) {
      const uint32_t offset = static_cast<uint32_t>(a - seg->Base() - e.first * kSliceSize);
      if (IsBlockOffset(kClasses[e.cls], offset)) return {Home::kSmall, e.cls, nullptr};
      return {Home::kInvalid, 0, nullptr};
    }
    Span* span = &seg->spans[e.first];
    if (span->kind == SpanKind::kLarge && SpanStart(span) == p) return {Home::kLarge, 0, span};
    return {Home::kInvalid, 0, nullptr};
  }
  if (p != nullptr && huge::UsableSize(p) != 0) return {Home::kHuge, 0, nullptr};
  return {Home::kInvalid, 0, nullptr};
}

// ---- Allocation without sampling accounting ----

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

// The profiler's entry point: the block p of n bytes holds a sample point.
// Until the profiler is attached, sampling stays off.
ASSAY_NOINLINE void OnSamplePoint(ThreadCache* tc, void* p, size_t n) {
  (void)p;
  (void)n;
  tc->sample_left = kSampleNever;
}

// Counts n bytes toward the next sample point of the calling thread.
ASSAY_INLINE void Account(ThreadCache* tc, void* p, size_t n) {
  if (tc == nullptr) return;
  tc->sample_left -= static_cast<int64_t>(n);
  if (ASSAY_UNLIKELY(tc->sample_left < 0)) OnSamplePoint(tc, p, n);
}

void* AllocAccounted(size_t n, size_t align, bool* zeroed) {
  ThreadCache* tc = thread_cache::Current();
  void* p;
  *zeroed = false;
  if (n <= kMaxSmallSize && align <= kMinAlign) {
    p = AllocSmall(tc, ClassOfSize(n));
  } else if (n <= kMaxSmallSize && align <= kSliceSize) {
    // A class whose size is a multiple of align: its blocks are aligned, as
    // spans start on a slice boundary. Power-of-two classes end the search.
    size_t cls = ClassOfSize(n);
    while (kClasses[cls].size % align != 0) ++cls;
    p = AllocSmall(tc, cls);
  } else {
    p = AllocBig(n, align, zeroed);
  }
  if (ASSAY_UNLIKELY(p == nullptr)) {
    errno = ENOMEM;
    return nullptr;
  }
  Account(tc, p, n);
  return p;
}

// ---- Initialisation and fork ----

enum : uint32_t { kUninitialised = 0, kInitialising, kReady };
constinit uint32_t g_init_state = kUninitialised;
constinit uint64_t g_init_thread = 0;

void ForkPrepare() {
  thread_cache::LockForFork();
  central::LockForFork();
  page_heap::LockForFork();
  huge::LockForFork();
  meta::LockForFork();
}

void ForkParent() {
  meta::UnlockAfterFork(false);
  huge::UnlockAfterFork(false);
  page_heap::UnlockAfterFork(false);
  central::UnlockAfterFork(false);
  thread_cache::UnlockAfterFork(false);
}

void ForkChild() {
  meta::UnlockAfterFork(true);
  huge::UnlockAfterFork(true);
  page_heap::UnlockAfterFork(true);
  central::UnlockAfterFork(true);
  thread_cache::UnlockAfterFork(true);
  purger::AfterForkChild();
}

[[noreturn]] void ReportInvalidFree(const void* p) { heap::ReportInvalid("free", p); }

}  // namespace

// ---- Slow paths of the fast paths in thread_cache.h ----

void* MallocSlow(size_t n) {
  bool zeroed;
  return AllocAccounted(n, 0, &zeroed);
}

void FreeSlow(void* p) {
  if (p == nullptr) return;
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
    case Home::kLarge:
      page_heap::FreeSpan(loc.span);
      purger::OnFreed();
      return;
    case Home::kHuge:
      if (huge::Free(p)) {
        purger::OnFreed();
        return;
      }
      break;  // freed by another thread meanwhile: a double free
    case Home::kInvalid:
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

void EnsureInit() {
  if (ASSAY_LIKELY(__atomic_load_n(&g_init_state, __ATOMIC_ACQUIRE) == kReady)) return;
  uint32_t expected = kUninitialised;
  if (__atomic_compare_exchange_n(&g_init_state, &expected, kInitialising, false,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    g_init_thread = os::ThreadId();
    InitOptions(os::GetEnv("ASSAY_OPTIONS"));
    thread_cache::InitKey();
    __atomic_store_n(&g_init_state, kReady, __ATOMIC_RELEASE);
    // May allocate: the state is kReady, so that allocation proceeds.
    pthread_atfork(ForkPrepare, ForkParent, ForkChild);
    return;
  }
  while (__atomic_load_n(&g_init_state, __ATOMIC_ACQUIRE) != kReady) {
    if (g_init_thread == os::ThreadId()) return;  // re-entered from our own initialisation
    os::Yield();
  }
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
  const Location loc = Locate(p);
  switch (loc.home) {
    case Home::kSmall:
      return kClasses[loc.cls].size;
    case Home::kLarge:
      return loc.span->slices * kSliceSize;
    case Home::kHuge:
      return huge::UsableSize(p);
    case Home::kInvalid:
      break;
  }
  ReportInvalid("malloc_usable_size", p);
}

void* Realloc(void* p, size_t n) {
  if (p == nullptr) return Malloc(n);
  if (n == 0) {  // as glibc: frees p and returns NULL
    Free(p);
    return nullptr;
  }
  const Location loc = Locate(p);
  size_t old = 0;
  switch (loc.home) {
    case Home::kSmall:
      old = kClasses[loc.cls].size;
      if (n <= old && (n > old / 2 || old <= 32)) return p;
      break;
    case Home::kLarge:
      old = loc.span->slices * kSliceSize;
      if (n > kMaxSmallSize && n <= kMaxLargeSize) {
        const size_t slices = AlignUp(n, kSliceSize) >> kSliceShift;
        if (page_heap::ResizeLargeInPlace(loc.span, slices)) {
          loc.span->aux = n;
          if (slices * kSliceSize < old) purger::OnFreed();
          return p;
        }
      } else if (n <= old && n > old / 2) {
        return p;
      }
      break;
    case Home::kHuge:
      old = huge::UsableSize(p);
      if (n > kMaxLargeSize) {
        void* q = huge::Resize(p, n);
        if (q == nullptr) errno = ENOMEM;
        return q;
      }
      break;
    case Home::kInvalid:
      ReportInvalid("realloc", p);
  }
  void* q = Malloc(n);
  if (q == nullptr) return nullptr;
  memcpy(q, p, n < old ? n : old);
  Free(p);
  return q;
}

int Comalloc(size_t n, const size_t* sizes, void** out) {
  ThreadCache* tc = thread_cache::Current();
  // Each block keeps the caller's old out[i] in its first word until the
  // whole batch exists, so a failure can put `out` back as it was without
  // scratch memory.
  size_t total = 0;
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
      p = size <= kMaxSmallSize ? AllocSmall(tc, ClassOfSize(size)) : AllocBig(size, 0, &zeroed);
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
    total += size;
  }
  // One countdown step for the whole batch (the profiler walks the batch
  // from its sample points).
  if (n > 0) Account(tc, out[0], total);
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

void GetStats(assay_stats* out) {
  *out = assay_stats{};
  size_t small_live = 0;    // bytes of blocks out of the central lists
  size_t small_spans = 0;   // bytes of small spans
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const central::ClassStats s = central::GetClassStats(cls);
    small_live += (s.blocks_out - s.transfer_blocks) * kClasses[cls].size;
    small_spans += s.spans * kClasses[cls].span_slices * kSliceSize;
  }
  out->thread_cached = thread_cache::CachedBytes(&out->threads);
  const page_heap::Stats ph = page_heap::GetStats();
  const huge::Stats hs = huge::GetStats();
  const size_t user_small = small_live > out->thread_cached ? small_live - out->thread_cached : 0;
  out->allocated = user_small + ph.large_bytes + hs.mapped;
  out->central_cached = small_spans - small_live;
  out->segment_mapped = ph.mapped;
  out->huge_mapped = hs.mapped;
  out->huge_cached = hs.cached;
  out->free_dirty = ph.dirty;
  out->purged_total = ph.purged_total;
  out->unmapped_total = ph.unmapped_total + hs.unmapped_total;
  out->metadata = meta::MappedBytes() + hs.table_bytes + ph.segments * AlignUp(sizeof(Segment), kPageSize);
  out->segments = ph.segments;
  out->huge_blocks = hs.blocks;
}

}  // namespace heap
}  // namespace assay::internal

// The slice-run cache (large_cache.h): per thread, kSlots recently freed
// large spans, found by exact slice count. The owner puts with a plain
// release store and takes with one exchange; the purger, trim and the fork
// child take runs out of any thread's slots with a compare-and-swap, under
// the registry lock. Only the owner ever stores a run into a slot, so a
// slot the owner finds empty stays empty until the owner fills it.
#include "alloc/large_cache.h"

#include "alloc/page_heap.h"
#include "alloc/purger.h"
#include "alloc/registry.h"
#include "alloc/thread_cache.h"
#include "base/assert.h"
#include "base/lock.h"
#include "base/options.h"
#include "base/os.h"

namespace assay::internal::large_cache {
namespace {

// Four runs of at most 4 MiB in all per thread: the most recent sizes of a
// thread that frees and reallocates slice runs (one 2 MiB - 1 block, or a
// few of 256 KiB - 1 MiB), little enough that the runs kept out of the page
// heap's first fit cost no peak RSS worth measuring (bigalloc, server).
constexpr size_t kSlots = 4;
constexpr size_t kMaxSlices = (size_t{4} << 20) / kSliceSize;

// Invariant (AssertValid): a non-null span[i] is a kLarge span with
// cached == 1, sampled == 0, span[i]->slices == slices[i], held by no other
// slot; stamp[i] is the purger clock when it was put.
struct Cache {
  Span* span[kSlots];      // the owner stores (release); owner and reclaimers exchange
  uint64_t stamp[kSlots];  // g_clock_ms at the put (relaxed: only ages it)
  uint8_t slices[kSlots];  // of span[i]; written by the owner only, before span[i]
  Cache* next;             // registry: live list (doubly linked) or spare list
  Cache* prev;
};

// Its lock is taken before the page heap's, never after it.
constinit Registry<Cache> g_registry;
// The purger's clock (ms), advanced by each Reclaim: a put is stamped with
// it, so free reads no clock.
constinit uint64_t g_clock_ms = 0;

ASSAY_TLS Cache* tls_large = nullptr;

Cache* Create() {
  // A thread without a thread cache (exiting) caches nothing: its exit hook
  // (thread_cache.cc) is what gives the runs back.
  if (thread_cache::Current() == nullptr) return nullptr;
  Cache* c = g_registry.TakeSpareOrAlloc();
  if (c == nullptr) return nullptr;
  *c = Cache{};
  if (__atomic_load_n(&g_clock_ms, __ATOMIC_RELAXED) == 0) {
    __atomic_store_n(&g_clock_ms, os::NowMs(), __ATOMIC_RELAXED);
  }
  g_registry.Link(c);
  tls_large = c;
  return c;
}

// The run now owned by the caller goes back to the page heap.
void GiveBack(Span* s) {
  s->cached = 0;
  page_heap::FreeSpan(s);
}

// Takes every run out of c (another thread's included: CAS), into the page heap.
size_t Empty(Cache* c, uint64_t now_ms, uint64_t age_ms) {
  size_t bytes = 0;
  for (size_t i = 0; i < kSlots; ++i) {
    Span* s = __atomic_load_n(&c->span[i], __ATOMIC_ACQUIRE);
    if (s == nullptr) continue;
    if (age_ms != 0 && now_ms - __atomic_load_n(&c->stamp[i], __ATOMIC_RELAXED) < age_ms) continue;
    if (!__atomic_compare_exchange_n(&c->span[i], &s, nullptr, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED)) {
      continue;  // its owner took it meanwhile
    }
    bytes += s->slices * kSliceSize;
    GiveBack(s);
  }
  return bytes;
}

}  // namespace

Span* Take(size_t slices) {
  Cache* c = tls_large;
  if (c == nullptr) return nullptr;
  for (size_t i = 0; i < kSlots; ++i) {
    if (c->slices[i] != slices || __atomic_load_n(&c->span[i], __ATOMIC_RELAXED) == nullptr) {
      continue;
    }
    // The exchange, not a plain load: the purger may be taking it too.
    Span* s = __atomic_exchange_n(&c->span[i], nullptr, __ATOMIC_ACQUIRE);
    if (s != nullptr) {
      s->cached = 0;
      return s;
    }
  }
  // A miss: the sizes changed. The cached runs go back to the page heap so
  // that its first fit can place this request in them (as if they had never
  // been cached) rather than in fresh slices: kept aside, they pushed new
  // runs further on, where they stood in the way of in-place growth
  // (strbuild: +3.7% instructions, all of it memcpy).
  for (size_t i = 0; i < kSlots; ++i) {
    if (__atomic_load_n(&c->span[i], __ATOMIC_RELAXED) == nullptr) continue;
    if (Span* s = __atomic_exchange_n(&c->span[i], nullptr, __ATOMIC_ACQUIRE)) GiveBack(s);
  }
  return nullptr;
}

bool Put(Span* span) {
  const size_t n = span->slices;
  // Only blocks above the size classes (see AllocBig): aux is the request.
  if (n > kMaxSlices || span->aux <= kMaxSmallSize) return false;
  Cache* c = tls_large;
  if (ASSAY_UNLIKELY(c == nullptr)) {
    if (GetOptions().decay_ms == 0) return false;  // freed pages go to the OS at once
    c = Create();
    if (c == nullptr) return false;
  }
  size_t total = n;
  size_t slot = kSlots;
  for (size_t i = 0; i < kSlots; ++i) {
    if (__atomic_load_n(&c->span[i], __ATOMIC_RELAXED) != nullptr) {
      total += c->slices[i];
    } else if (slot == kSlots) {
      slot = i;
    }
  }
  // Full, by slots or bytes: the oldest runs go back to the page heap.
  while (slot == kSlots || total > kMaxSlices) {
    size_t oldest = kSlots;
    for (size_t i = 0; i < kSlots; ++i) {
      if (__atomic_load_n(&c->span[i], __ATOMIC_RELAXED) == nullptr) continue;
      if (oldest == kSlots || c->stamp[i] < c->stamp[oldest]) oldest = i;
    }
    if (oldest == kSlots) break;  // the purger emptied them meanwhile
    Span* s = __atomic_exchange_n(&c->span[oldest], nullptr, __ATOMIC_ACQUIRE);
    if (s != nullptr) {
      total -= c->slices[oldest];
      GiveBack(s);
    }
    if (slot == kSlots) slot = oldest;
  }
  span->cached = 1;
  span->sampled = 0;
  c->slices[slot] = static_cast<uint8_t>(n);
  __atomic_store_n(&c->stamp[slot], __atomic_load_n(&g_clock_ms, __ATOMIC_RELAXED),
                   __ATOMIC_RELAXED);
  __atomic_store_n(&c->span[slot], span, __ATOMIC_RELEASE);
  purger::OnCached();
  return true;
}

bool ReleaseFollowing(const Span* span, size_t slices) {
  Cache* c = tls_large;
  if (c == nullptr) return false;
  // Runs' Spans sit in their segment's header at their first slice: the
  // ones that matter lie in (span, span + slices].
  const uintptr_t base = reinterpret_cast<uintptr_t>(span);
  const uintptr_t lo = base + span->slices * sizeof(Span);
  const uintptr_t hi = base + slices * sizeof(Span);
  bool released = false;
  for (size_t i = 0; i < kSlots; ++i) {
    const uintptr_t s = reinterpret_cast<uintptr_t>(__atomic_load_n(&c->span[i], __ATOMIC_RELAXED));
    if (s < lo || s >= hi) continue;
    if (Span* mine = __atomic_exchange_n(&c->span[i], nullptr, __ATOMIC_ACQUIRE)) {
      GiveBack(mine);
      released = true;
    }
  }
  return released;
}

size_t Reclaim(uint64_t now_ms, uint64_t age_ms) {
  if (now_ms > __atomic_load_n(&g_clock_ms, __ATOMIC_RELAXED)) {
    __atomic_store_n(&g_clock_ms, now_ms, __ATOMIC_RELAXED);
  }
  if (g_registry.Count() == 0) return 0;
  LockGuard lock(g_registry.mu);
  size_t bytes = 0;
  for (Cache* c = g_registry.live; c != nullptr; c = c->next) bytes += Empty(c, now_ms, age_ms);
  return bytes;
}

ASSAY_FIRST_USE bool HasCached() {
  if (g_registry.Count() == 0) return false;
  LockGuard lock(g_registry.mu);
  for (Cache* c = g_registry.live; c != nullptr; c = c->next) {
    for (size_t i = 0; i < kSlots; ++i) {
      if (__atomic_load_n(&c->span[i], __ATOMIC_ACQUIRE) != nullptr) return true;
    }
  }
  return false;
}

size_t CachedBytes() {
  if (g_registry.Count() == 0) return 0;
  LockGuard lock(g_registry.mu);
  size_t bytes = 0;
  for (Cache* c = g_registry.live; c != nullptr; c = c->next) {
    for (size_t i = 0; i < kSlots; ++i) {
      if (__atomic_load_n(&c->span[i], __ATOMIC_ACQUIRE) != nullptr) {
        bytes += c->slices[i] * kSliceSize;
      }
    }
  }
  return bytes;
}

void OnThreadExit() {
  Cache* c = tls_large;
  if (c == nullptr) return;
  tls_large = nullptr;
  LockGuard lock(g_registry.mu);
  Empty(c, 0, 0);
  g_registry.UnlinkLocked(c);
}

void AssertValid() {
  LockGuard lock(g_registry.mu);
  for (Cache* c = g_registry.live; c != nullptr; c = c->next) {
    ASSAY_CHECK(c->prev == nullptr || c->prev->next == c);
    for (size_t i = 0; i < kSlots; ++i) {
      const Span* s = __atomic_load_n(&c->span[i], __ATOMIC_ACQUIRE);
      if (s == nullptr) continue;
      ASSAY_CHECK(s->kind == SpanKind::kLarge && s->cached == 1 && s->sampled == 0);
      ASSAY_CHECK(s->slices == c->slices[i] && SegmentOfSpan(s)->spans[s->first].cached == 1);
      for (size_t j = 0; j < i; ++j)
        ASSAY_CHECK(__atomic_load_n(&c->span[j], __ATOMIC_ACQUIRE) != s);
    }
  }
}

void LockForFork() { g_registry.mu.Lock(); }

void UnlockAfterFork(bool child) {
  if (!child) {
    g_registry.mu.Unlock();
    return;
  }
  g_registry.mu.ResetAfterFork();
  // Only this thread lives on: the other threads' runs go back to the page
  // heap (unlocked again: its child handler ran before this one) and their
  // structs to the spare list.
  LockGuard lock(g_registry.mu);
  for (Cache* c = g_registry.live; c != nullptr;) {
    Cache* next = c->next;
    if (c != tls_large) {
      Empty(c, 0, 0);
      g_registry.UnlinkLocked(c);
    }
    c = next;
  }
}

}  // namespace assay::internal::large_cache

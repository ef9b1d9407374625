// Profiler arena (arena.h): power-of-two size classes from 32 B to 1 MiB,
// each with a free list, over the allocator's metadata bump allocator. The
// small classes (entries, events: one per sample) also have a per-thread
// cache, so that a sample's entry costs no lock (audit mode takes one per
// allocation).
#include "profiler/arena.h"

#include <bit>
#include <cstring>

#include "base/lock.h"
#include "base/meta.h"
#include "base/os.h"

namespace assay::profiler::arena {
namespace {

using internal::LockGuard;
using internal::Mutex;

constexpr size_t kMaxShift = 20;  // 1 MiB
constexpr size_t kClasses = kMaxShift - kMinShift + 1;

struct State {
  Mutex mu;
  FreeBlock* free[kClasses] = {};
  size_t footprint = 0;  // relaxed atomics
  // Relaxed atomics; blocks in thread caches count as in use: the count moves
  // when blocks enter or leave the shared lists, so that a sample's entry
  // touches no cache line shared with other threads.
  size_t in_use = 0;
};
constinit State g;

constexpr uint32_t kRefill = 16;  // blocks moved per lock taken

void Count(size_t* c, ptrdiff_t d) {
  __atomic_fetch_add(c, static_cast<size_t>(d), __ATOMIC_RELAXED);
}

// Moves up to n blocks of class cls from the thread cache to the shared list.
void GiveBack(ThreadCache& tc, size_t cls, uint32_t n) {
  LockGuard lock(g.mu);
  ptrdiff_t moved = 0;
  while (n-- > 0 && tc.head[cls] != nullptr) {
    FreeBlock* b = tc.head[cls];
    tc.head[cls] = b->next;
    tc.count[cls]--;
    b->next = g.free[cls];
    g.free[cls] = b;
    moved++;
  }
  Count(&g.in_use, -moved * static_cast<ptrdiff_t>(size_t{1} << (cls + kMinShift)));
}

// Alloc and AllocUninit: `zero` says whether a recycled block is cleared
// (fresh metadata pages are zero already).
void* Get(size_t size, bool zero) {
  const size_t cls = ClassOf(size);
  if (cls >= kClasses) {  // very large: straight from the OS
    const size_t bytes = internal::AlignUp(size, internal::kPageSize);
    void* p = internal::os::MapAligned(bytes, internal::kPageSize);
    if (p != nullptr) {
      Count(&g.footprint, static_cast<ptrdiff_t>(bytes));
      Count(&g.in_use, static_cast<ptrdiff_t>(bytes));
    }
    return p;
  }
  const size_t bytes = size_t{1} << (cls + kMinShift);
  ThreadCache& tc = tls_arena;
  const bool cached = cls < kCachedClasses && !tc.off;
  void* p = nullptr;
  if (cached && tc.head[cls] == nullptr) {  // refill a batch under one lock
    LockGuard lock(g.mu);
    uint32_t i = 0;
    for (; i < kRefill && g.free[cls] != nullptr; ++i) {
      FreeBlock* b = g.free[cls];
      g.free[cls] = b->next;
      b->next = tc.head[cls];
      tc.head[cls] = b;
      tc.count[cls]++;
    }
    Count(&g.in_use, static_cast<ptrdiff_t>(i * bytes));
  }
  if (cached && tc.head[cls] != nullptr) {
    FreeBlock* b = tc.head[cls];
    tc.head[cls] = b->next;
    tc.count[cls]--;
    p = b;
  } else if (!cached) {
    LockGuard lock(g.mu);
    FreeBlock* b = g.free[cls];
    if (b != nullptr) {
      g.free[cls] = b->next;
      p = b;
      Count(&g.in_use, static_cast<ptrdiff_t>(bytes));
    }
  }
  if (p != nullptr) {
    if (zero) std::memset(p, 0, bytes);
    return p;
  }
  p = internal::meta::Alloc(bytes);  // zeroed by the OS, never handed out before
  if (p != nullptr) {
    Count(&g.footprint, static_cast<ptrdiff_t>(bytes));
    Count(&g.in_use, static_cast<ptrdiff_t>(bytes));
  }
  return p;
}

}  // namespace

__thread ThreadCache tls_arena __attribute__((tls_model("initial-exec")));

void* Alloc(size_t size) { return Get(size, true); }
void* AllocUninitSlow(size_t size) { return Get(size, false); }

void FreeSlow(void* p, size_t size) {
  if (p == nullptr) return;
  const size_t cls = ClassOf(size);
  if (cls >= kClasses) {
    const size_t bytes = internal::AlignUp(size, internal::kPageSize);
    internal::os::Unmap(p, bytes);
    Count(&g.footprint, -static_cast<ptrdiff_t>(bytes));
    Count(&g.in_use, -static_cast<ptrdiff_t>(bytes));
    return;
  }
  FreeBlock* b = static_cast<FreeBlock*>(p);
  ThreadCache& tc = tls_arena;
  if (cls < kCachedClasses && !tc.off) {
    b->next = tc.head[cls];
    tc.head[cls] = b;
    if (++tc.count[cls] > kCacheMax) GiveBack(tc, cls, kCacheMax / 2);
    return;
  }
  Count(&g.in_use, -static_cast<ptrdiff_t>(size_t{1} << (cls + kMinShift)));
  LockGuard lock(g.mu);
  b->next = g.free[cls];
  g.free[cls] = b;
}

void FlushThread() {
  ThreadCache& tc = tls_arena;
  for (size_t cls = 0; cls < kCachedClasses; ++cls) GiveBack(tc, cls, UINT32_MAX);
  tc.off = true;
}

size_t FootprintBytes() { return __atomic_load_n(&g.footprint, __ATOMIC_RELAXED); }

size_t InUseBytes() { return __atomic_load_n(&g.in_use, __ATOMIC_RELAXED); }

void LockForFork() { g.mu.Lock(); }
void UnlockAfterFork(bool child) { g.mu.UnlockAfterFork(child); }

}  // namespace assay::profiler::arena

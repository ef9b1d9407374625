// The profiler's own memory: entries, events, stacks and tables. Comes from
// the allocator's metadata pages (never from malloc, so it is never sampled
// and never recurses), recycled through power-of-two free lists, and counted
// as profiler overhead in the statistics.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace assay::profiler::arena {

// Zeroed memory of at least `size` bytes, aligned to 16 (to 64 from 64
// bytes up); nullptr on OOM.
void* Alloc(size_t size);
// Alloc without the zeroing (contents unspecified), for a caller that writes
// every field: an entry is 128 bytes, its class.
inline void* AllocUninit(size_t size);
// Gives back memory from Alloc(size) with the same size.
inline void Free(void* p, size_t size);
// Gives the calling thread's cached blocks back; the thread's later calls use
// the shared lists (called when the thread exits).
void FlushThread();
// Bytes obtained from the metadata pages so far (the profiler's footprint).
size_t FootprintBytes();
// Bytes handed out and not given back (blocks in threads' caches count).
size_t InUseBytes();

void LockForFork();
void UnlockAfterFork(bool child);

// ---- The per-thread cache's fast paths (inline: a sample's entry and its
// release cost ~75 instructions in calls, ~15 here) ----

constexpr size_t kMinShift = 5;       // 32 B
constexpr size_t kCachedClasses = 4;  // 32 B .. 256 B
constexpr uint32_t kCacheMax = 64;    // blocks per class per thread

struct FreeBlock {
  FreeBlock* next;
};
struct ThreadCache {
  FreeBlock* head[kCachedClasses];
  uint32_t count[kCachedClasses];
  bool off;  // the thread flushed it at exit: later calls use the lists
};
extern __thread ThreadCache tls_arena __attribute__((tls_model("initial-exec")));

inline size_t ClassOf(size_t size) {
  if (size <= (size_t{1} << kMinShift)) return 0;
  return static_cast<size_t>(std::bit_width(size - 1)) - kMinShift;
}
void* AllocUninitSlow(size_t size);
void FreeSlow(void* p, size_t size);

inline void* AllocUninit(size_t size) {
  const size_t cls = ClassOf(size);
  ThreadCache& tc = tls_arena;
  if (cls < kCachedClasses && tc.head[cls] != nullptr) {  // never set while off
    FreeBlock* b = tc.head[cls];
    tc.head[cls] = b->next;
    tc.count[cls]--;
    return b;
  }
  return AllocUninitSlow(size);
}

inline void Free(void* p, size_t size) {
  const size_t cls = ClassOf(size);
  ThreadCache& tc = tls_arena;
  if (p != nullptr && cls < kCachedClasses && !tc.off && tc.count[cls] < kCacheMax) {
    FreeBlock* b = static_cast<FreeBlock*>(p);
    b->next = tc.head[cls];
    tc.head[cls] = b;
    tc.count[cls]++;
    return;
  }
  FreeSlow(p, size);
}

}  // namespace assay::profiler::arena

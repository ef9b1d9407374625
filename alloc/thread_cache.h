// Per-thread caches and the malloc/free fast paths.
//
// Call graph of the hot path:
//   malloc(n) -> Malloc(n): n <= 1 KiB and the class's list non-empty and the
//                sampling countdown stays >= 0 -> pop.   Else MallocSlow(n),
//                which first tries the same pop for 1 KiB < n <= 256 KiB.
//   free(p)   -> Free(p):   p in a segment, in a small span, at a block
//                start, and the list below its bound -> push. Else FreeSlow(p).
// A thread starts on g_empty_cache (all lists empty, all bounds 0), so its
// first malloc or free takes the slow path, which creates its cache; the fast
// paths never ask "is this initialised?" and never write to g_empty_cache.
// With ASSAY_OPTIONS=harden=1 tls_cache stays on g_empty_cache for good and
// the slow paths use the cache through thread_cache::Current(): the fast
// paths' plain links never touch a hardened list (free_link.h).
// Free also declines a block that heads its list: freed twice in a row,
// FreeSlow reports it (double_free=1, the default).
#pragma once

#include "alloc/free_link.h"
#include "alloc/sample_hooks.h"
#include "alloc/segment.h"
#include "alloc/size_classes.h"

struct AssayLayout;

namespace assay::internal {

// Invariant (AssertFreeListValid, alloc/check.h): count == length(head) <=
// max <= max_cached, and every block is a carved block start of a kSmall
// span of the list's class. max >= batch, except in g_empty_cache and
// lists[0], where everything stays 0.
struct FreeList {
  void* head;      // blocks linked through their first word
  uint32_t count;  // length of the list
  uint32_t max;    // bound on count; grows from `batch` to `max_cached`

  // The fast paths' pop and push, with plain links (the caller checked
  // head != nullptr, or count < max where the bound matters). Only for
  // tls_cache's lists, which are never hardened (free_link.h).
  ASSAY_INLINE void* PopNonEmpty(void* p) {
    head = *static_cast<void**>(p);
    count--;
    return p;
  }
  ASSAY_INLINE void Push(void* p) {
    *static_cast<void**>(p) = head;
    head = p;
    count++;
  }
  // The same off the fast paths, through link:: (safe-linked with harden=1).
  ASSAY_INLINE void* PopLinked(void* p) {
    head = link::Load(p);
    count--;
    return p;
  }
  ASSAY_INLINE void PushLinked(void* p) {
    link::Store(p, head);
    head = p;
    count++;
  }
};

struct ThreadCache {
  // The profiler's countdown (alloc/sample_hooks.h). The fast path
  // subtracts each request; a negative result takes the slow path, which
  // hands the block to the profiler. kSampleNever while profiling is off.
  SampleCountdown countdown;
  // lists[0] (class 0: "no class") stays empty with max 0 in every cache:
  // Free's fast path relies on it to reject slices that are not small spans.
  FreeList lists[kNumClasses];
  // Cold: registry of live caches, guarded by the registry lock.
  ThreadCache* next;
  ThreadCache* prev;
  uint64_t thread_id;
  uint32_t overflows;  // PushOverflow calls: the byte budget is checked on every 8th
  // The sampled pool's magazine, made on the thread's first free of a
  // sampled small block (null until then, and in g_empty_cache); kept with
  // the cache when it is reused.
  struct SampledMagazine* sampled;
};

// Free blocks of kSampled spans per class, so that a sampled small
// allocation and its free take no central lock. Only the slow paths use it
// (links through link::); at most max = SampledMagazineMax(cls) blocks;
// given back at thread exit. Heap walkers see these blocks as free (layout:
// tc_sampled_off, sampled_lists_off).
struct SampledMagazine {
  FreeList lists[kNumClasses];
  // Bit cls set iff lists[cls] is not empty: FlushAll visits only those
  // (larson: ~1 000 thread exits; walking 97 lists each was +0.1%).
  uint64_t nonempty[(kNumClasses + 63) / 64];
  void Mark(size_t cls, bool on) {
    const uint64_t bit = uint64_t{1} << (cls % 64);
    nonempty[cls / 64] = on ? nonempty[cls / 64] | bit : nonempty[cls / 64] & ~bit;
  }
  bool Marked(size_t cls) const { return (nonempty[cls / 64] >> (cls % 64)) & 1; }
};

// Bound of a class's sampled magazine: 16 blocks, and at most 32 KiB (none
// above 32 KiB: a big class's sampled span holds a block or two, and a
// magazine would pin them). Audit mode recycles a thread's own blocks; a
// thread that only frees sampled blocks gives back half when full.
constexpr uint32_t SampledMagazineMax(size_t cls) {
  const uint32_t n = (uint32_t{32} << 10) / kClasses[cls].size;
  return n < 16 ? n : 16;
}

extern ThreadCache g_empty_cache;
extern ASSAY_TLS ThreadCache* tls_cache;
// The thread's cache, or nullptr: equal to tls_cache except with harden=1,
// where tls_cache stays g_empty_cache (free_link.h).
extern ASSAY_TLS ThreadCache* tls_own;

ASSAY_NOINLINE void* MallocSlow(size_t n);
ASSAY_NOINLINE void FreeSlow(void* p);

// The pop of the malloc fast path: a block of class cls for n bytes when
// the list has one and the sampling countdown stays >= 0; else nullptr.
// kLinked: through link:: (the slow paths' copy for harden=1).
template <bool kLinked = false>
ASSAY_INLINE void* TryPop(ThreadCache* tc, size_t cls, size_t n) {
  FreeList& l = tc->lists[cls];
  void* p = l.head;
  const int64_t left = CountdownLeftAfter(&tc->countdown, n);
  if (ASSAY_LIKELY((p != nullptr) & (left >= 0))) {
    CountdownSet(&tc->countdown, left);
    return kLinked ? l.PopLinked(p) : l.PopNonEmpty(p);
  }
  return nullptr;
}

// The push of the free fast path: true when p, a block start in a small
// span, went onto tc's list below its bound. Declines p == head: freed
// again with no malloc between (FreeSlow reports it), a compare and a
// branch on the head the push loads anyway. kLinked as for TryPop.
// tc is read only once p is known to be a small block (a reference, so
// that Free's TLS load stays folded into its use).
template <bool kLinked = false>
ASSAY_INLINE bool TryPush(ThreadCache* const& tc, void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (ASSAY_LIKELY(segment_map::Contains(a))) {
    const DecodedPointer d = Decode(a);
    // A slice outside small spans has cls 0, and lists[0] has max 0 forever,
    // so the bound test sends it to the slow path: no test of cls here.
    FreeList& l = tc->lists[d.e.cls];
    if (ASSAY_LIKELY(IsBlockOffset(kClasses[d.e.cls], d.offset) & (l.count < l.max)) &&
        ASSAY_LIKELY(p != l.head)) {
      if (kLinked) {
        l.PushLinked(p);
      } else {
        l.Push(p);
      }
      return true;
    }
  }
  return false;
}

ASSAY_INLINE void* Malloc(size_t n) {
  ThreadCache* tc = tls_cache;
  if (ASSAY_LIKELY(n <= kMaxTableSize)) {
    void* p = TryPop(tc, kSmallLookup[(n + 7) >> 3], n);
    if (ASSAY_LIKELY(p != nullptr)) return p;
  }
  return MallocSlow(n);
}

ASSAY_INLINE void Free(void* p) {
  if (ASSAY_LIKELY(TryPush(tls_cache, p))) return;
  FreeSlow(p);
}

namespace thread_cache {

// The calling thread's cache, created on first use; nullptr once the thread
// has exited its cache (late destructors) or when no memory is left: callers
// then go straight to the central lists. With harden=1 this is the only way
// to the cache (tls_cache stays g_empty_cache): use its lists with
// FreeList::PopLinked/PushLinked only.
ThreadCache* Current();

// The calling thread's cache if it has one, else nullptr; never creates one.
inline ThreadCache* Existing() { return tls_own; }

// Takes blocks from the central list into an empty list; returns one block
// (nullptr when out of memory).
void* Refill(ThreadCache* tc, size_t cls);

// Pushes p onto a list that reached its bound, growing the bound or
// returning a batch to the central list.
void PushOverflow(ThreadCache* tc, size_t cls, void* p);

// Gives every cached block of tc back to the central lists.
void FlushAll(ThreadCache* tc);
// A free block of the sampled pool of class cls from the calling thread's
// magazine, or from the central list; nullptr when out of memory.
void* TakeSampled(size_t cls);
// Gives back a free block of the sampled pool (its entry already removed):
// to the thread's magazine, or the central list.
void GiveSampled(size_t cls, void* p);

// Free bytes in all live thread caches (read without stopping threads) and
// the number of live caches.
size_t CachedBytes(size_t* threads);

// Calls fn(cache, arg) for every live thread cache, with the registry locked.
void ForEachLive(void (*fn)(ThreadCache* tc, void* arg), void* arg);

// Calls fn(cls, block, arg) for every block cached by any thread, with the
// registry locked. Only safe while the other threads do not run the
// allocator (fork child, core walker, stop-the-world iteration).
void ForEachCachedBlock(void (*fn)(size_t cls, void* block, void* arg), void* arg);

void InitKey();
void LockForFork();
void UnlockAfterFork(bool child);

// Fills this part's fields of the layout descriptor (init/init.cc).
void DescribeLayout(AssayLayout* l);

}  // namespace thread_cache
}  // namespace assay::internal

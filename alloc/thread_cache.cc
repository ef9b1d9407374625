// Thread cache life cycle (thread_cache.h): creation on first use, bounds,
// batch transfers to and from the central lists, and return at thread exit.
#include "alloc/thread_cache.h"

#include <pthread.h>

#include <algorithm>
#include <iterator>

#include "alloc/central.h"
#include "alloc/check.h"
#include "alloc/debug_hooks.h"
#include "alloc/heap.h"
#include "alloc/large_cache.h"
#include "alloc/registry.h"
#include "base/assert.h"
#include "base/layout.h"
#include "base/lock.h"
#include "base/meta.h"
#include "base/options.h"
#include "base/os.h"
#include "base/probes.h"

namespace assay::internal {

constinit ThreadCache g_empty_cache = {};
ASSAY_TLS ThreadCache* tls_cache = &g_empty_cache;
ASSAY_TLS ThreadCache* tls_own = nullptr;

ASSAY_FIRST_USE SampleCountdown* OwnCountdown() { return tls_own ? &tls_own->countdown : nullptr; }

ASSAY_FIRST_USE void ForEachCountdown(void (*fn)(SampleCountdown* c, void* arg), void* arg) {
  struct Call {
    void (*fn)(SampleCountdown*, void*);
    void* arg;
  } call{fn, arg};
  thread_cache::ForEachLive(
      [](ThreadCache* tc, void* a) ASSAY_FIRST_USE {
        auto* c = static_cast<Call*>(a);
        c->fn(&tc->countdown, c->arg);
      },
      &call);
}

namespace thread_cache {
namespace {

// 1 once this thread's cache has been given back at exit: later allocations
// of the thread (from other destructors) bypass the cache.
ASSAY_TLS uint8_t tls_exited = 0;

// Per class: 1 once this thread has refilled the class's list, i.e. it
// allocates blocks of the class and not only frees them. A list only earns
// room to hold blocks (PushOverflow's slow start) when its thread also
// allocates from it: a thread that only frees a class (the consumer of a
// producer/consumer pair) gains nothing from holding its blocks; its list
// grows instead into one chain handed whole to the central transfer cache.
// Zero-filled per thread; lists of a reused cache start again at batch.
ASSAY_TLS uint8_t tls_allocates[kNumClasses];

// Per class: the low byte of the cache's overflow count at the class's last
// HandOver (which grows a consumer's bound only while the class is hot).
ASSAY_TLS uint8_t tls_handover_at[kNumClasses];

constinit Registry<ThreadCache> g_registry;
pthread_key_t g_key;

// Removes up to k blocks from the head of list cls and gives them to the
// central list in batch-sized chunks (so they can sit in its transfer cache).
void Release(ThreadCache* tc, size_t cls, uint32_t k) {
  FreeList& l = tc->lists[cls];
  const uint32_t batch = kClasses[cls].batch;
  while (k > 0 && l.head != nullptr) {
    const uint32_t take = k < batch ? k : batch;
    void* head = l.head;
    void* tail = head;
    uint32_t n = 1;
    void* next;
    if (link::Plain()) {
      while (n < take && (next = *static_cast<void**>(tail)) != nullptr) {
        tail = next;
        ++n;
      }
    } else {
      while (n < take && (next = link::Load(tail)) != nullptr) {
        tail = next;
        ++n;
      }
    }
    l.head = link::Load(tail);
    link::Store(tail, nullptr);
    l.count -= n;
    k -= n;
    central::Give(cls, head, n);
  }
}

// The overflow of a list whose thread only frees the class (a consumer):
// the whole list but its head (the block just freed) goes to the transfer
// cache as one chain, unwalked, for an allocating thread to take whole
// (Refill). While the class is most of what the thread frees (its list
// overflows again with at most one overflow of another list between), the
// bound grows by a batch an overflow up to max_cached: a steady consumer of
// one class moves up to max_cached blocks per lock instead of a batch. A
// thread freeing many classes in turn keeps the bound at a batch: a long
// list of each would park blocks that the producers, short of them, replace
// with new spans (prodcons: 5.4 -> 21 MiB peak RSS with bounds that grew).
ASSAY_NOINLINE void HandOver(ThreadCache* tc, size_t cls, const SizeClassInfo& c) {
  FreeList& l = tc->lists[cls];
  void* rest = link::Load(l.head);
  link::Store(l.head, nullptr);
  central::GiveChain(cls, rest, l.count - 1);
  l.count = 1;
  const uint8_t now = static_cast<uint8_t>(tc->overflows);
  const bool hot = static_cast<uint8_t>(now - tls_handover_at[cls]) <= 2;
  tls_handover_at[cls] = now;
  l.max = !hot ? c.batch : (l.max + c.batch < c.max_cached ? l.max + c.batch : c.max_cached);
}

size_t BytesOf(const ThreadCache* tc) {
  size_t bytes = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    bytes += size_t{__atomic_load_n(&tc->lists[cls].count, __ATOMIC_RELAXED)} * kClasses[cls].size;
  }
  return bytes;
}

// Bytes in tc's sampled-pool magazines: free bytes of the thread's too (the stats),
// outside the budget PushOverflow checks (a magazine is bounded on its own).
size_t SampledBytesOf(const ThreadCache* tc) {
  if (tc->sampled == nullptr) return 0;
  size_t bytes = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    bytes += size_t{__atomic_load_n(&tc->sampled->lists[cls].count, __ATOMIC_RELAXED)} *
             kClasses[cls].size;
  }
  return bytes;
}

void OnThreadExit(void* arg) {
  ThreadCache* tc = static_cast<ThreadCache*>(arg);
  profiler::OnThreadExit();  // pending callbacks run while the thread can still allocate
  if (debug::g_on) debug::FlushThread();
  tls_exited = 1;
  tls_cache = &g_empty_cache;
  tls_own = nullptr;
  ASSAY_PROBE1(thread_cache_exit, tc->thread_id);
  FlushAll(tc);
  large_cache::OnThreadExit();
  LockGuard lock(g_registry.mu);
  g_registry.UnlinkLocked(tc);
}

ASSAY_FIRST_USE ASSAY_NOINLINE ThreadCache* Create() {
  heap::EnsureInit();
  ThreadCache* tc = g_registry.TakeSpareOrAlloc();
  if (tc == nullptr) return nullptr;
  SampledMagazine* const magazine = tc->sampled;  // a reused cache's (empty), else null
  *tc = ThreadCache{};
  tc->sampled = magazine;
  tc->countdown.left = kSampleNever;
  for (size_t cls = 1; cls < kNumClasses; ++cls) tc->lists[cls].max = kClasses[cls].batch;
  tc->thread_id = os::ThreadId();
  ASSAY_PROBE1(thread_cache_new, tc->thread_id);
  g_registry.Link(tc);
  tls_own = tc;
  if (GetOptions().harden == 0) tls_cache = tc;  // else the fast paths never see it
  // After tls_cache is set: pthread_setspecific may itself call calloc.
  pthread_setspecific(g_key, tc);
  return tc;
}

}  // namespace

ASSAY_FIRST_USE ThreadCache* Current() {
  if (ThreadCache* tc = tls_own; ASSAY_LIKELY(tc != nullptr)) return tc;
  if (tls_exited) return nullptr;
  return Create();
}

ASSAY_FIRST_USE void* Refill(ThreadCache* tc, size_t cls) {
  FreeList& l = tc->lists[cls];
  void* head;
  // A span's whole free list, when it fits the list's bound, comes without
  // being walked (central::Take); so does a transfer cache chain (HandOver).
  // A thread's first refill of a class takes what fits in 4 KiB: carving links
  // a batch through its blocks, a page each from 4 KiB up (32 KiB a class).
  const SizeClassInfo& c = kClasses[cls];
  size_t want = c.batch;
  if (ASSAY_UNLIKELY(!tls_allocates[cls])) want = std::clamp<size_t>(4096 / c.size, 1, want);
  const size_t n = central::Take(cls, want, &head, central::kNormal, l.max);
  if (n == 0) return nullptr;
  tls_allocates[cls] = 1;
  l.head = link::Load(head);
  l.count = static_cast<uint32_t>(n - 1);
  if (n > l.max) l.max = static_cast<uint32_t>(n);
  ASSAY_CHECKED_ONLY(AssertFreeListValid(tc, cls));
  return head;
}

namespace {

// Halves every list of tc (and its bound). Out of line: inlined, it made
// PushOverflow save more registers on every overflow (+2 instructions).
ASSAY_NOINLINE void HalveAll(ThreadCache* tc) {
  for (size_t k = 1; k < kNumClasses; ++k) {
    FreeList& other = tc->lists[k];
    // Whole batches only: they go to the class's transfer cache, where
    // the next refill of any thread takes them as they are; a partial one
    // went back block by block to the spans, and refills then walked the
    // spans' free lists (a cache miss a block: on sizemix, whose big
    // blocks keep the cache over budget, 1.2 M walked blocks for 1 M
    // mallocs). Half rounded up to whole batches when the list has them
    // (the big classes, batch 2, hold the bytes), else down: a small list
    // shorter than two batches stays, and sheds a batch at its next
    // overflow past its halved bound.
    const uint32_t b = kClasses[k].batch;
    if (other.count >= b) {  // else nothing to shed (and no division)
      const uint32_t half = (other.count + 1) / 2;
      const uint32_t up = (half + b - 1) / b * b;
      Release(tc, k, up <= other.count ? up : half - half % b);
    }
    const uint32_t max_half = other.max / 2;
    other.max = max_half > b ? max_half : b;
  }
}

}  // namespace

ASSAY_FIRST_USE void PushOverflow(ThreadCache* tc, size_t cls, void* p) {
  FreeList& l = tc->lists[cls];
  const SizeClassInfo& c = kClasses[cls];
  l.PushLinked(p);
  if (l.max < c.max_cached && tls_allocates[cls] != 0) {
    // Slow start: a list that keeps overflowing earns room, one batch at a time.
    l.max = l.max + c.batch < c.max_cached ? l.max + c.batch : c.max_cached;
  } else if (tls_allocates[cls] != 0) {
    Release(tc, cls, c.batch);
  } else {
    HandOver(tc, cls, c);
  }
  // The budget check sums every list (97 classes): once in 8 overflows, so a
  // cache may pass thread_cache_bytes by at most 7 batches (< 224 KiB) before
  // it is halved. Checking on every overflow was 6% of a free-heavy
  // program's instructions.
  if (++tc->overflows % 8 == 0 &&
      BytesOf(tc) > static_cast<size_t>(GetOptions().thread_cache_bytes)) {
    HalveAll(tc);  // over the thread's budget
  }
  ASSAY_CHECKED_ONLY(AssertFreeListValid(tc, cls));
}

void FlushAll(ThreadCache* tc) {
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    Release(tc, cls, tc->lists[cls].count);
  }
  if (tc->sampled == nullptr) return;
  SampledMagazine& m = *tc->sampled;
  for (size_t w = 0; w < std::size(m.nonempty); ++w) {
    for (uint64_t bits = m.nonempty[w]; bits != 0; bits &= bits - 1) {
      const size_t cls = w * 64 + static_cast<size_t>(__builtin_ctzll(bits));
      FreeList& s = m.lists[cls];
      central::Give(cls, s.head, s.count, central::kSampled);
      s.head = nullptr;
      s.count = 0;
    }
    m.nonempty[w] = 0;
  }
}

size_t CachedBytes(size_t* threads) {
  LockGuard lock(g_registry.mu);
  size_t bytes = 0;
  for (ThreadCache* tc = g_registry.live; tc != nullptr; tc = tc->next) {
    bytes += BytesOf(tc) + SampledBytesOf(tc);
  }
  if (threads != nullptr) *threads = g_registry.count;
  return bytes;
}

ASSAY_FIRST_USE void ForEachLive(void (*fn)(ThreadCache* tc, void* arg), void* arg) {
  LockGuard lock(g_registry.mu);
  for (ThreadCache* tc = g_registry.live; tc != nullptr; tc = tc->next) fn(tc, arg);
}

void ForEachCachedBlock(void (*fn)(size_t cls, void* block, void* arg), void* arg) {
  LockGuard lock(g_registry.mu);
  for (ThreadCache* tc = g_registry.live; tc != nullptr; tc = tc->next) {
    for (size_t cls = 1; cls < kNumClasses; ++cls) {
      for (void* b = tc->lists[cls].head; b != nullptr; b = link::Load(b)) fn(cls, b, arg);
      if (tc->sampled == nullptr) continue;
      for (void* b = tc->sampled->lists[cls].head; b != nullptr; b = link::Load(b)) fn(cls, b, arg);
    }
  }
}

ASSAY_STARTUP void DescribeLayout(AssayLayout* l) {
  l->thread_cache_head_addr = reinterpret_cast<uint64_t>(&g_registry.live);
  l->tc_lists_off = offsetof(ThreadCache, lists);
  l->tc_sampled_off = offsetof(ThreadCache, sampled);
  l->sampled_lists_off = offsetof(SampledMagazine, lists);
  l->freelist_record_size = sizeof(FreeList);
  l->freelist_head_off = offsetof(FreeList, head);
  l->freelist_count_off = offsetof(FreeList, count);
  l->tc_next_off = offsetof(ThreadCache, next);
  l->tc_thread_id_off = offsetof(ThreadCache, thread_id);
  l->link_key_addr = reinterpret_cast<uint64_t>(&link::g_key);
  l->link_shift = link::kShift;
}

ASSAY_STARTUP void InitKey() { pthread_key_create(&g_key, OnThreadExit); }

void LockForFork() { g_registry.mu.Lock(); }

void UnlockAfterFork(bool child) {
  if (!child) {
    g_registry.mu.Unlock();
    return;
  }
  g_registry.mu.ResetAfterFork();
  // Only this thread lives on in the child: the blocks in the other threads'
  // caches are unreachable (as with every allocator); their structs are reused.
  ThreadCache* self = tls_own;
  for (ThreadCache* tc = g_registry.live; tc != nullptr;) {
    ThreadCache* next = tc->next;
    if (tc != self) {
      g_registry.UnlinkLocked(tc);
      if (tc->sampled != nullptr) {
        // Create keeps a reused cache's magazine, which must then be empty:
        // the dead thread's blocks are dropped like its lists' (it may even
        // have forked mid-push, count above max).
        SampledMagazine& m = *tc->sampled;
        for (FreeList& s : m.lists) {
          s.head = nullptr;
          s.count = 0;
        }
        for (uint64_t& w : m.nonempty) w = 0;
      }
    }
    tc = next;
  }
}

}  // namespace thread_cache
}  // namespace assay::internal

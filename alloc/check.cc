// The checked build's heap walk (check.h): the lock order and the thread
// cache checks; each layer checks its own structures (page_heap, central,
// huge AssertValid*).
#include "alloc/check.h"

#include "alloc/central.h"
#include "alloc/huge.h"
#include "alloc/large_cache.h"
#include "alloc/page_heap.h"
#include "base/assert.h"

namespace assay::internal {
namespace {

// Every block of list l is a block of class cls in the pool, and l.count is
// its length (the walk also stops at a cycle).
void AssertListBlocks(const FreeList& l, size_t cls, central::Pool pool) {
  uint32_t n = 0;
  for (const void* b = l.head; b != nullptr; b = link::Load(b)) {
    ASSAY_CHECK(n < l.count);
    central::AssertBlockValid(b, cls, pool);
    ++n;
  }
  ASSAY_CHECK(n == l.count);
}

}  // namespace

void AssertFreeListValid(const ThreadCache* tc, size_t cls) {
  const FreeList& l = tc->lists[cls];
  if (cls == 0) {  // Free's fast path rejects non-small slices by this bound
    ASSAY_CHECK(l.head == nullptr && l.count == 0 && l.max == 0);
    return;
  }
  const SizeClassInfo& c = kClasses[cls];
  ASSAY_CHECK(l.count <= l.max && l.max <= c.max_cached);
  ASSAY_CHECK(tc == &g_empty_cache ? l.max == 0 : l.max >= c.batch);
  AssertListBlocks(l, cls, central::kNormal);
}

void AssertThreadCacheValid(const ThreadCache* tc, uint32_t* cached, uint32_t* sampled) {
  for (size_t cls = 0; cls < kNumClasses; ++cls) {
    AssertFreeListValid(tc, cls);
    if (cached != nullptr) cached[cls] += tc->lists[cls].count;
    if (tc->sampled == nullptr) continue;
    ASSAY_CHECK(tc != &g_empty_cache);
    const FreeList& s = tc->sampled->lists[cls];
    const uint32_t bound = cls == 0 ? 0 : SampledMagazineMax(cls);
    ASSAY_CHECK(s.max == bound && s.count <= s.max);
    AssertListBlocks(s, cls, central::kSampled);
    ASSAY_CHECK(tc->sampled->Marked(cls) == (s.count != 0));
    if (sampled != nullptr) sampled[cls] += s.count;
  }
}

namespace {

struct Walk {
  uint32_t cached[kNumClasses];
  uint32_t sampled[kNumClasses];  // in the sampled-pool magazines
  size_t caches;
};

void CheckLive(ThreadCache* tc, void* arg) {  // under the registry lock
  Walk* w = static_cast<Walk*>(arg);
  ASSAY_CHECK(tc != &g_empty_cache);
  ASSAY_CHECK(tc->prev == nullptr || tc->prev->next == tc);
  ASSAY_CHECK(tc->next == nullptr || tc->next->prev == tc);
  AssertThreadCacheValid(tc, w->cached, w->sampled);
  w->caches++;
}

}  // namespace

bool AssertHeapValid(CacheScope scope) {
  if constexpr (!kChecked) return false;
  Walk w = {};
  // The shared starting cache: the fast paths never write to it.
  AssertThreadCacheValid(&g_empty_cache, nullptr);
  if (scope == CacheScope::kAllQuiescent) {
    thread_cache::ForEachLive(CheckLive, &w);
    size_t threads = 0;
    thread_cache::CachedBytes(&threads);
    ASSAY_CHECK(threads == w.caches);
  } else if (ThreadCache* tc = thread_cache::Existing()) {  // tls_cache's, or harden=1's
    AssertThreadCacheValid(tc, w.cached, w.sampled);
  }
  // The fork handlers' order: central lists, then the page heap; both held
  // so that the spans, the lists and the page heap are seen at one instant.
  central::LockForFork();
  page_heap::LockForFork();
  page_heap::AssertValidLocked();
  central::AssertValidLocked(w.cached, w.sampled);
  page_heap::UnlockAfterFork(false);
  central::UnlockAfterFork(false);
  huge::AssertValid();
  if (scope == CacheScope::kAllQuiescent) large_cache::AssertValid();  // owners run lock-free
  return true;
}

}  // namespace assay::internal

// The C hook for tests (declared in tests/check_heap.h, not exported):
// all_threads != 0 walks every thread cache (the other threads must be
// quiescent). 1 if the checks ran, 0 in a build without them.
extern "C" int assay_check_heap(int all_threads) {
  using assay::internal::CacheScope;
  return assay::internal::AssertHeapValid(all_threads != 0 ? CacheScope::kAllQuiescent
                                                           : CacheScope::kOwn)
             ? 1
             : 0;
}

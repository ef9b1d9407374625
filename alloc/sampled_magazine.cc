// The sampled pool's per-thread magazines (thread_cache.h: SampledMagazine):
// the pop and push of sampled small blocks, and their way to and from the
// central lists.
#include "alloc/central.h"
#include "alloc/check.h"
#include "alloc/thread_cache.h"
#include "base/assert.h"
#include "base/meta.h"

namespace assay::internal::thread_cache {

namespace {

ASSAY_NOINLINE void* TakeSampledCentral(size_t cls) {
  void* p;
  return central::Take(cls, 1, &p, central::kSampled) == 0 ? nullptr : p;
}

}  // namespace

// The pop; the central list's take out of line (its result through memory
// had cost every pop a frame).
void* TakeSampled(size_t cls) {
  ThreadCache* tc = Existing();
  if (tc != nullptr && tc->sampled != nullptr && tc->sampled->lists[cls].head != nullptr) {
    FreeList& s = tc->sampled->lists[cls];
    void* p = s.PopLinked(s.head);
    if (s.head == nullptr) tc->sampled->Mark(cls, false);
    return p;
  }
  return TakeSampledCentral(cls);
}

namespace {

// Over the bound: all but the newest max / 2 go back in one list under one lock.
ASSAY_NOINLINE void GiveSampledOverflow(ThreadCache* tc, size_t cls) {
  FreeList& s = tc->sampled->lists[cls];
  const uint32_t kept = s.max / 2;
  if (kept == 0) {
    central::Give(cls, s.head, s.count, central::kSampled);
    s.head = nullptr;
    tc->sampled->Mark(cls, false);
  } else {
    void* last = s.head;
    for (uint32_t i = 1; i < kept; ++i) last = link::Load(last);
    void* rest = link::Load(last);
    link::Store(last, nullptr);
    central::Give(cls, rest, s.count - kept, central::kSampled);
  }
  s.count = kept;
  ASSAY_CHECKED_ONLY(AssertThreadCacheValid(tc, nullptr));
}

// GiveSampled for a thread without a magazine: makes it, else (the thread
// exited: late destructors; or no memory) gives p to the central list.
ASSAY_NOINLINE void GiveSampledFirst(ThreadCache* tc, size_t cls, void* p) {
  if (tc != nullptr) {
    // Metadata pages, zeroed; never freed: it stays with the cache, also
    // when a later thread reuses it.
    auto* m = static_cast<SampledMagazine*>(meta::Alloc(sizeof(SampledMagazine)));
    if (m != nullptr) {
      for (size_t k = 1; k < kNumClasses; ++k) m->lists[k].max = SampledMagazineMax(k);
      tc->sampled = m;
      return GiveSampled(cls, p);
    }
  }
  link::Store(p, nullptr);
  central::Give(cls, p, 1, central::kSampled);
}

}  // namespace

// The push, out of line only past the bound or without a magazine: its
// registers had cost every sampled free a frame of six saved ones.
void GiveSampled(size_t cls, void* p) {
  ThreadCache* tc = Existing();
  SampledMagazine* m = tc != nullptr ? tc->sampled : nullptr;
  if (ASSAY_UNLIKELY(m == nullptr)) return GiveSampledFirst(tc, cls, p);
  FreeList& s = m->lists[cls];
  s.PushLinked(p);
  m->Mark(cls, true);
  if (ASSAY_LIKELY(s.count <= s.max)) return;
  GiveSampledOverflow(tc, cls);
}

}  // namespace assay::internal::thread_cache

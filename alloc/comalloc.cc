// Combined allocation (assay_comalloc) and bulk free (heap.h): n blocks in
// one call, with one countdown step for the batch when no sample point lies
// in it, and all-or-nothing failure.
#include <errno.h>
#include <string.h>

#include "alloc/debug_hooks.h"
#include "alloc/heap.h"
#include "alloc/slow_path.h"

namespace assay::internal::heap {

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
      l->PopLinked(p);
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

}  // namespace assay::internal::heap

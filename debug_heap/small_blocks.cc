// Per-thread magazines of free small-block slots (taken from and given back
// to the sampled pool's central lists), FlushThread at thread exit, and the
// walk of live small blocks over the sampled spans.
#include "debug_heap/small_blocks.h"

#include "alloc/central.h"
#include "alloc/free_link.h"
#include "alloc/page_heap.h"

namespace assay::internal::debug {
namespace {

// A magazine per thread: every debug block would otherwise take its class's central lock twice;
// threads allocating at once then queue on it. A released slot (state 0, so
// the leak scan and the walkers of the debug heap see it as free) waits here
// for the same thread's next allocation of its class.

inline constexpr uint32_t kMagazineMax = 32;  // slots per class per thread
inline constexpr uint32_t kMagazineFill = 8;  // slots taken from the central list at once

struct Magazine {
  void* head[kNumClasses];  // linked through their first word
  uint8_t count[kNumClasses];
  bool off;  // flushed at thread exit: the central lists from then on
};
ASSAY_TLS Magazine tls_magazine;

}  // namespace

void* TakeSlot(size_t cls) {
  Magazine& m = tls_magazine;
  if (m.off) {
    void* p;
    return central::Take(cls, 1, &p, central::kSampled) == 0 ? nullptr : p;
  }
  if (m.head[cls] == nullptr) {
    void* list;
    const size_t got = central::Take(cls, kMagazineFill, &list, central::kSampled);
    if (got == 0) return nullptr;
    m.head[cls] = list;
    m.count[cls] = static_cast<uint8_t>(got);
  }
  void* p = m.head[cls];
  m.head[cls] = link::Load(p);
  m.count[cls]--;
  return p;
}

void GiveSlot(size_t cls, void* p) {
  Magazine& m = tls_magazine;
  if (m.off || m.count[cls] >= kMagazineMax) {
    link::Store(p, nullptr);
    central::Give(cls, p, 1, central::kSampled);
    return;
  }
  link::Store(p, m.head[cls]);
  m.head[cls] = p;
  m.count[cls]++;
}

// `locked`: the caller holds the page-heap lock (the leak scan).
static void WalkLiveSmall(void (*fn)(const Block& b, void* arg), void* arg, bool locked) {
  struct Ctx {
    void (*fn)(const Block& b, void* arg);
    void* arg;
  } ctx{fn, arg};
  (locked ? page_heap::ForEachSegmentLocked : page_heap::ForEachSegment)(
      [](const Segment* seg, void* c) {
        const Ctx& x = *static_cast<Ctx*>(c);
        for (size_t i = 1; i < kSlicesPerSegment; ++i) {
          const Span* span = &seg->spans[i];
          if (span->kind != SpanKind::kSampled || span->first != i) continue;
          const size_t size = kClasses[span->cls].size;
          char* start = SpanStart(span);
          for (size_t off = 0; off + size <= span->bump; off += size) {
            auto* h = reinterpret_cast<Header*>(start + off);
            if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != kLive) continue;
            if (h->size > size - kSmallOverhead) continue;  // not a header
            x.fn(Block{h, start + off + kSmallOverhead, start + off + size}, x.arg);
          }
        }
      },
      &ctx);
}

void ForEachLiveSmall(void (*fn)(const Block& b, void* arg), void* arg) {
  WalkLiveSmall(fn, arg, false);
}

void ForEachLiveSmallLocked(void (*fn)(const Block& b, void* arg), void* arg) {
  WalkLiveSmall(fn, arg, true);
}

void FlushThread() {
  Magazine& m = tls_magazine;
  if (m.off) return;
  m.off = true;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const size_t n = m.count[cls];
    if (n > 0) central::Give(cls, m.head[cls], n, central::kSampled);
    m.head[cls] = nullptr;
    m.count[cls] = 0;
  }
}

}  // namespace assay::internal::debug

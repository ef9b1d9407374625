// Central free lists (central.h); their state is central_lists.h, their
// checked-build walks central_check.cc.
#include "alloc/central.h"

#include <array>
#include <bit>

#include "alloc/central_lists.h"
#include "alloc/free_link.h"
#include "alloc/page_heap.h"
#include "alloc/span_purge.h"
#include "base/assert.h"
#include "base/bits.h"
#include "base/layout.h"
#include "base/lock.h"

namespace assay::internal::central {

constinit ClassList g_lists[2][kNumClasses];

namespace {

// PurgeIdleSpans's last answer (SpanPurgePending): the purger thread's.
constinit uint32_t g_purge_pending = 0;

void ListPush(ClassList& l, Span* s) {
  s->prev = nullptr;
  s->next = l.nonempty;
  if (l.nonempty != nullptr) l.nonempty->prev = s;
  l.nonempty = s;
  s->in_list = 1;
}

void ListRemove(ClassList& l, Span* s) {
  if (s->prev != nullptr)
    s->prev->next = s->next;
  else
    l.nonempty = s->next;
  if (s->next != nullptr) s->next->prev = s->prev;
  s->next = s->prev = nullptr;
  s->in_list = 0;
}

// Gives a wholly free span of list l back to the page heap. Its purged
// units go back as dirty slices (purged again later: a second madvise of a
// purged page costs little, and the page heap's counts stay per slice).
// Returns its bytes.
size_t ReleaseSpan(ClassList& l, Span* span) {
  l.stats.spans--;
  const size_t bytes = span->slices * kSliceSize;
  l.stats.span_bytes -= bytes;
  l.stats.purged_bytes -=
      static_cast<size_t>(Popcount(span_purge::Purged(span))) * span_purge::Unit(span);
  page_heap::FreeSpan(span);
  return bytes;
}

// Returns one block to its span; frees the span when it empties.
// Returns bytes handed to the page heap. kPlain: links are plain pointers
// (link::Plain(), tested once by the caller's loop, not once a block).
template <bool kPlain = false>
ASSAY_INLINE size_t ReturnToSpan(ClassList& l, void* block) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(block);
  Segment* seg = SegmentOf(a);
  Span* span = &seg->spans[seg->slice_map[SliceOf(a)].first];
  // The block is out of a span of this list's class and kind.
  ASSAY_ASSERT(span->cls == ListIndex(l) % kNumClasses && span->used > 0);
  ASSAY_ASSERT(span->kind == KindOf(static_cast<Pool>(ListIndex(l) / kNumClasses)));
  ASSAY_CHECKED_ONLY(
      AssertBlockValid(block, span->cls, static_cast<Pool>(ListIndex(l) / kNumClasses)));
  if (kPlain) {
    *static_cast<void**>(block) = span->free_list;
  } else {
    link::Store(block, span->free_list);
  }
  span->free_list = block;
  l.stats.blocks_out--;
  if (--span->used != 0) {
    if (!span->in_list) ListPush(l, span);
    return 0;
  }
  if (span->in_list) ListRemove(l, span);
  ASSAY_CHECKED_ONLY(
      AssertSpanValid(span, span->cls, static_cast<Pool>(ListIndex(l) / kNumClasses)));
  // An empty span is kept for the class only while it is one slice: a
  // longer one (classes above ~10 KiB) goes back to the page heap, whose
  // dirty-first fit gives its resident slices to whichever class or large
  // block needs memory next instead of reserving them for this class. The
  // sampled pool keeps one of any length: its spans of big classes hold a
  // block or two, so each sampled block would otherwise build a span, fault
  // its pages in and, once purged, do it again (bigalloc with the profiler:
  // 5-9% more page faults). Idle kept spans go back at the next drain.
  if (l.empty_kept == nullptr && (span->slices == 1 || span->kind == SpanKind::kSampled)) {
    l.empty_kept = span;
    return 0;
  }
  return ReleaseSpan(l, span);
}

// Returns the first k blocks of the list at head to their spans; returns
// the rest of the list.
template <bool kPlain = false>
void* ReturnBlocks(ClassList& l, void* head, size_t k) {
  for (; k > 0; --k) {
    void* next = kPlain ? *static_cast<void**>(head) : link::Load(head);
    ReturnToSpan<kPlain>(l, head);
    head = next;
  }
  return head;
}

Span* NewSpan(ClassList& l, size_t cls, Pool pool) {
  Span* span = l.empty_kept;
  if (span != nullptr) {
    l.empty_kept = nullptr;
  } else {
    bool zeroed;
    span = page_heap::AllocSpan(SpanSlices(cls, pool), KindOf(pool), static_cast<uint8_t>(cls),
                                &zeroed);
    if (span == nullptr) return nullptr;
    l.stats.spans++;
    l.stats.span_bytes += span->slices * kSliceSize;
  }
  ListPush(l, span);
  return span;
}

}  // namespace

ASSAY_FIRST_USE size_t Take(size_t cls, size_t want, void** head, Pool pool, size_t whole) {
  ClassList& l = g_lists[pool][cls];
  const SizeClassInfo& c = kClasses[cls];
  LockGuard lock(l.mu);
  l.touches++;
  ASSAY_ASSERT(want >= 1 && cls != 0);
  // The newest chain, whole: for a thread list's refill (whole > 0) any
  // (at most max_cached blocks), else one of at most want blocks.
  if (l.nbatches > 0 && (whole > 0 || l.batches[l.nbatches - 1].count <= want)) {
    const Batch b = l.batches[--l.nbatches];
    ASSAY_ASSERT(b.count >= c.batch && b.count <= c.max_cached);
    l.stats.transfer_blocks -= b.count;
    *head = b.head;
    return b.count;
  }
  // The list is built front-first, so that a span's free list can be taken
  // whole as its tail without walking it: freed blocks are linked in the
  // order they were freed, scattered over the span, and walking them here
  // is a chain of dependent cache misses with nothing to overlap them,
  // where the thread cache's pops overlap them with the program's own work.
  void* list = nullptr;
  size_t n = 0;
  while (n < want) {
    Span* span = l.nonempty;
    if (span == nullptr && (span = NewSpan(l, cls, pool)) == nullptr) break;
    const uint32_t span_bytes = static_cast<uint32_t>(span->slices * kSliceSize);
    if (span->free_list == nullptr && span_purge::Purged(span) != 0) {
      // Free blocks on purged pages: carved again (faulted in as touched).
      l.stats.purged_bytes -= span_purge::Recarve(span, c.size);
    }
    if (span->free_list != nullptr) {
      // Whole only without purged blocks: else nfree would need them counted.
      const uint32_t nfree = span->bump / c.size - span->used;
      if (n == 0 && nfree <= whole && span_purge::Purged(span) == 0) {
        list = span->free_list;
        span->free_list = nullptr;
        span->used += nfree;
        n = nfree;
      } else {
        void* b = span->free_list;
        span->free_list = link::Load(b);
        link::Store(b, list);
        list = b;
        span->used++;
        ++n;
      }
    } else {
      // Never-used blocks: carve up to what is missing in address order,
      // linked ahead of what the list holds.
      const uint32_t room = (span_bytes - span->bump) / c.size;
      const uint32_t k = static_cast<uint32_t>(want - n < room ? want - n : room);
      char* const start = SpanStart(span) + span->bump;
      if (link::Plain()) {
        for (uint32_t i = 0; i + 1 < k; ++i) {
          *reinterpret_cast<void**>(start + size_t{i} * c.size) = start + size_t{i + 1} * c.size;
        }
      } else {
        for (uint32_t i = 0; i + 1 < k; ++i) {
          link::Store(start + size_t{i} * c.size, start + size_t{i + 1} * c.size);
        }
      }
      link::Store(start + size_t{k - 1} * c.size, list);
      list = start;
      span->bump += k * c.size;
      span->used += k;
      n += k;
    }
    ASSAY_ASSERT(span->used <= span->bump / c.size);
    if (span->free_list == nullptr && span_purge::Purged(span) == 0 &&
        span->bump + c.size > span_bytes) {
      ListRemove(l, span);
    }
  }
  ASSAY_ASSERT(n <= (want > whole ? want : whole));
  ASSAY_CHECKED_ONLY(AssertBatchValid(list, n, cls, pool));
  l.stats.blocks_out += n;
  *head = list;
  return n;
}

ASSAY_FIRST_USE void Give(size_t cls, void* head, size_t n, Pool pool) {
  ClassList& l = g_lists[pool][cls];
  ASSAY_ASSERT(n >= 1 && cls != 0);
  ASSAY_CHECKED_ONLY(AssertBatchValid(head, n, cls, pool));
  LockGuard lock(l.mu);
  l.touches++;
  if (n == kClasses[cls].batch && l.nbatches < TransferSlots(cls)) {
    l.batches[l.nbatches++] = Batch{head, static_cast<uint32_t>(n)};
    l.stats.transfer_blocks += n;
    return;
  }
  if (link::Plain()) {
    while (head != nullptr) {
      void* next = *static_cast<void**>(head);
      ReturnToSpan</*kPlain=*/true>(l, head);
      head = next;
    }
    return;
  }
  while (head != nullptr) {
    void* next = link::Load(head);
    ReturnToSpan(l, head);
    head = next;
  }
}

// Kept whole only under TransferCap; back to the spans a batch per lock
// hold, not all at once: a thread preempted while it holds the lock stalls
// every thread of the class (more threads than cores).
void GiveChain(size_t cls, void* head, size_t n) {
  ClassList& l = g_lists[kNormal][cls];
  const SizeClassInfo& c = kClasses[cls];
  if (n <= c.batch) return Give(cls, head, n);  // the bound of a cold class: a batch
  ASSAY_CHECKED_ONLY(AssertBatchValid(head, n, cls, kNormal));
  LockGuard lock(l.mu);
  l.touches++;
  if (n <= c.max_cached && l.nbatches < kTransferSlots &&
      l.stats.transfer_blocks + n <= TransferCap(c)) {
    l.batches[l.nbatches++] = Batch{head, static_cast<uint32_t>(n)};
    l.stats.transfer_blocks += n;
    return;
  }
  for (;;) {
    const size_t k = n < c.batch ? n : c.batch;
    head = link::Plain() ? ReturnBlocks</*kPlain=*/true>(l, head, k) : ReturnBlocks(l, head, k);
    n -= k;
    if (n == 0) return;
    l.mu.Unlock();
    l.mu.Lock();
  }
}

size_t Drain(bool idle_only) {
  size_t released = 0;
  for (size_t i = 0; i < 2 * kNumClasses; ++i) {
    ClassList& l = g_lists[i / kNumClasses][i % kNumClasses];
    if (i % kNumClasses == 0) continue;
    LockGuard lock(l.mu);
    if (idle_only && l.touches != l.touches_at_drain) {
      l.touches_at_drain = l.touches;
      continue;
    }
    l.touches_at_drain = l.touches;
    while (l.nbatches > 0) {
      const Batch b = l.batches[--l.nbatches];
      l.stats.transfer_blocks -= b.count;
      for (void* p = b.head; p != nullptr;) {
        void* next = link::Load(p);
        released += ReturnToSpan(l, p);
        p = next;
      }
    }
    if (l.empty_kept != nullptr) {
      Span* span = l.empty_kept;
      l.empty_kept = nullptr;
      released += ReleaseSpan(l, span);
    }
  }
  return released;
}

size_t PurgeIdleSpans(bool idle_only, bool* pending) {
  size_t purged = 0;
  bool waiting = false;
  for (size_t i = 0; i < 2 * kNumClasses; ++i) {
    if (i % kNumClasses == 0) continue;
    ClassList& l = g_lists[i / kNumClasses][i % kNumClasses];
    const uint32_t size = kClasses[i % kNumClasses].size;
    LockGuard lock(l.mu);
    if (l.touches != l.touches_at_purge) {  // spans may have new free pages: look again
      l.touches_at_purge = l.touches;
      waiting = true;
    }
    for (Span* s = l.nonempty; s != nullptr; s = s->next) {
      const uint8_t key = span_purge::StateKey(s);
      if (s->purge_seen == (key | 1)) continue;  // examined, untouched since
      // A span worth examining is mostly free: 3/4 of its carved bytes in
      // free blocks (on its list or already purged). A span less free
      // rarely has a page without a live block, and walking its free list
      // to find out was 5% of the fragmentation workload's instructions.
      const uint32_t nfree = s->bump / size - s->used;
      if (size_t{nfree} * size * 4 < size_t{s->bump} * 3 ||
          size_t{nfree} * size < span_purge::Unit(s)) {
        s->purge_seen = static_cast<uint8_t>(key | 1);
        continue;
      }
      if (idle_only && s->purge_seen != key) {  // touched since the last visit: wait one more
        s->purge_seen = key;
        waiting = true;
        continue;
      }
      const size_t bytes = span_purge::PurgeFree(s, size);
      l.stats.purged_bytes += bytes;
      l.stats.purged_total += bytes;
      purged += bytes;
      s->purge_seen = static_cast<uint8_t>(span_purge::StateKey(s) | 1);
    }
  }
  __atomic_store_n(&g_purge_pending, waiting ? 1 : 0, __ATOMIC_RELAXED);
  *pending = waiting;
  return purged;
}

bool SpanPurgePending() { return __atomic_load_n(&g_purge_pending, __ATOMIC_RELAXED) != 0; }

ClassStats GetClassStats(size_t cls, Pool pool) {
  ClassList& l = g_lists[pool][cls];
  LockGuard lock(l.mu);
  return l.stats;
}

ASSAY_STARTUP void DescribeLayout(AssayLayout* l) {
  l->central_addr = reinterpret_cast<uint64_t>(&g_lists[0][0]);
  l->central_pools = 2;
  l->central_record_size = sizeof(ClassList);
  l->central_nbatches_off = offsetof(ClassList, nbatches);
  l->central_batches_off = offsetof(ClassList, batches);
  l->central_batch_slots = kTransferSlots;
  l->batch_record_size = sizeof(Batch);
  l->batch_head_off = offsetof(Batch, head);
  l->batch_count_off = offsetof(Batch, count);
}

void LockForFork() {
  for (auto& pool : g_lists) {
    for (size_t cls = 1; cls < kNumClasses; ++cls) pool[cls].mu.Lock();
  }
}

void UnlockAfterFork(bool child) {
  for (auto& pool : g_lists) {
    for (size_t cls = 1; cls < kNumClasses; ++cls) {
      pool[cls].mu.UnlockAfterFork(child);
    }
  }
}

}  // namespace assay::internal::central

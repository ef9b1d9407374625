// Central free lists (central.h).
#include "alloc/central.h"

#include "alloc/free_link.h"
#include "alloc/page_heap.h"
#include "base/layout.h"
#include "base/lock.h"

namespace assay::internal::central {
namespace {

inline constexpr size_t kTransferSlots = 16;

struct Batch {
  void* head;
  uint32_t count;
};

struct alignas(64) ClassList {
  Mutex mu;
  uint32_t nbatches = 0;
  Batch batches[kTransferSlots] = {};  // whole batches, ready to hand out
  Span* nonempty = nullptr;            // spans with free or uncarved blocks
  Span* empty_kept = nullptr;          // one wholly free span kept to avoid churn
  uint64_t touches = 0;                // Take/Give calls, for idle detection
  uint64_t touches_at_drain = 0;
  ClassStats stats{};
};
constinit ClassList g_lists[2][kNumClasses];

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

// Returns one block to its span; frees the span when it empties.
// Returns bytes handed to the page heap.
size_t ReturnToSpan(ClassList& l, void* block) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(block);
  Segment* seg = SegmentOf(a);
  Span* span = &seg->spans[seg->slice_map[SliceOf(a)].first];
  link::Store(block, span->free_list);
  span->free_list = block;
  l.stats.blocks_out--;
  if (--span->used != 0) {
    if (!span->in_list) ListPush(l, span);
    return 0;
  }
  if (span->in_list) ListRemove(l, span);
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
  l.stats.spans--;
  const size_t bytes = span->slices * kSliceSize;
  l.stats.span_bytes -= bytes;
  page_heap::FreeSpan(span);
  return bytes;
}

Span* NewSpan(ClassList& l, size_t cls, Pool pool) {
  Span* span = l.empty_kept;
  if (span != nullptr) {
    l.empty_kept = nullptr;
  } else {
    bool zeroed;
    // Sampled blocks are rare: their spans are a single slice when the class fits.
    const size_t slices = pool == kSampled ? AlignUp(kClasses[cls].size, kSliceSize) / kSliceSize
                                           : kClasses[cls].span_slices;
    span = page_heap::AllocSpan(slices, pool == kSampled ? SpanKind::kSampled : SpanKind::kSmall,
                                static_cast<uint8_t>(cls), &zeroed);
    if (span == nullptr) return nullptr;
    l.stats.spans++;
    l.stats.span_bytes += span->slices * kSliceSize;
  }
  ListPush(l, span);
  return span;
}

}  // namespace

size_t Take(size_t cls, size_t want, void** head, Pool pool, size_t whole) {
  ClassList& l = g_lists[pool][cls];
  const SizeClassInfo& c = kClasses[cls];
  LockGuard lock(l.mu);
  l.touches++;
  if (l.nbatches > 0 && want >= c.batch) {  // a batch is c.batch blocks: never more than asked
    const Batch b = l.batches[--l.nbatches];
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
    if (span->free_list != nullptr) {
      const uint32_t nfree = span->bump / c.size - span->used;
      if (n == 0 && nfree <= whole) {
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
      for (uint32_t i = 0; i + 1 < k; ++i) {
        link::Store(start + size_t{i} * c.size, start + size_t{i + 1} * c.size);
      }
      link::Store(start + size_t{k - 1} * c.size, list);
      list = start;
      span->bump += k * c.size;
      span->used += k;
      n += k;
    }
    if (span->free_list == nullptr && span->bump + c.size > span_bytes) ListRemove(l, span);
  }
  l.stats.blocks_out += n;
  *head = list;
  return n;
}

void Give(size_t cls, void* head, size_t n, Pool pool) {
  ClassList& l = g_lists[pool][cls];
  LockGuard lock(l.mu);
  l.touches++;
  if (n == kClasses[cls].batch && l.nbatches < kTransferSlots) {
    l.batches[l.nbatches++] = Batch{head, static_cast<uint32_t>(n)};
    l.stats.transfer_blocks += n;
    return;
  }
  while (head != nullptr) {
    void* next = link::Load(head);
    ReturnToSpan(l, head);
    head = next;
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
      l.stats.spans--;
      l.stats.span_bytes -= span->slices * kSliceSize;
      released += span->slices * kSliceSize;
      page_heap::FreeSpan(span);
    }
  }
  return released;
}

ClassStats GetClassStats(size_t cls, Pool pool) {
  ClassList& l = g_lists[pool][cls];
  LockGuard lock(l.mu);
  return l.stats;
}

void DescribeLayout(AssayLayout* l) {
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

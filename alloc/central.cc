// Central free lists (central.h).
#include "alloc/central.h"

#include <array>
#include <bit>

#include "alloc/free_link.h"
#include "alloc/page_heap.h"
#include "alloc/span_purge.h"
#include "base/assert.h"
#include "base/layout.h"
#include "base/lock.h"

namespace assay::internal::central {
namespace {

inline constexpr size_t kTransferSlots = 16;
// A class's transfer cache holds at most this many bytes (and one batch at
// least): 16 batches of the biggest classes (2 x 256 KiB) were 16 MiB each,
// kept resident for whichever thread asks next.
inline constexpr size_t kTransferBytes = size_t{1} << 20;

constexpr std::array<uint8_t, kNumClasses> MakeTransferSlots() {
  std::array<uint8_t, kNumClasses> t{};
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const size_t slots = kTransferBytes / (size_t{kClasses[cls].batch} * kClasses[cls].size);
    t[cls] =
        static_cast<uint8_t>(slots < 1 ? 1 : (slots > kTransferSlots ? kTransferSlots : slots));
  }
  return t;
}
inline constexpr std::array<uint8_t, kNumClasses> kSlotsOf = MakeTransferSlots();
ASSAY_INLINE uint32_t TransferSlots(size_t cls) { return kSlotsOf[cls]; }

// A chain of free blocks in the transfer cache: a batch handed back by a
// thread that also allocates the class, or the whole thread list of one that
// only frees it (thread_cache.cc HandOver), moved on without a walk.
struct Batch {
  void* head;
  uint32_t count;  // == length of head's list; batch <= count <= max_cached
};

// Blocks the transfer cache of class cls holds at most: 16 batches, or
// 512 KiB of blocks when that is more (whole lists of threads that only
// free the class, a consumer's overflow, kept for the producers: a
// consumer may free thousands of blocks while the producers wait on their
// queue). Idle ones go back to their spans at the purger's drain.
ASSAY_INLINE size_t TransferCap(const SizeClassInfo& c) {
  const size_t batches = kTransferSlots * c.batch;
  const size_t bytes = (size_t{512} << 10) / c.size;
  return batches > bytes ? batches : bytes;
}

// Invariants (AssertValidLocked), all under mu; the spans counted are those
// of the class whose kind is the pool's (kSmall, kSampled):
//   stats.spans == #spans, stats.span_bytes == their bytes,
//   stats.blocks_out == sum of their used,
//   stats.transfer_blocks == sum of batches[0..nbatches).count, each count
//   in [batch, max_cached]; the sum <= TransferCap + kTransferSlots * batch
//   (a chain longer than a batch enters only under TransferCap, a batch
//   whenever a slot is free),
//   stats.purged_bytes == the bytes of their purged units,
//   nonempty == exactly the spans with in_list (each with used > 0 and a
//   free, purged or uncarved block), empty_kept has used == 0; class 0 is
//   unused.
struct alignas(64) ClassList {
  Mutex mu;
  uint32_t nbatches = 0;               // <= kTransferSlots
  Batch batches[kTransferSlots] = {};  // whole batches, ready to hand out
  Span* nonempty = nullptr;            // spans with free or uncarved blocks
  Span* empty_kept = nullptr;          // one wholly free span kept to avoid churn
  uint64_t touches = 0;                // Take/Give calls, for idle detection
  uint64_t touches_at_drain = 0;
  uint64_t touches_at_purge = 0;  // at the last PurgeIdleSpans
  ClassStats stats{};
};
constinit ClassList g_lists[2][kNumClasses];

// PurgeIdleSpans's last answer (SpanPurgePending): the purger thread's.
constinit uint32_t g_purge_pending = 0;

ASSAY_INLINE SpanKind KindOf(Pool pool) {
  return pool == kSampled ? SpanKind::kSampled : SpanKind::kSmall;
}
ASSAY_INLINE size_t ListIndex(const ClassList& l) {  // pool * kNumClasses + cls
  return static_cast<size_t>(&l - &g_lists[0][0]);
}

// Slices of a span of class cls in the pool.
ASSAY_INLINE size_t SpanSlices(size_t cls, Pool pool) {
  // Sampled blocks are rare: their spans are a single slice when the class fits.
  return pool == kSampled ? AlignUp(kClasses[cls].size, kSliceSize) / kSliceSize
                          : kClasses[cls].span_slices;
}

// Checks the n blocks linked from head (a batch moving to or from a thread).
void AssertBatchValid(const void* head, size_t n, size_t cls, Pool pool) {
  size_t k = 0;
  for (const void* b = head; b != nullptr; b = link::Load(b), ++k) {
    ASSAY_CHECK(k < n);  // also stops a cycle
    AssertBlockValid(b, cls, pool);
  }
  ASSAY_CHECK(k == n);
}

// The span counting invariant (segment.h): walks the free list.
void AssertSpanValid(const Span* span, size_t cls, Pool pool) {
  const SizeClassInfo& c = kClasses[cls];
  ASSAY_CHECK(span->kind == KindOf(pool) && span->cls == cls);
  ASSAY_CHECK(span->slices == SpanSlices(cls, pool));
  const uint32_t span_bytes = static_cast<uint32_t>(span->slices * kSliceSize);
  ASSAY_CHECK(span->bump % c.size == 0 && span->bump <= span_bytes);
  const uint32_t capacity = span_bytes / c.size;
  const uint32_t carved = span->bump / c.size;
  const uintptr_t start = reinterpret_cast<uintptr_t>(SpanStart(span));
  uint32_t nfree = 0;
  for (const void* b = span->free_list; b != nullptr; b = link::Load(b)) {
    ASSAY_CHECK(nfree < carved);  // also stops a cycle
    const uintptr_t a = reinterpret_cast<uintptr_t>(b);
    ASSAY_CHECK(a >= start && a - start < span->bump);
    ASSAY_CHECK(IsBlockOffset(c, static_cast<uint32_t>(a - start)));
    ASSAY_CHECK(!span_purge::OnPurged(span, static_cast<uint32_t>(a - start), c.size));
    ++nfree;
  }
  // Purged units lie wholly below bump; their blocks are counted apart.
  const uint64_t purged_units = span_purge::Purged(span);
  ASSAY_CHECK(purged_units == 0 || 64 - std::countl_zero(purged_units) <=
                                       static_cast<int>(span->bump / span_purge::Unit(span)));
  const uint32_t npurged = span_purge::CountPurgedBlocks(span, c.size);
  ASSAY_CHECK((purged_units == 0) == (npurged == 0));
  ASSAY_CHECK(span->used + nfree + npurged + (capacity - carved) == capacity);
  ASSAY_CHECK(span->in_list <= 1);
  if (span->in_list) {
    ASSAY_CHECK(span->used > 0 && (nfree > 0 || npurged > 0 || carved < capacity));
  } else {  // off the list: full, or the class's kept empty span
    ASSAY_CHECK(span->used == 0 || (nfree == 0 && npurged == 0 && carved == capacity));
  }
}

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
      static_cast<size_t>(std::popcount(span_purge::Purged(span))) * span_purge::Unit(span);
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

size_t Take(size_t cls, size_t want, void** head, Pool pool, size_t whole) {
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

void Give(size_t cls, void* head, size_t n, Pool pool) {
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

void AssertBlockValid(const void* block, size_t cls, Pool pool) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(block);
  ASSAY_CHECK(segment_map::Contains(a));
  const Segment* seg = SegmentOf(a);
  SliceEntry e;
  __atomic_load(&seg->slice_map[SliceOf(a)], &e, __ATOMIC_RELAXED);
  ASSAY_CHECK(e.cls == (pool == kSampled ? 0 : cls));
  const Span* span = &seg->spans[e.first];
  ASSAY_CHECK(span->kind == KindOf(pool) && span->cls == cls && span->first == e.first);
  const uint32_t offset = static_cast<uint32_t>(a - reinterpret_cast<uintptr_t>(SpanStart(span)));
  ASSAY_CHECK(IsBlockOffset(kClasses[cls], offset));
  // bump only grows while a block of the span is out: a racy read is safe.
  ASSAY_CHECK(offset < __atomic_load_n(&span->bump, __ATOMIC_RELAXED));
  // No unit the block overlaps is purged while it is out (only units that
  // free blocks cover are): a racy read of the other bits is safe too.
  const uint64_t purged = __atomic_load_n(&span->aux, __ATOMIC_RELAXED);
  ASSAY_CHECK((purged & span_purge::UnitBits(offset, kClasses[cls].size, span_purge::Unit(span))) ==
              0);
}

namespace {

struct Tally {
  size_t spans;
  size_t slices;
  size_t used;
  size_t in_list;
  size_t idle;          // spans with used == 0
  size_t purged_bytes;  // of their purged units
};

void TallySegment(const Segment* seg, void* arg) {
  auto* tally = static_cast<Tally(*)[kNumClasses]>(arg);
  for (size_t i = 1; i < kSlicesPerSegment;) {
    const Span& s = seg->spans[i];
    if ((seg->free_mask >> i) & 1) {
      ++i;
      continue;
    }
    if (s.kind == SpanKind::kSmall || s.kind == SpanKind::kSampled) {
      const Pool pool = s.kind == SpanKind::kSampled ? kSampled : kNormal;
      ASSAY_CHECK(s.cls != 0 && s.cls < kNumClasses);
      AssertSpanValid(&s, s.cls, pool);
      Tally& t = tally[pool][s.cls];
      t.spans++;
      t.slices += s.slices;
      t.used += s.used;
      t.in_list += s.in_list;
      t.idle += s.used == 0;
      t.purged_bytes +=
          static_cast<size_t>(std::popcount(span_purge::Purged(&s))) * span_purge::Unit(&s);
    }
    i += s.slices;  // Segment::Validate (page heap walk) checked slices != 0
  }
}

}  // namespace

void AssertValidLocked(const uint32_t* cached, const uint32_t* sampled_cached) {
  Tally tally[2][kNumClasses] = {};
  page_heap::ForEachSegmentLocked(TallySegment, tally);
  for (int p = kNormal; p <= kSampled; ++p) {
    const Pool pool = static_cast<Pool>(p);
    for (size_t cls = 0; cls < kNumClasses; ++cls) {
      const ClassList& l = g_lists[pool][cls];
      const Tally& t = tally[pool][cls];
      if (cls == 0) {
        ASSAY_CHECK(l.nbatches == 0 && l.nonempty == nullptr && l.empty_kept == nullptr);
        ASSAY_CHECK(t.spans == 0);
        continue;
      }
      const SizeClassInfo& c = kClasses[cls];
      ASSAY_CHECK(l.nbatches <= kTransferSlots);
      size_t transfer = 0;
      for (uint32_t i = 0; i < l.nbatches; ++i) {
        ASSAY_CHECK(l.batches[i].count >= c.batch && l.batches[i].count <= c.max_cached);
        AssertBatchValid(l.batches[i].head, l.batches[i].count, cls, pool);
        transfer += l.batches[i].count;
      }
      ASSAY_CHECK(l.stats.transfer_blocks == transfer);
      ASSAY_CHECK(transfer <= TransferCap(c) + kTransferSlots * c.batch);
      size_t listed = 0;
      const Span* prev = nullptr;
      for (const Span* s = l.nonempty; s != nullptr; prev = s, s = s->next) {
        ASSAY_CHECK(listed++ < t.in_list);  // also stops a cycle
        ASSAY_CHECK(s->prev == prev && s->in_list == 1);
        ASSAY_CHECK(s->kind == KindOf(pool) && s->cls == cls);
      }
      ASSAY_CHECK(listed == t.in_list);
      if (const Span* k = l.empty_kept) {
        ASSAY_CHECK(k->kind == KindOf(pool) && k->cls == cls);
        ASSAY_CHECK(k->used == 0 && k->in_list == 0);
        ASSAY_CHECK(k->slices == 1 || pool == kSampled);
      }
      ASSAY_CHECK(t.idle == (l.empty_kept != nullptr ? 1u : 0u));  // no other span sits idle
      ASSAY_CHECK(l.stats.spans == t.spans);
      ASSAY_CHECK(l.stats.span_bytes == t.slices * kSliceSize);
      ASSAY_CHECK(l.stats.blocks_out == t.used);
      ASSAY_CHECK(l.stats.purged_bytes == t.purged_bytes);
      // Blocks in transfer batches and in the thread caches walked are out.
      const uint32_t* walked = pool == kNormal ? cached : sampled_cached;
      const size_t in_caches = walked != nullptr ? walked[cls] : 0;
      ASSAY_CHECK(transfer + in_caches <= l.stats.blocks_out);
    }
  }
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

// The central lists' checked-build walks (central.h, central_lists.h):
// batches, spans, blocks handed out, and every list's counters against the
// spans the page heap holds.
#include <bit>

#include "alloc/central.h"
#include "alloc/central_lists.h"
#include "alloc/free_link.h"
#include "alloc/page_heap.h"
#include "alloc/span_purge.h"
#include "base/assert.h"
#include "base/bits.h"

namespace assay::internal::central {

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
          static_cast<size_t>(Popcount(span_purge::Purged(&s))) * span_purge::Unit(&s);
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

}  // namespace assay::internal::central

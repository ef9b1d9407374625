// The page heap's invariants (page_heap.h: AssertValidLocked; segment.h:
// Segment::Validate), checked by tests and by the checked build.
#include <bit>

#include "alloc/page_heap_state.h"
#include "alloc/purge_pace.h"
#include "base/assert.h"
#include "base/bits.h"
#include "base/os.h"

namespace assay::internal {

void Segment::Validate() const {
  ASSAY_CHECK(magic == kSegmentMagic);
  ASSAY_CHECK(spans[0].kind == SpanKind::kHeader && spans[0].slices == 1);
  ASSAY_CHECK((dirty_mask & ~free_mask) == 0);  // a dirty slice is free
  ASSAY_CHECK((free_mask & 1) == 0);            // the header is never free
  size_t i = 1;
  while (i < kSlicesPerSegment) {
    if ((free_mask >> i) & 1) {
      ASSAY_CHECK(slice_map[i].cls == 0);
      ASSAY_CHECK(spans[i].kind == SpanKind::kFree);
      ++i;
      continue;
    }
    const Span& s = spans[i];
    ASSAY_CHECK(s.first == i && s.slices != 0 && i + s.slices <= kSlicesPerSegment);
    ASSAY_CHECK(s.kind == SpanKind::kSmall || s.kind == SpanKind::kLarge ||
                s.kind == SpanKind::kSampled);
    // Each slice lies in exactly one span: the run is wholly in use, maps to
    // its first slice, and only the first slice holds a Span.
    for (size_t j = i; j < i + s.slices; ++j) {
      ASSAY_CHECK(((free_mask >> j) & 1) == 0);
      ASSAY_CHECK(slice_map[j].first == i);
      ASSAY_CHECK(slice_map[j].cls == (s.kind == SpanKind::kSmall ? s.cls : 0));
      ASSAY_CHECK(j == i || spans[j].kind == SpanKind::kFree);
    }
    i += s.slices;
  }
}

namespace page_heap {

void AssertValidLocked() {
  size_t nseg = 0;
  uint64_t dirty = 0, clean = 0, large_spans = 0, large_slices = 0;
  const uint64_t now = os::NowMs();
  const Segment* prev = nullptr;
  for (const Segment* seg = g_heap.head; seg != nullptr; prev = seg, seg = seg->next, ++nseg) {
    ASSAY_CHECK(seg->prev == prev);
    ASSAY_CHECK(segment_map::Contains(seg->Base()));
    ASSAY_CHECK(seg->layout_version == kSegmentLayoutVersion);
    seg->Validate();
    // The mask index mirrors the list, in its order.
    ASSAY_CHECK(nseg < g_heap.nslots && g_heap.slots[nseg].seg == seg);
    ASSAY_CHECK(g_heap.slots[nseg].free_mask == seg->free_mask);
    ASSAY_CHECK(g_heap.slots[nseg].dirty_mask == seg->dirty_mask);
    for (uint64_t d = seg->dirty_mask; d != 0; d &= d - 1) {
      ASSAY_CHECK(purge_pace::TimeOf(seg->freed_at_ms[std::countr_zero(d)]) <= now);
    }
    dirty += static_cast<uint64_t>(Popcount(seg->dirty_mask));
    clean += static_cast<uint64_t>(Popcount(seg->free_mask & ~seg->dirty_mask));
    for (size_t i = 1; i < kSlicesPerSegment; ++i) {
      const Span& s = seg->spans[i];
      if (s.kind != SpanKind::kLarge) continue;
      large_spans++;
      large_slices += s.slices;
    }
  }
  ASSAY_CHECK(g_heap.tail == prev);
  ASSAY_CHECK(nseg == g_heap.nslots && g_heap.nslots <= g_heap.slot_capacity);
  ASSAY_CHECK(g_heap.stats.segments == nseg);
  ASSAY_CHECK(g_heap.stats.mapped == nseg * kSegmentSize);
  ASSAY_CHECK(g_heap.stats.dirty == dirty * kSliceSize);
  ASSAY_CHECK(g_heap.stats.free_clean == clean * kSliceSize);
  ASSAY_CHECK(g_heap.stats.large_spans == large_spans);
  ASSAY_CHECK(g_heap.stats.large_bytes == large_slices * kSliceSize);
}

}  // namespace page_heap
}  // namespace assay::internal

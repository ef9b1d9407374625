// The page heap's state, shared by its files: page_heap.cc (spans in and
// out, purging), page_heap_check.cc (the invariants) and slice_purge.cc.
#pragma once

#include <cstddef>
#include <cstdint>

#include "alloc/page_heap.h"
#include "alloc/segment.h"
#include "base/lock.h"

namespace assay::internal::page_heap {

// A compact copy of every segment's masks, in the list's order (oldest
// first), so that AllocSpan's first fit reads one array instead of a header
// in every segment: each header sits in its own 4 MiB segment, so walking
// them was a TLB and a cache miss per segment (the two mask loads were 90%
// of AllocSpan's samples on fragment, with ~130 segments).
struct MaskSlot {
  Segment* seg;
  uint64_t free_mask;
  uint64_t dirty_mask;
};

// Invariants (AssertValidLocked), all under mu:
//  - slots[k] mirrors the k-th segment of the list (nslots == stats.segments);
//  - stats.dirty == sum of popcount(dirty_mask) * kSliceSize, stats.free_clean
//    == sum of popcount(free_mask & ~dirty_mask) * kSliceSize, stats.mapped
//    == segments * kSegmentSize; large_spans/large_bytes count kLarge spans.
struct State {
  Mutex mu;
  Segment* head = nullptr;  // oldest first
  Segment* tail = nullptr;
  Stats stats{};
  MaskSlot* slots = nullptr;  // one per segment, oldest first
  size_t nslots = 0;
  size_t slot_capacity = 0;
  uint32_t hint[256] = {};  // (segment base >> 22) % 256 -> a slot index to try first
};

extern State g_heap;

// The mask bits of slices [first, first + n) of a segment.
inline uint64_t RunBits(size_t first, size_t n) {
  return (n >= 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1)) << first;
}

}  // namespace assay::internal::page_heap

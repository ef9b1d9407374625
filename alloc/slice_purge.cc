// Purging a segment's free slices (slice_purge.h).
#include "alloc/slice_purge.h"

#include <bit>

#include "alloc/page_heap_state.h"
#include "alloc/purge_pace.h"
#include "base/os.h"
#include "base/probes.h"

namespace assay::internal::page_heap::slice_purge {

// Purges the dirty slices of seg selected by `bits`, in runs; each keeps
// the purge time as its stamp, with the dense bit it had (purge_pace.h).
size_t Purge(Segment* seg, uint64_t bits, uint64_t now_ms) {
  for (uint64_t b = bits; b != 0; b &= b - 1) {
    const size_t i = static_cast<size_t>(std::countr_zero(b));
    const bool dense = purge_pace::IsDense(seg->freed_at_ms[i]);
    if (dense) purge_pace::PurgedDense();
    seg->freed_at_ms[i] = now_ms | (dense ? purge_pace::kDenseBit : 0);
  }
  size_t released = 0;
  while (bits != 0) {
    const size_t start = static_cast<size_t>(std::countr_zero(bits));
    const size_t len = static_cast<size_t>(std::countr_one(bits >> start));
    os::Purge(seg->SliceAddress(start), len * kSliceSize);
    ASSAY_PROBE2(purge, seg->SliceAddress(start), len * kSliceSize);
    released += len * kSliceSize;
    bits &= ~RunBits(start, len);
  }
  return released;
}

// Of the dirty slices of seg in `bits` (old enough for a sparse slice, not
// yet classified), returns the sparse ones and marks the dense ones, from
// their resident pages (mincore, a call a run; each slice is classified
// once while it waits: at 10 ms passes, ~1% of the pass on sizemix).
uint64_t Sparse(Segment* seg, uint64_t bits) {
  constexpr size_t kPages = kSliceSize / kPageSize;
  static_assert(kPages % 8 == 0);
  uint64_t sparse = 0;
  while (bits != 0) {
    const size_t start = static_cast<size_t>(std::countr_zero(bits));
    const size_t len = static_cast<size_t>(std::countr_one(bits >> start));
    unsigned char resident[kSlicesPerSegment * kPages];
    if (!os::Resident(seg->SliceAddress(start), len * kSliceSize, resident)) return bits;
    for (size_t i = 0; i < len; ++i) {
      // Sums the slice's 0/1 bytes eight at a time (byte sums of a word by a
      // multiply: each is at most 8, no carry between bytes).
      size_t n = 0;
      for (size_t j = 0; j < kPages; j += 8) {
        uint64_t w;
        __builtin_memcpy(&w, &resident[i * kPages + j], 8);
        n += static_cast<size_t>((w * 0x0101010101010101u) >> 56);
      }
      if (purge_pace::Dense(n)) {
        seg->freed_at_ms[start + i] |= purge_pace::kDenseBit;
      } else {
        sparse |= uint64_t{1} << (start + i);
      }
    }
    bits &= ~RunBits(start, len);
  }
  return sparse;
}

}  // namespace assay::internal::page_heap::slice_purge

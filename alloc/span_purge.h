// Free pages inside partly used small spans, returned to the OS: a span's
// memory is cut into at most 64 purge units (a page for spans of up to four
// slices, span bytes / 64 above); a unit that no live block overlaps is
// purged (MADV_DONTNEED), its free blocks taken off the span's free list
// (their links would read as zero), and carved again when the span's free
// list runs dry. The units' mask is the small span's Span::aux. Every call
// needs the span's class lock (central.cc), but reading the mask.
#pragma once

#include "alloc/segment.h"

namespace assay::internal::span_purge {

inline constexpr uint32_t kMaxUnits = 64;  // bits of the mask

// The mask of a small span's purged units.
ASSAY_INLINE uint64_t Purged(const Span* s) { return s->aux; }

// Bytes of one purge unit of span s.
ASSAY_INLINE uint32_t Unit(const Span* s) {
  const size_t u = s->slices * kSliceSize / kMaxUnits;
  return static_cast<uint32_t>(u < kPageSize ? kPageSize : u);
}

// Bits of the units that bytes [offset, offset + size) of the span overlap.
ASSAY_INLINE uint64_t UnitBits(uint32_t offset, uint32_t size, uint32_t unit) {
  const uint32_t u0 = offset / unit;
  const uint32_t u1 = (offset + size - 1) / unit;
  const uint64_t upto = u1 >= 63 ? ~uint64_t{0} : (uint64_t{2} << u1) - 1;
  return upto & ~((uint64_t{1} << u0) - 1);
}

// Whether the block at offset lies (partly) on a purged unit of s.
ASSAY_INLINE bool OnPurged(const Span* s, uint32_t offset, uint32_t size) {
  return Purged(s) != 0 && (Purged(s) & UnitBits(offset, size, Unit(s))) != 0;
}

// Purges the units of s (blocks of `size` bytes) below bump that only free
// blocks overlap and that are not purged yet. Returns the bytes purged.
size_t PurgeFree(Span* s, uint32_t size);

// Pushes every block on a purged unit back on the free list and clears the
// mask. Returns the bytes that were purged (now in use again).
size_t Recarve(Span* s, uint32_t size);

// Carved blocks of s on purged units: free, on no list.
uint32_t CountPurgedBlocks(const Span* s, uint32_t size);

// The span's state as the purger's idle detection sees it, hashed to 7 bits
// (bit 0 clear: Span::purge_seen's bit 0 says "examined"): it changes with
// nearly every Take or Return that reaches the span. A change the hash
// misses (1 in 128) only lets the purger treat a busy span as idle once.
ASSAY_INLINE uint8_t StateKey(const Span* s) {
  const auto list = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(s->free_list) >> 3);
  const uint32_t h = list * 0x9E3779B1u ^ s->used * 0x85EBCA6Bu ^ s->bump;
  return static_cast<uint8_t>((h >> 24) & ~1u);
}

}  // namespace assay::internal::span_purge

// Segments and spans: the metadata every block is found through.
//
// A segment is a kSegmentSize-aligned mapping; its header (slice 0) holds a
// two-byte entry per slice for the free fast path and a Span per slice for
// everything else. A pointer's segment is `p & ~(kSegmentSize-1)`, its slice
// `(p >> kSliceShift) % kSlicesPerSegment`: no lock, no search. The segment
// map (one bit per possible segment address) tells whether a pointer lies in
// a segment at all, so a pointer assay never returned is recognised before
// any header is read.
#pragma once

#include "base/base.h"

namespace assay::internal {

enum class SpanKind : uint8_t {
  kFree = 0,  // slice belongs to no span (or is a non-first slice of a free run)
  kHeader,    // slice 0: the segment header itself
  kSmall,     // blocks of one size class, owned by that class's central list
  kLarge,     // one block of span_slices * kSliceSize bytes
  kSampled,   // blocks of one size class that hold sample points: their slice
              // map class is 0, so every free of them takes the slow path to
              // the profiler, while frees in kSmall spans never do
};

// A run of slices. Lives in the segment header, at the index of its first
// slice. Small-span fields are guarded by the central list of the span's
// class; kind/cls/slices change only under the page heap lock, while no
// block of the span is live.
//
// Counting invariant of a small or sampled span (capacity = slices *
// kSliceSize / size, carved = bump / size):
//   used + length(free_list) + purged + (capacity - carved) == capacity
// i.e. used + length(free_list) + purged == carved, where purged counts the
// carved blocks overlapping a purged unit (all free, on no list;
// alloc/span_purge.h). Every free_list block lies below bump at a block
// start and overlaps no purged unit. in_list == 1 iff the span is on its
// class's nonempty list, and then it has a free, purged or uncarved block.
struct Span {
  void* free_list;  // small: freed blocks of this span, linked through their first word
  uint32_t bump;    // small: offset of the first never-handed-out block (lazy carving);
                    // a multiple of the class size, <= slices * kSliceSize
  uint32_t used;    // small: blocks handed out (in thread caches, transfer batches or the program)
  Span* next;       // small: in the class's list of spans with free blocks
  Span* prev;
  SpanKind kind;
  uint8_t cls;         // small: the size class
  uint8_t first;       // index of the first slice of this span in its segment
  uint8_t slices;      // length of the span in slices
  uint8_t in_list;     // small: 1 while on the class's list of spans with free blocks
  uint8_t sampled;     // large: the block holds a sample point (the profiler has its entry)
  uint8_t purge_seen;  // small: the purger's snapshot of the span's state (span_purge.h)
  uint8_t cached;      // large: 1 while the span is a free run in a thread's slice-run cache
                       // (alloc/large_cache.h): free to walkers and stats, not to the page heap
  // Large: bytes requested. Small: bit i set while purge unit i of the span
  // is returned to the OS (span_purge.h; read it as span_purge::Purged).
  // One field for both keeps Span at 48 bytes and the segment header in one
  // page (it is resident in every segment).
  uint64_t aux;
};

// The free fast path reads only this: two bytes per slice, one load.
// Aligned to its size: Decode reads it with one atomic 2-byte load.
struct alignas(2) SliceEntry {
  uint8_t cls;    // size class if the slice is in a small span, else 0 (take the slow path)
  uint8_t first;  // index of the first slice of the span holding this slice
};

inline constexpr uint64_t kSegmentMagic = 0x6173736179736567ull;  // "assayseg"
inline constexpr uint32_t kSegmentLayoutVersion = 1;
inline constexpr uint64_t kAllSpanSlices = ~uint64_t{1};  // every slice but the header

// The segment header. Invariants (Segment::Validate; the checked build runs
// it at every span change):
//  - slice 0 is kHeader; every other slice is either free (its bit in
//    free_mask) or inside exactly one span whose Span sits at spans[first];
//    spans[i] of a free slice or a span's later slice is kFree (zero);
//  - dirty_mask is a subset of free_mask;
//  - slice_map[i].cls != 0 only for slices of kSmall spans.
struct Segment {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t pad;
  SliceEntry slice_map[kSlicesPerSegment];
  Span spans[kSlicesPerSegment];
  // Guarded by the page heap lock:
  uint64_t free_mask;   // bit i: slice i is free
  uint64_t dirty_mask;  // bit i: free slice i may be resident (not purged since use)
  // A dirty slice: when it was freed; a clean one: 0 if never used, else
  // when it was purged; with purge_pace::kDenseBit for a dense slice.
  uint64_t freed_at_ms[kSlicesPerSegment];
  uint64_t empty_since_ms;  // when the segment last became wholly free
  Segment* next;            // in the page heap's list, oldest first
  Segment* prev;

  uintptr_t Base() const { return reinterpret_cast<uintptr_t>(this); }
  char* SliceAddress(size_t i) const { return reinterpret_cast<char*>(Base() + i * kSliceSize); }
  // Aborts with a description if an invariant above does not hold.
  void Validate() const;
};
static_assert(sizeof(Segment) <= kSliceSize, "the header must fit in slice 0");

ASSAY_INLINE Segment* SegmentOf(uintptr_t a) {
  return reinterpret_cast<Segment*>(a & ~(kSegmentSize - 1));
}
ASSAY_INLINE size_t SliceOf(uintptr_t a) { return (a >> kSliceShift) & (kSlicesPerSegment - 1); }
ASSAY_INLINE Segment* SegmentOfSpan(const Span* s) {
  return SegmentOf(reinterpret_cast<uintptr_t>(s));
}
ASSAY_INLINE char* SpanStart(const Span* s) { return SegmentOfSpan(s)->SliceAddress(s->first); }

// A pointer inside a segment, decoded: its segment, the slice-map entry of
// its slice, and its offset from the start of the span holding it. The one
// decode of the free fast path, realloc's and Locate.
struct DecodedPointer {
  Segment* seg;
  SliceEntry e;     // cls 0: not in a plain small span
  uint32_t offset;  // bytes from the span's first slice
};
ASSAY_INLINE DecodedPointer Decode(uintptr_t a) {
  Segment* seg = SegmentOf(a);
  // &seg->slice_map[SliceOf(a)], with the slice's byte offset taken from the
  // address in one mask ((a >> 15) & 126 = 2 * slice), so that the map's own
  // offset becomes the load's displacement: one instruction less on free's
  // fast path than the indexed form, which compilers build as (slice + 8) * 2.
  static_assert(sizeof(SliceEntry) == 2);
  const uintptr_t entry = reinterpret_cast<uintptr_t>(seg->slice_map) +
                          ((a >> (kSliceShift - 1)) & ((kSlicesPerSegment - 1) * 2));
  SliceEntry e;
  __atomic_load(reinterpret_cast<const SliceEntry*>(entry), &e, __ATOMIC_RELAXED);
  return {seg, e, static_cast<uint32_t>(a - seg->Base() - e.first * kSliceSize)};
}

// One bit per kSegmentSize of the address space: set while a segment is
// mapped there. 2^25 bits = 4 MiB of zero-filled .bss, touched sparsely.
namespace segment_map {
inline constexpr size_t kWords = (size_t{1} << (kAddressBits - kSegmentShift)) / 64;
extern uint64_t g_bits[kWords];

ASSAY_INLINE bool Contains(uintptr_t a) {
  const uintptr_t idx = a >> kSegmentShift;
  if (ASSAY_UNLIKELY(idx >= kWords * 64)) return false;
  return (__atomic_load_n(&g_bits[idx / 64], __ATOMIC_RELAXED) >> (idx % 64)) & 1;
}
void Set(uintptr_t segment_base, bool present);
}  // namespace segment_map

}  // namespace assay::internal

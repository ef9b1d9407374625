// The central lists' shared state (central.cc) and their checked-build
// walks (central_check.cc): private to those two files, as central.h is the
// lists' interface to the rest of the allocator.
#pragma once

#include <array>

#include "alloc/central.h"
#include "alloc/segment.h"
#include "alloc/size_classes.h"
#include "base/lock.h"

namespace assay::internal::central {

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
extern ClassList g_lists[2][kNumClasses];  // [pool][cls], in central.cc

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

// Checked-build walks (central_check.cc): the n blocks linked from head (a
// batch moving to or from a thread), and a span's counting invariant
// (segment.h), which walks its free list.
void AssertBatchValid(const void* head, size_t n, size_t cls, Pool pool);
void AssertSpanValid(const Span* span, size_t cls, Pool pool);

}  // namespace assay::internal::central

// The purge pace: how long a free slice of the page heap stays dirty before
// the purger gives its pages back. A sparse slice (few pages resident) is
// purged after decay_ms (ASSAY_OPTIONS); a dense one (freed memory the
// program wrote all over, which a reuse faults in again page by page) after
// the dense decay, which lengthens while purged dense slices are handed out
// again soon and shortens back to decay_ms once they stay unused.
#pragma once

#include "base/base.h"

namespace assay::internal::purge_pace {

// Segment::freed_at_ms holds a stamp: a time in ms, and kDenseBit once the
// slice is known dense (a dirty slice: classified while it waited; a clean
// one: dense when purged). Never-used slices hold 0.
inline constexpr uint64_t kDenseBit = uint64_t{1} << 63;
ASSAY_INLINE uint64_t TimeOf(uint64_t stamp) { return stamp & ~kDenseBit; }
ASSAY_INLINE bool IsDense(uint64_t stamp) { return (stamp & kDenseBit) != 0; }

// Whether a slice with `resident` of its kSliceSize / kPageSize pages in
// memory counts as dense.
bool Dense(size_t resident);

// Everything below runs under the page heap lock.

// The age at which dense dirty slices are purged at now_ms, for a floor of
// base_ms (0: purge everything now: 0). Called once a purge pass; it closes
// the measuring window every kWindowMs and adapts.
uint64_t DenseDecay(uint64_t now_ms, uint64_t base_ms);

// A dense slice was purged.
void PurgedDense();
// Whether a dense slice was ever purged (AllocSpan looks at its clean
// slices' stamps only then: bigalloc's spans are 4-32 fresh slices).
extern bool g_any_dense;

// A clean slice with this stamp is being handed out again (its pages will
// be faulted in as they are touched); reads the clock for dense ones only.
void Reused(uint64_t stamp);

// The current dense decay (for stats and tests; 0 before the first pass).
uint64_t Current();

}  // namespace assay::internal::purge_pace

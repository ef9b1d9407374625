// The page heap's work on one segment's free slices when it purges
// (page_heap::Purge, under its lock): returning them to the OS, and telling
// the sparse ones (few pages resident: purged after the decay time) from
// the dense (purged after the longer dense decay, purge_pace.h).
#pragma once

#include <cstdint>

#include "alloc/segment.h"

namespace assay::internal::page_heap::slice_purge {

// Purges the dirty slices of seg in `bits`, in runs (madvise), each
// stamped with the purge time and the dense bit it had; returns the bytes.
size_t Purge(Segment* seg, uint64_t bits, uint64_t now_ms);

// Of the dirty slices of seg in `bits` (not yet classified), returns the
// sparse ones and marks the dense ones in their stamps (mincore: one call a
// run of slices).
uint64_t Sparse(Segment* seg, uint64_t bits);

}  // namespace assay::internal::page_heap::slice_purge

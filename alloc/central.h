// Central free lists: one per size class, shared by all threads. They refill
// thread caches in batches and take batches back (this is also where blocks
// freed by another thread end up). Each keeps a small transfer cache of whole
// batches and chains (a consumer thread's whole list), so blocks that move
// between threads skip the span bookkeeping.
#pragma once

#include "alloc/segment.h"
#include "alloc/size_classes.h"

struct AssayLayout;

namespace assay::internal::central {

// Two pools of spans per class: kNormal serves the thread caches; kSampled
// holds only blocks that carry sample points (SpanKind::kSampled), so the
// profiler's blocks never share a span with ordinary ones.
enum Pool : int { kNormal = 0, kSampled = 1 };

// Takes up to `want` (>= 1) blocks of class cls, linked through their first
// word and null-terminated, into *head; returns how many (0: out of memory).
// When the first span it takes from has at most `whole` freed blocks on its
// free list, it takes that list whole (then up to max(want, whole) blocks).
// The transfer cache's newest chain comes whole, without a walk, when it
// has at most want blocks, or max_cached when whole > 0 (a thread list's
// refill, whose bound then grows to hold it).
size_t Take(size_t cls, size_t want, void** head, Pool pool = kNormal, size_t whole = 0);

// Gives back n blocks of class cls linked from head (null-terminated): a
// batch is kept whole in the transfer cache while it has a free slot;
// anything else goes back to the spans block by block.
void Give(size_t cls, void* head, size_t n, Pool pool = kNormal);

// Gives back a chain of any length (the whole list of a thread that only
// frees the class) to the normal pool: kept whole in the transfer cache
// while it has a slot and the chain has at most max_cached blocks and fits
// under the cache's cap; else back to the spans, a batch per lock hold.
void GiveChain(size_t cls, void* head, size_t n);

// Returns transfer-cache batches and kept empty spans to the spans and the
// page heap: all of them, or only those of classes untouched since the
// previous call with idle_only. Returns bytes handed to the page heap.
size_t Drain(bool idle_only);

// Visits the spans with free blocks of every class: a span untouched since
// the previous visit (no Take or Return reached it; every span with
// idle_only false) has the pages that only free blocks overlap purged
// (alloc/span_purge.h), once per idle period. Returns the bytes purged;
// *pending tells whether a span with a free page's worth of free blocks
// still waits for a second visit.
size_t PurgeIdleSpans(bool idle_only, bool* pending);

// Whether the last PurgeIdleSpans left work: a span waiting for its second
// visit, or a class touched since the visit before (its spans may have
// gained free pages). The purger stays awake (at the drain cadence) while so.
bool SpanPurgePending();

struct ClassStats {
  size_t spans;            // spans of this class
  size_t span_bytes;       // their bytes
  size_t blocks_out;       // blocks held by threads or the program
  size_t transfer_blocks;  // free blocks in the transfer cache
  size_t purged_bytes;     // free bytes of partly used spans returned to the OS
  size_t purged_total;     // cumulative bytes purged from partly used spans
};
ClassStats GetClassStats(size_t cls, Pool pool = kNormal);

// Aborts (base/assert.h) unless block is a carved block start of a span of
// class cls and the pool's kind. Needs no lock while the block is out of its
// span (in a thread cache or a batch).
void AssertBlockValid(const void* block, size_t cls, Pool pool);

// Aborts unless every class list and span satisfies the invariants beside
// their fields (segment.h Span, central.cc ClassList). cached[cls] (may be
// null) counts the blocks of class cls held in the thread caches the caller
// walked. The caller holds every list lock and the page heap lock
// (LockForFork of both).
void AssertValidLocked(const uint32_t* cached);

void LockForFork();
void UnlockAfterFork(bool child);

// Fills this part's fields of the layout descriptor (init/init.cc).
void DescribeLayout(AssayLayout* l);

}  // namespace assay::internal::central

// The page heap: hands out runs of slices (spans) from segments, takes them
// back, purges free slices after the decay time and unmaps empty segments.
// One lock guards it; it is taken below the central lists' locks, never
// above them.
#pragma once

#include "alloc/segment.h"

struct AssayLayout;

namespace assay::internal::page_heap {

// A span of `slices` slices of the given kind (kSmall carving class `cls`, or
// kLarge), or nullptr when the OS has no memory. *zeroed tells whether its
// memory is known to read as zero (fresh or purged).
Span* AllocSpan(size_t slices, SpanKind kind, uint8_t cls, bool* zeroed);

// Gives a span back; its slices become free and dirty (purged after decay).
void FreeSpan(Span* span);

// Grows or shrinks a large span in place to `slices`; false if the slices
// after it are not free (the span is then unchanged).
bool ResizeLargeInPlace(Span* span, size_t slices);

// Purges free slices that have been dirty for at least the decay in force
// (alloc/purge_pace.h: age_ms, lengthened while purged memory is reused
// soon; age_ms 0: all now), and unmaps segments that have been wholly free
// that long. Returns bytes released. Returns at once if another thread is
// purging and !wait.
size_t Purge(uint64_t now_ms, uint64_t age_ms, bool wait);

// True while some free slice waits to be purged.
bool HasDirty();

// Bytes of segments mapped (Stats::mapped, read without the lock).
size_t MappedBytes();

struct Stats {
  size_t segments;
  size_t mapped;          // bytes of segments
  size_t dirty;           // free and not yet purged
  size_t free_clean;      // free and purged (or never used)
  size_t purged_total;    // cumulative bytes purged
  size_t unmapped_total;  // cumulative bytes unmapped
  size_t large_spans;     // count of live large blocks
  size_t large_bytes;     // their bytes
};
Stats GetStats();

// Calls fn(segment, arg) for every segment, under the page heap lock.
void ForEachSegment(void (*fn)(const Segment*, void*), void* arg);
// The same, for a caller that holds the lock (LockForFork).
void ForEachSegmentLocked(void (*fn)(const Segment*, void*), void* arg);

// Aborts (base/assert.h) unless every segment passes Segment::Validate, the
// mask index mirrors the segment list, and the Stats counters match the
// masks and spans. The caller holds the lock (LockForFork).
void AssertValidLocked();

void LockForFork();
void UnlockAfterFork(bool child);

// Fills this part's fields of the layout descriptor (init/init.cc).
void DescribeLayout(AssayLayout* l);

}  // namespace assay::internal::page_heap

// Central free lists: one per size class, shared by all threads. They refill
// thread caches in batches and take batches back (this is also where blocks
// freed by another thread end up). Each keeps a small transfer cache of whole
// batches, so blocks that move between threads skip the span bookkeeping.
#pragma once

#include "alloc/segment.h"
#include "alloc/size_classes.h"

namespace assay::internal::central {

// Takes up to `want` (>= 1) blocks of class cls, linked through their first
// word and null-terminated, into *head; returns how many (0: out of memory).
size_t Take(size_t cls, size_t want, void** head);

// Gives back n blocks of class cls linked from head (null-terminated).
void Give(size_t cls, void* head, size_t n);

// Returns transfer-cache batches and kept empty spans to the spans and the
// page heap: all of them, or only those of classes untouched since the
// previous call with idle_only. Returns bytes handed to the page heap.
size_t Drain(bool idle_only);

struct ClassStats {
  size_t spans;           // spans of this class
  size_t blocks_out;      // blocks held by threads or the program
  size_t transfer_blocks; // free blocks in the transfer cache
};
ClassStats GetClassStats(size_t cls);

void LockForFork();
void UnlockAfterFork(bool child);

}  // namespace assay::internal::central

// The profiler's own memory: entries, events, stacks and tables. Comes from
// the allocator's metadata pages (never from malloc, so it is never sampled
// and never recurses), recycled through power-of-two free lists, and counted
// as profiler overhead in the statistics.
#pragma once

#include <cstddef>

namespace assay::profiler::arena {

// Zeroed memory of at least `size` bytes, aligned to 16; nullptr on OOM.
void* Alloc(size_t size);
// Alloc without the zeroing (contents unspecified), for a caller that writes
// every field: an entry is 152 bytes in a 256-byte class.
void* AllocUninit(size_t size);
// Gives back memory from Alloc(size) with the same size.
void Free(void* p, size_t size);
// Gives the calling thread's cached blocks back; the thread's later calls use
// the shared lists (called when the thread exits).
void FlushThread();
// Bytes obtained from the metadata pages so far (the profiler's footprint).
size_t FootprintBytes();
// Bytes handed out and not given back (blocks in threads' caches count).
size_t InUseBytes();

void LockForFork();
void UnlockAfterFork(bool child);

}  // namespace assay::profiler::arena

// The allocator's own memory (thread caches and other bookkeeping): a bump
// allocator over 1 MiB chunks from the OS, with a free list per caller.
// Never calls malloc; accounted for in the metadata statistics.
#pragma once

#include "base/base.h"

namespace assay::internal::meta {

// Zeroed memory for one object of `size` bytes (aligned to 64); nullptr on OOM.
void* Alloc(size_t size);

// Bytes the metadata chunks map.
size_t MappedBytes();

void LockForFork();
void UnlockAfterFork(bool child);

}  // namespace assay::internal::meta

// The allocator's operations above the fast paths: initialisation, the slow
// paths, calloc, realloc, aligned allocation, combined allocation, trim,
// statistics and fork. alloc/malloc_api.cc and alloc/new_delete.cc are thin
// shims over these and over the fast paths in thread_cache.h.
#pragma once

#include "assay/assay.h"
#include "base/base.h"

namespace assay::internal::heap {

// Reads ASSAY_OPTIONS and registers the thread-exit key and fork handlers,
// once (defined in init/init.cc, the one file that names every layer). Safe to call from any
// thread, and re-entrantly from allocations that initialisation itself causes.
void EnsureInit();

void* Calloc(size_t count, size_t size);
void* Realloc(void* p, size_t n);
// align must be a power of two; nullptr with errno ENOMEM on failure.
void* AlignedAlloc(size_t align, size_t n);
// Usable size of a live block; reports and aborts on a pointer assay never returned.
size_t UsableSize(const void* p);
int Comalloc(size_t n, const size_t* sizes, void** out);
void BulkFree(void** ptrs, size_t n);
size_t Trim();

// Takes every lock of the allocator and profiler (as before fork), and
// releases them (in the parent: child=false). Defined in init/init.cc.
void LockAll();
void UnlockAll(bool child);

// "assay: invalid <what> of 0x...", then abort.
[[noreturn]] void ReportInvalid(const char* what, const void* p);

}  // namespace assay::internal::heap

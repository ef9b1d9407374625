// The OS seam: every mmap, munmap, mremap, madvise, futex, clock, environment
// and stderr call of the allocator goes through here. None of these allocate,
// and none changes errno (the allocator's callers must see errno untouched
// unless an allocation fails).
#pragma once

#include "base/base.h"

namespace assay::internal::os {

// Fresh zeroed read-write memory, or nullptr. `align` is a power of two;
// alignments above the page size over-map and trim.
void* MapAligned(size_t size, size_t align);
void Unmap(void* p, size_t size);
// Grows or shrinks a mapping, moving it if needed; nullptr on failure (the
// old mapping is then untouched).
void* Remap(void* p, size_t old_size, size_t new_size);
// Gives the pages back: resident memory drops at once, contents read as zero.
void Purge(void* p, size_t size);
// Makes pages inaccessible (guard pages); true on success.
bool ProtectNone(void* p, size_t size);
// True if every page of [p, p + size) is mapped (p page-aligned); for the
// checked build's walks.
bool IsMapped(const void* p, size_t size);

// Futex wait while *word == expected (up to timeout_ms, or forever if < 0),
// and wake up to `count` waiters.
void FutexWait(const uint32_t* word, uint32_t expected, int64_t timeout_ms);
void FutexWake(const uint32_t* word, int count);

uint64_t NowMs();  // monotonic clock, milliseconds (coarse, vDSO)
uint64_t NowNs();  // monotonic clock, nanoseconds
uint64_t ThreadId();
void Yield();

// Reads an environment variable without allocating; nullptr if unset.
const char* GetEnv(const char* name);

// Writes to stderr without allocating or buffering.
void WriteStderr(const char* s, size_t n);
void WriteStderr(const char* s);
[[noreturn]] void Abort();

}  // namespace assay::internal::os

// The override seam between the allocator core and the debug heap
// (debug_heap/, ASSAY_DEBUG): the flags the core's slow paths test, once
// per entry, and the calls that hand a block to the debug heap. The core
// sees nothing else of it; the files of debug_heap/ define all of these.
#pragma once

#include "base/base.h"

namespace assay::internal::debug {

// True when ASSAY_DEBUG asked for any option: every allocation then comes
// here. Set once, during the allocator's initialisation, before any block
// is handed out, and never cleared.
extern bool g_on;
// Any guard option: some blocks are mapped debug blocks (free, realloc and
// malloc_usable_size look them up when the allocator does not know a pointer).
extern bool g_guard;
// `guard`: every block of a page or more is guarded.
extern bool g_guard_all_big;
// `guard=N` without the full debug heap (the production guard): the
// allocator stays as it is. Blocks up to kMaxTableSize are sampled by guard
// points that share the fast path's countdown with the profiler
// (profiler::EnableGuardSampling, CombinedLaw in profiler/sampler.h): a guard
// point every kGuardSampleBytes * N bytes on average, so a 64-byte block is
// guarded with probability about 1/N. Bigger blocks take the slow path anyway
// and are guarded with probability exactly 1/N (GuardOneInN).
extern bool g_guard_sampling;
bool GuardOneInN();
inline constexpr uint64_t kGuardSampleBytes = 64;
void* Alloc(size_t n, size_t align);
// A block of its own mapping against a guard page (the `guard` options
// outside the full debug heap).
void* AllocGuarded(size_t n, size_t align);
// If p is a mapped debug block, frees it (with free's checks) and returns
// true; false if p is not one.
bool FreeMapped(void* p);
// The requested size of mapped debug block p; false if p is not one.
bool MappedSize(const void* p, size_t* size);
// realloc of a mapped block (see GrowsInPlace): grows or shrinks in place
// while its room allows (a guarded block that sits against its guard page
// has none: it moves once to a grown one), else moves to a block with room
// for half as much again, so that a growing buffer is copied O(log n) times.
// nullptr (errno ENOMEM) on failure.
void* ReallocInPlace(void* p, size_t n);
// Whether realloc(p, n) takes ReallocInPlace: p is a mapped block and n still
// needs one: with `guard` (every block of a page or more guarded), p guarded
// and n a page or more; in the full debug heap, p not guarded and n too big
// for a small block. A block guarded by guard=N's sampling moves instead,
// sampled afresh.
bool GrowsInPlace(const void* p, size_t n);
void Free(void* p);
void* Realloc(void* p, size_t n);
// The size the block was requested with (what the program may use).
size_t UsableSize(const void* p);

// Flags p's block as holding a profiler entry (its free must tell the profiler).
void MarkProfiled(void* p);

// The calling thread is exiting: its magazine of free slots goes back to the
// central lists, and its later frees go there directly.
void FlushThread();

}  // namespace assay::internal::debug

// Compiler helpers and the allocator's fixed geometry (segment, slice and
// size-class limits). Every other file of alloc/ includes this first.
#pragma once

#include <cstddef>
#include <cstdint>

#define ASSAY_LIKELY(x) __builtin_expect(!!(x), 1)
#define ASSAY_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ASSAY_INLINE inline __attribute__((always_inline))
#define ASSAY_NOINLINE __attribute__((noinline))
#define ASSAY_EXPORT __attribute__((visibility("default")))
#define ASSAY_TLS __thread __attribute__((tls_model("initial-exec")))
// Code run once at start-up (initialisation, option parsing, the layout
// descriptor). The linker gathers .text.startup input sections (GNU ld's
// default script), so these functions sit together: the kernel faults text
// in by 64 KiB (fault-around), and spread over libassay.so's text they made
// a small program keep nearly all of it resident (docs/DESIGN.md, "Start-up
// footprint").
#define ASSAY_STARTUP __attribute__((section(".text.startup.assay")))
// The allocator's paths a process runs from its first allocations (the slow
// paths of the first refills, the first span and segment, the thread
// cache's creation; ~12 KiB): .text.hot input sections, which GNU ld's
// default script places right after .text.startup; the entry points
// (malloc_api.cc, new_delete.cc, first in the link) follow. Together they
// end within libassay.so's first 64 KiB (tests/footprint/text_layout.sh);
// spread over the text they kept a second 64 KiB window resident in every
// process. Placement only: the code is the same (but that GCC does not
// split a function with a section of its own into hot and cold parts).
#define ASSAY_FIRST_USE __attribute__((section(".text.hot.assay")))

namespace assay::internal {

// A segment is a 4 MiB-aligned, 4 MiB mapping cut into 64 slices of 64 KiB.
// Slice 0 holds the segment header; slices 1..63 hold spans. The header of
// any block's segment is found by masking the block's address.
inline constexpr size_t kSegmentShift = 22;
inline constexpr size_t kSegmentSize = size_t{1} << kSegmentShift;
inline constexpr size_t kSliceShift = 16;
inline constexpr size_t kSliceSize = size_t{1} << kSliceShift;
inline constexpr size_t kSlicesPerSegment = kSegmentSize / kSliceSize;  // 64
inline constexpr size_t kPageSize = 4096;

// Blocks up to kMaxSmallSize come from size classes; up to kMaxLargeSize
// from a run of slices in a segment; above that each block is its own
// mapping ("huge").
inline constexpr size_t kMaxSmallSize = 256 * 1024;
inline constexpr size_t kMaxLargeSize = 2 * 1024 * 1024;

// Alignment every block has (max_align_t on x86-64 and aarch64).
inline constexpr size_t kMinAlign = 16;

// The user part of the address space that segments may live in (47 bits:
// x86-64 4-level paging and aarch64 48-bit; higher addresses are never ours).
inline constexpr unsigned kAddressBits = 47;

// Tells the CPU we are spinning (x86 pause, arm yield).
ASSAY_INLINE void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

ASSAY_INLINE constexpr size_t AlignUp(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
ASSAY_INLINE constexpr bool IsPowerOfTwo(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

}  // namespace assay::internal

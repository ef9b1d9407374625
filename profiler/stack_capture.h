// Stack capture for sampled allocations: return addresses, innermost first,
// starting at the program's allocation site (the caller of malloc, new,
// calloc, ...): the profiler's and the allocator's own frames are cut off
// at the outermost entry-point frame (base/entry_points.h). Never
// allocates and never takes an allocator lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace assay::profiler {

enum class StackMethod : int {
  kUnwind = 0,        // libunwind (unw_backtrace): DWARF unwind info, right for any code
  kFramePointer = 1,  // walk the frame-pointer chain: fastest, exact only where
                      // every frame keeps frame pointers (assay's own build does)
};

// Most frames a stack may hold (the `depth` option is clamped to it).
inline constexpr size_t kMaxStackDepth = 256;

// Captures up to `max` frames into out; returns how many. For kFramePointer,
// [stack_lo, stack_hi) bounds the walk (the calling thread's stack).
size_t CaptureStack(uintptr_t* out, size_t max, StackMethod method, uintptr_t stack_lo,
                    uintptr_t stack_hi);

}  // namespace assay::profiler

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
  // The frames libunwind would give, found cheaply where the code allows:
  // the frame-pointer chain while every return address lies in code that
  // keeps frame pointers (fp_mappings.h), the thread's learned root frames
  // below it, libunwind for the whole stack otherwise. Needs the stack
  // bounds; without them it is kLibunwind.
  kUnwind = 0,
  kFramePointer = 1,  // walk the frame-pointer chain: fastest, exact only where
                      // every frame keeps frame pointers (assay's own build does)
  kLibunwind = 2,     // libunwind only (unw_step, then unw_backtrace): right for any code
};

// Most frames a stack may hold (the `depth` option is clamped to it).
inline constexpr size_t kMaxStackDepth = 256;

// Captures up to `max` frames into out; returns how many. For kFramePointer,
// [stack_lo, stack_hi) bounds the walk (the calling thread's stack).
size_t CaptureStack(uintptr_t* out, size_t max, StackMethod method, uintptr_t stack_lo,
                    uintptr_t stack_hi);

// Whether the calling thread's last CaptureStack (kUnwind) took its stack
// with the hybrid walk alone, through frame-pointer code of the program and
// assay itself only (objects never unloaded), and passed any check: then
// *first is the walk's entry frame record (fp_walk::Result::first) and *seq
// its table (stack_memo.h remembers such stacks).
bool LastStackWalked(uintptr_t* first, uint64_t* seq);

// A stack the thread walked before is taken again without a walk
// (stack_memo.h): counts it as a hybrid walk, true; false (walk it) where
// the walk is off for the thread or the process, or its check is due.
bool CountRepeatedStack();

// Stacks the calling thread took with the hybrid walk alone (no libunwind):
// for tests and benchmarks.
uint64_t ThreadHybridWalks();
// Stacks the calling thread stepped with libunwind (at most 8 are: its first
// stacks, or learning its root): for tests.
uint32_t ThreadSteppedStacks();
// Hybrid stacks of the calling thread taken again with libunwind to check
// the walk (its 256th, then 512, 1024, 2048 and 4096 stacks apart): for tests.
uint32_t ThreadHybridChecks();
// Roots the calling thread learned from the unwind tables (not from another
// thread's shape, nor with libunwind): for tests.
uint32_t ThreadRootsFromTables();
// Of ThreadHybridChecks, those the unwind tables passed (no libunwind).
uint32_t ThreadTableChecks();

}  // namespace assay::profiler

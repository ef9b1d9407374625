// Stack capture (stack_capture.h).
#include "profiler/stack_capture.h"

#include <libunwind.h>

#include <cstring>

#include "alloc/entry_points.h"

namespace assay::profiler {
namespace {

// Room for the profiler's and allocator's own frames above the entry point.
constexpr size_t kOwnFrames = 32;

__attribute__((noinline)) size_t WalkFramePointers(uintptr_t* out, size_t max, uintptr_t lo,
                                                   uintptr_t hi) {
  const uintptr_t* fp = static_cast<const uintptr_t*>(__builtin_frame_address(0));
  size_t n = 0;
  while (n < max) {
    const uintptr_t f = reinterpret_cast<uintptr_t>(fp);
    // A frame record is two words inside the stack, 8-aligned.
    if (f < lo || f + 2 * sizeof(uintptr_t) > hi || (f & 7) != 0) break;
    const uintptr_t ret = fp[1];
    if (ret < 4096) break;
    out[n++] = ret;
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(fp[0]);
    if (next <= fp) break;  // frames grow toward higher addresses; anything else is garbage
    fp = next;
  }
  return n;
}

}  // namespace

size_t CaptureStack(uintptr_t* out, size_t max, StackMethod method, uintptr_t stack_lo,
                    uintptr_t stack_hi) {
  if (max > kMaxStackDepth) max = kMaxStackDepth;
  uintptr_t buf[kMaxStackDepth + kOwnFrames];
  const size_t want = max + kOwnFrames;
  size_t n;
  if (method == StackMethod::kFramePointer && stack_hi > stack_lo) {
    n = WalkFramePointers(buf, want, stack_lo, stack_hi);
  } else {
    const int got = unw_backtrace(reinterpret_cast<void**>(buf), static_cast<int>(want));
    n = got > 0 ? static_cast<size_t>(got) : 0;
  }
  // The program's frames start after the outermost entry-point frame.
  size_t start = 0;
  for (size_t i = n; i-- > 0;) {
    if (internal::IsEntryFrame(buf[i])) {
      start = i + 1;
      break;
    }
  }
  size_t count = n - start;
  if (count > max) count = max;
  std::memcpy(out, buf + start, count * sizeof(uintptr_t));
  return count;
}

}  // namespace assay::profiler

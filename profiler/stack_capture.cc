// Stack capture (stack_capture.h).
#include "profiler/stack_capture.h"

// Local unwinding only: the unw_* names bind to libunwind.so's _UL* symbols.
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <cstring>

#include "base/base.h"
#include "base/entry_points.h"

namespace assay::profiler {
namespace {

// Room for the profiler's and allocator's own frames above the entry point.
constexpr size_t kOwnFrames = 32;

// unw_backtrace keeps a frame cache per thread: 256 KiB mapped and written
// (16384 slots: about 70 000 instructions and 64 page faults) on the
// thread's first call, unmapped at its exit. Warm, it walks a stack in about
// 1 100 instructions. An unw_step loop needs no such cache but goes through
// libunwind's global one, behind a lock that also blocks signals (two system
// calls a frame): about 7 000 instructions, and 10 us a stack against 1 us
// on the server workload at rate=1. The cache's 70 000 instructions are the
// extra cost of about ten stepped stacks, so a thread's first kSteppedStacks
// stacks are stepped: the many threads that sample once or twice
// (short-lived workers, pools at a low rate) never pay 256 KiB each.
constexpr uint32_t kSteppedStacks = 8;
ASSAY_TLS uint32_t tls_unwound_stacks;

size_t StepLoop(uintptr_t* out, size_t max) {
  unw_context_t context;
  unw_cursor_t cursor;
  if (unw_getcontext(&context) != 0 || unw_init_local(&cursor, &context) != 0) return 0;
  size_t n = 0;
  while (n < max && unw_step(&cursor) > 0) {
    unw_word_t ip;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
    out[n++] = ip;
  }
  return n;
}

size_t Unwind(uintptr_t* out, size_t max) {
  if (tls_unwound_stacks < kSteppedStacks) {
    ++tls_unwound_stacks;
    return StepLoop(out, max);
  }
  const int got = unw_backtrace(reinterpret_cast<void**>(out), static_cast<int>(max));
  return got > 0 ? static_cast<size_t>(got) : 0;
}

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
    n = Unwind(buf, want);
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

// The purger: returns free memory to the OS after the decay time
// (ASSAY_OPTIONS decay_ms) without waiting for a malloc call to come along.
// A background thread does it (started on first need, never while a lock of
// the allocator is held); with background_thread=0, or if the thread cannot
// start, the allocator's slow paths do it instead.
#pragma once

#include "base/base.h"

namespace assay::internal::purger {

// Called from slow paths with no allocator lock held, after memory became
// free (dirty slices, or blocks back in partly used spans while the thread
// sleeps: Asleep): starts or wakes the background thread, or purges inline.
void OnFreed();

// 1 while the background thread sleeps with nothing to do (no dirty slice,
// no span or class waiting for a visit), or does not run (not started yet,
// background_thread=0: OnFreed purges inline), so that free's slow path
// calls OnFreed when blocks go back to the central lists; 0 while the thread
// is awake. A wake missed in a race with falling asleep waits for the next
// free.
extern uint32_t g_asleep;
ASSAY_INLINE bool Asleep() { return __atomic_load_n(&g_asleep, __ATOMIC_RELAXED) != 0; }
// The background thread's state (thread: kNotStarted .. kFailed; sleeping:
// how it waits, kAwake while it runs a pass), written by the purger alone.
enum : uint32_t { kNotStarted = 0, kStarting, kRunning, kFailed };
enum : uint32_t { kAwake = 0, kIndefinitely, kUntilDrain };
struct ThreadWords {
  uint32_t thread = kNotStarted;
  uint32_t sleeping = kAwake;
};
extern ThreadWords g_words;

// Called after a slice run went into a thread's cache (large_cache.h), or
// small blocks overflowed a thread cache while dirty memory waits or the
// thread sleeps (free's slow path): as OnFreed, but with no fence and no
// clock while the thread is awake. A wake missed while the thread falls
// asleep costs a delay: at most a second (the thread fences every thread
// before sleeping indefinitely; a wait for the next span visit is 250 ms).
// The awake test is inline: two loads (out of line, with the options' read,
// it was ~16 instructions on every overflow of a thread's list while the
// page heap held dirty slices: 9% of fragment's profiler overhead, whose
// sampled spans leave dirty slices behind). A running thread means
// background_thread is on (StartThread is reached through it alone).
ASSAY_INLINE void OnCached() {
  if (ASSAY_LIKELY(__atomic_load_n(&g_words.thread, __ATOMIC_RELAXED) == kRunning &&
                   __atomic_load_n(&g_words.sleeping, __ATOMIC_RELAXED) == kAwake)) {
    return;
  }
  OnFreed();
}

// Whether the background thread is running (for tests and stats).
bool ThreadRunning();

void AfterForkChild();

}  // namespace assay::internal::purger

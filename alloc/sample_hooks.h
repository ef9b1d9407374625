// The seam between the allocator core and the profiler, the only header of
// the core the profiler includes and the only profiler names the core knows:
// the per-thread sampling countdown (owned by the profiler, carried in the
// thread cache so the fast path reads it next to its lists), the registry of
// every thread's countdown, and the hooks the core's slow paths call. The
// profiler (profiler/profiler.cc) defines the hooks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/base.h"

namespace assay::internal {

// A thread's sampling countdown. The fast path subtracts each request from
// `left` and takes the slow path when the result is negative; the slow path
// hands the allocation to profiler::OnSamplePoint, which counts the sample
// points in it and draws the next gap.
struct SampleCountdown {
  // Bytes of allocation left until the next sample point; kSampleNever
  // while no session runs. Read and written with relaxed atomics (plain
  // moves): the profiler stores into other threads' countdowns when a
  // session starts or stops.
  int64_t left;
  // The profiler epoch `left` was drawn for; a slow path that sees another
  // (profiler::Epoch()) calls profiler::SyncCountdown first. Owner thread only.
  uint32_t epoch;
  uint32_t unused;
};

inline constexpr int64_t kSampleNever = int64_t{1} << 62;

// The countdown's primitives. LeftAfter: what the countdown would hold
// after n more bytes (negative: a sample point lies in them). Set: stores it.
// Consume: both, when no sample point lies in the n bytes (false, countdown
// untouched, when one does: the caller takes the sampled path). The malloc
// fast path (thread_cache.h) folds LeftAfter's sign into its list test.
ASSAY_INLINE int64_t CountdownLeftAfter(const SampleCountdown* c, size_t n) {
  return __atomic_load_n(&c->left, __ATOMIC_RELAXED) - static_cast<int64_t>(n);
}
ASSAY_INLINE void CountdownSet(SampleCountdown* c, int64_t left) {
  __atomic_store_n(&c->left, left, __ATOMIC_RELAXED);
}
ASSAY_INLINE bool CountdownConsume(SampleCountdown* c, size_t n) {
  const int64_t left = CountdownLeftAfter(c, n);
  if (ASSAY_UNLIKELY(left < 0)) return false;
  CountdownSet(c, left);
  return true;
}

// The registry: calls fn(countdown, arg) for every live thread's countdown,
// with the thread registry locked (defined by alloc/thread_cache.cc). Both
// are ASSAY_FIRST_USE: a profiling session's start (MALLOC_PROF) calls them.
void ForEachCountdown(void (*fn)(SampleCountdown* c, void* arg), void* arg);
// The calling thread's countdown, or nullptr while it has no thread cache.
SampleCountdown* OwnCountdown();

}  // namespace assay::internal

namespace assay::profiler {

struct Entry;

// Bumped by every Start and Stop. A thread whose countdown holds another
// epoch calls SyncCountdown on its next slow path.
extern uint32_t g_epoch;
inline uint32_t Epoch() { return __atomic_load_n(&g_epoch, __ATOMIC_ACQUIRE); }

// Sets c for the session now running (a fresh draw, and its epoch), or to
// kSampleNever when none is.
void SyncCountdown(internal::SampleCountdown* c);

struct SampleDecision {
  uint64_t points;  // the profiler's sample points in the block
  bool record;      // record it (false: no point of the session's, or sampling suspended here)
  bool guard;       // a guard point lies in it (ASSAY_DEBUG=guard=N alone: guard it if small)
};

// An allocation of n bytes crosses c (c->left - n < 0): counts its sample
// points (the profiler's, and with guard sampling on whether a guard point
// lies in it: the countdown serves both, profiler/sampler.h CombinedLaw)
// and moves the countdown past it.
SampleDecision OnSamplePoint(internal::SampleCountdown* c, size_t n);

// Holds the calling thread as a reader of the running session while it
// lives, for the sample decision and the record of one allocation: the
// profiler's calls inside it take no reader of their own. No callback may
// run inside one (a Stop in a callback waits for the readers): SafePoint
// comes after it.
struct ReadingScope {
  ReadingScope();
  ~ReadingScope();
  ReadingScope(const ReadingScope&) = delete;
  ReadingScope& operator=(const ReadingScope&) = delete;
};

// Records sampled block p (already allocated from the sampled pools), with
// the calling thread's labels, and queues its alloc event on this thread.
// Returns the entry, or nullptr if the profiler had no memory for it.
Entry* RecordAlloc(void* p, size_t requested, size_t usable, size_t alignment, uint64_t points,
                   uint32_t batch_index, uint32_t batch_size);

// Forgets the entry of p without any callback: its allocation is being
// undone before the allocator returned it (a failed comalloc batch).
void CancelAlloc(void* p);

// Sampled block p is being freed; called before its memory is released.
void OnSampledFree(void* p);

// Runs this thread's pending callbacks unless it is inside one. Called at
// the end of a slow path that recorded or freed a sampled block, holding no lock.
void SafePointSlow();
extern __thread void* tls_pending __attribute__((tls_model("initial-exec")));
inline void SafePoint() {
  if (tls_pending != nullptr) SafePointSlow();
}

// The calling thread is exiting: its pending callbacks run now.
void OnThreadExit();

// Suspends recording of the calling thread's allocations while it lives (the
// allocator's and the profiler's own threads: purger, dumper).
class ScopedSuspend {
 public:
  ScopedSuspend();
  ~ScopedSuspend();
  ScopedSuspend(const ScopedSuspend&) = delete;
  ScopedSuspend& operator=(const ScopedSuspend&) = delete;
};

}  // namespace assay::profiler

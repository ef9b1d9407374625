// The profiler as the allocator sees it: the calls its slow paths make.
// The allocator knows only a per-thread countdown (ThreadCache::sample_left)
// and which blocks are sampled (SpanKind::kSampled spans, Span::sampled,
// huge entries' flag); everything else (the sampling law, stacks, entries,
// callbacks) lives here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "alloc/thread_cache.h"

namespace assay::profiler {

struct Entry;

// Bumped by every Start and Stop. A thread whose cache holds another epoch
// calls SyncThread on its next slow path.
extern uint32_t g_epoch;
inline uint32_t Epoch() { return __atomic_load_n(&g_epoch, __ATOMIC_ACQUIRE); }

// Sets tc's countdown for the session now running (a fresh draw), or to
// "never" when none is.
void SyncThread(internal::ThreadCache* tc);

struct SampleDecision {
  uint64_t points;  // sample points in the block
  bool record;      // record it (false: no session, or sampling suspended here)
};

// An allocation of n bytes crosses tc's countdown: counts its sample points
// and moves the countdown past it.
SampleDecision OnSamplePoint(internal::ThreadCache* tc, size_t n);

// Records sampled block p (already allocated from the sampled pools) and
// queues its alloc event on this thread. Returns the entry, or nullptr if
// the profiler had no memory for it.
Entry* RecordAlloc(void* p, size_t requested, size_t usable, size_t alignment, uint64_t points,
                   uint32_t batch_index, uint32_t batch_size);

// Forgets the entry of p without any callback: its allocation is being
// undone before the allocator returned it (a failed comalloc batch).
void CancelAlloc(void* p);

// Sampled block p is being freed; called before its memory is released.
void OnSampledFree(void* p);

// Runs this thread's pending callbacks unless it is inside one.
void SafePointSlow();
extern __thread void* tls_pending __attribute__((tls_model("initial-exec")));
inline void SafePoint() {
  if (tls_pending != nullptr) SafePointSlow();
}

// The calling thread is exiting: its pending callbacks run now.
void OnThreadExit();

void LockForFork();
void UnlockAfterFork(bool child);

// ---- For the dumper (profiler/dumper.cc) ----

// Suspends recording of the calling thread's allocations while it lives
// (the profiler's own work: snapshots, profile building).
class ScopedSuspend {
 public:
  ScopedSuspend();
  ~ScopedSuspend();
  ScopedSuspend(const ScopedSuspend&) = delete;
  ScopedSuspend& operator=(const ScopedSuspend&) = delete;
};

struct ClockState {
  uint64_t clock;        // allocation clock, bytes
  uint64_t young_bytes;  // promotion age
  uint64_t rate;         // sampling rate of the running (or last) session
  uint64_t since_ns;     // profiling start, or the last reset of the alloc profile
  uint32_t alloc_gen;    // bumped by each reset of the alloc profile
  int64_t live_bytes;    // estimated live bytes of sampled blocks
};
ClockState GetClockState();

// Starts the MALLOC_PROF session (a session with no tracker) with the given
// options; it is restarted whenever a tracker session stops.
struct SessionOptions {
  uint64_t rate;
  int depth;
  uint64_t young;
  uint64_t seed;
  int stack_method;
};
void StartEnvironmentSession(const SessionOptions& o);

// Zeroes the cumulative (alloc) profile.
void ResetAllocationProfile();

uint32_t ForkGeneration();

}  // namespace assay::profiler

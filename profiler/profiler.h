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

// ---- Labels: on whose behalf a thread allocates ----

// The interned copy of an object cache's name (at most 63 bytes are kept):
// one copy per distinct name, in the profiler's arena, never freed, so an
// entry or stack may point at it after its cache is destroyed. nullptr when
// the arena has no memory.
const char* InternCacheName(const char* name);

// The interned name of the object cache on whose behalf this thread is
// allocating now, or nullptr: RecordAlloc labels the sampled block with it
// (pprof label cache=NAME). Cleared while tracker callbacks run.
extern __thread const char* tls_cache_label __attribute__((tls_model("initial-exec")));

// Sets tls_cache_label for a scope (restoring the previous value after).
class ScopedCacheLabel {
 public:
  explicit ScopedCacheLabel(const char* interned_name) : saved_(tls_cache_label) {
    tls_cache_label = interned_name;
  }
  ~ScopedCacheLabel() { tls_cache_label = saved_; }
  ScopedCacheLabel(const ScopedCacheLabel&) = delete;
  ScopedCacheLabel& operator=(const ScopedCacheLabel&) = delete;

 private:
  const char* saved_;
};

// Records sampled block p (already allocated from the sampled pools), with
// the label of tls_cache_label, and queues its alloc event on this thread. Returns the entry, or
// nullptr if the profiler had no memory for it.
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

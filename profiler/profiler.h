// The profiler's interface to the layers above it (dumper, debug heap,
// object caches, init). The allocator core sees only alloc/sample_hooks.h
// (the countdown and the hooks its slow paths call, defined in profiler.cc)
// and marks which blocks are sampled (SpanKind::kSampled spans,
// Span::sampled, huge entries' flag); everything else (the sampling law,
// stacks, entries, callbacks) lives here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "alloc/sample_hooks.h"

struct AssayLayout;

namespace assay::profiler {

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

void LockForFork();
void UnlockAfterFork(bool child);

// ---- For the dumper (profiler/dumper.cc) ----

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

// ASSAY_DEBUG=guard=N alone: guard points, one every mean_gap bytes on
// average, share the threads' sampling countdown with the profiler (see
// CombinedLaw in sampler.h); OnSamplePoint reports them in
// SampleDecision::guard. Called once, at initialisation, before any thread
// cache exists (it bumps the epoch, so every thread draws its countdown anew).
void EnableGuardSampling(uint64_t mean_gap_bytes);

// Fills this part's fields of the layout descriptor (init/init.cc).
void DescribeLayout(AssayLayout* l);

}  // namespace assay::profiler

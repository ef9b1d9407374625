// The profiler's shared state, for its own files only (profiler.cc is split
// along its seams: session.cc starts and stops sessions, recording.cc turns
// sample points into entries, delivery.cc runs callbacks at safe points,
// labels.cc interns cache names). Nothing outside profiler/ includes this.
#pragma once

#include <cstddef>
#include <cstdint>

#include "assay/profiler.hpp"
#include "base/lock.h"
#include "profiler/entry.h"
#include "profiler/profiler.h"
#include "profiler/sampler.h"
#include "profiler/stack_capture.h"

namespace assay::profiler {

using internal::LockGuard;
using internal::Mutex;
using internal::SampleCountdown;

struct Session {
  uint64_t id;
  Tracker tracker;
  bool callbacks;  // the tracker has at least one callback
  bool promote;    // ... and wants promotions
  bool env;        // the MALLOC_PROF session (no tracker); a user Start replaces it
  Session* retired_next = nullptr;
};

struct Event {
  Entry* entry;
  Event* next;
  bool alloc;  // the entry's alloc event (only its allocating thread runs on_alloc)
};

// Per-thread state. Plain data, zero-initialised: no constructor runs.
struct ThreadState {
  Rng rng;
  uint64_t rng_session;  // session whose seed rng holds
  uint32_t suspended;    // > 0: this thread's allocations are not recorded
  uint32_t in_callback;  // > 0: safe points wait
  Event* tail;           // pending events: tls_pending is the head
  uintptr_t stack_lo;    // for frame-pointer walks
  uintptr_t stack_hi;
  uint64_t tid;
  uint32_t fork_gen;  // g_fork_gen when tid and the stack bounds were read
  uint32_t stack_known;
  Rng guard_rng;          // guard sampling's draws (seeded by thread start order)
  uint32_t guard_seeded;  // guard_rng was seeded
  uint64_t clock_owed;    // bytes of this thread's samples not yet on g_clock
};
extern __thread ThreadState tls __attribute__((tls_model("initial-exec")));

// Configuration of the running session; written under g_control before the
// epoch is bumped, read by threads after they see the new epoch.
extern Mutex g_control;
extern Session* g_session;  // atomic: the running session, or null
extern Session* g_retired;  // stopped sessions, freed once nothing can use them
extern uint64_t g_next_session_id;
extern SamplingRate g_rate;
extern size_t g_depth;
extern StackMethod g_method;
extern uint64_t g_young_bytes;
extern uint64_t g_seed;
extern uint64_t g_thread_counter;  // atomic: per-session thread index, for seeding
extern uint32_t g_fork_gen;

// The MALLOC_PROF session's options, restarted when a tracker session stops.
extern bool g_env_enabled;
extern SessionOptions g_env_options;

// Statistics and clocks (atomic).
// Written by every sample: each on a cache line of its own, apart from the
// read-mostly configuration above.
extern uint32_t g_alloc_gen;  // alloc-profile generation (ResetAllocationProfile)
extern uint64_t g_since_ns;   // first start, or the last reset
extern uint64_t g_clock;      // allocation clock: bytes allocated, as estimated by the samples
extern uint64_t g_in_flight;  // threads inside a tracker callback (or about to be)
extern uint64_t g_exceptions;
extern uint32_t g_exception_reported;

// Entries waiting for promotion, oldest first.
extern Mutex g_young_mu;
extern Entry* g_young_head;
extern Entry* g_young_tail;

// Guard sampling (EnableGuardSampling): on once set, never turned off. The
// laws of the countdown's union with no session and with the running one
// (set with g_rate, under g_control).
extern bool g_guard_on;
extern CombinedLaw g_guard_alone;
extern CombinedLaw g_guard_with_session;

inline Session* CurrentSession() { return __atomic_load_n(&g_session, __ATOMIC_SEQ_CST); }

// Threads reading a session's fields outside a callback (the sampling path).
// A stopped session is freed only when no thread reads one, nor runs a
// callback. Readers count themselves in one of kReaderShards padded
// counters (a thread always uses the same one), so that threads sampling at
// once do not contend on one cache line; "no reader" is every shard at 0.
// Sequentially consistent: a reader that increments a shard the writer has
// already read as 0 comes after the writer retired the session, so it reads
// the new one.
//
// The shard also holds the sample counters its threads move: one count and
// one live estimate shared by every thread were two cache lines bouncing
// between cores on every sampled allocation and free (at rate=1, most of the
// cost after the locks). Readers of the totals sum the shards.
//
// A thread owns one of the first kOwnedShards alone while any is free (given
// back at its exit), and then moves its counters with a plain load and
// store: no locked operation, where a sampled allocation took two and its
// free one. Threads past that share the kSharedShards after them, with
// atomic adds. The reader count is always an atomic add (its order against
// Stop's reads is what matters).
inline constexpr size_t kOwnedShards = 64;
inline constexpr size_t kSharedShards = 16;
inline constexpr size_t kReaderShards = kOwnedShards + kSharedShards;

// Requests of this many bytes or more cannot succeed: 2^57 is the largest
// Linux user address space (x86-64 with five-level paging).
inline constexpr size_t kImpossibleRequest = size_t{1} << 57;
struct alignas(64) ReaderShard {
  uint64_t count;      // threads reading a session through this shard now
  uint64_t samples;    // samples its threads recorded, less those cancelled
  int64_t live_bytes;  // estimated bytes they recorded, less what they freed
};
extern ReaderShard g_session_readers[kReaderShards];

// The calling thread's shard (~0u until its first read), and whether it
// owns it alone.
extern ASSAY_TLS uint32_t tls_reader_shard;
extern ASSAY_TLS bool tls_shard_owned;
ReaderShard& AssignShard();
// Gives the thread's shard back (at its exit; not inside a reader): its
// later samples, if any, count in a shared shard.
void ReleaseShard();
// In a fork child: every shard but the calling thread's is free.
void ResetShardsAfterFork();
inline ReaderShard& MyShard() {
  const uint32_t i = tls_reader_shard;
  if (ASSAY_UNLIKELY(i == ~0u)) return AssignShard();
  return g_session_readers[i];
}

// Counts the calling thread as a reader of the current session while it
// lives. Nested readers (RecordAlloc inside the slow path's ReadingScope)
// only count their depth.
//
// Once g_readers_fenced is set (membarrier(2) works: set for good at the
// first session start), a thread that owns its shard counts itself with a
// plain store and a compiler barrier: NoSessionReaders runs a barrier on
// every thread (os::FenceAllThreads) before it reads the counts, which
// orders each reader's count store before its read of g_session as a fence
// of its own would have. A locked instruction waits for every store before
// it to leave the store buffer; at rate=1 the two of each sampled
// allocation waited on the stores that missed (the program's into its
// blocks): audit mode ran 5-10% faster without them. Without membarrier,
// and on shared shards, the count is an atomic add.
extern ASSAY_TLS uint32_t tls_reading;  // depth of this thread's readers
extern bool g_readers_fenced;           // atomic; false -> true once
// The count of the shard the thread owns once it may count itself with plain
// stores (its shard owned, g_readers_fenced set), else nullptr.
extern ASSAY_TLS uint64_t* tls_plain_count;
void EnterCounted();  // Enter without tls_plain_count: may set it
void LeaveCounted();
struct SessionReader {
  SessionReader() { Enter(); }
  ~SessionReader() { Leave(); }
  static void Enter() {
    if (tls_reading++ != 0) return;
    if (uint64_t* c = tls_plain_count; ASSAY_LIKELY(c != nullptr)) {
      __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
      __atomic_signal_fence(__ATOMIC_SEQ_CST);  // the store before the session's read
      return;
    }
    EnterCounted();
  }
  static void Leave() {
    if (--tls_reading != 0) return;
    // Set only by the outermost Enter, cleared only outside readers: the
    // count Enter raised.
    if (uint64_t* c = tls_plain_count; ASSAY_LIKELY(c != nullptr)) {
      // Release: the session's uses come before the count's drop.
      __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) - 1, __ATOMIC_RELEASE);
      return;
    }
    LeaveCounted();
  }
};

// Advances the allocation clock by a sample's bytes. A thread adds its
// samples to g_clock once they make kClockStep bytes (at rate=1 every
// allocation moved that cache line, shared by all threads: 2.5% of audit
// mode's time on two cores); at once in a session that promotes, whose
// young list the clock orders. At 512 KiB every sample reaches the step.
inline constexpr uint64_t kClockStep = 64 << 10;
inline void AdvanceClock(ThreadState& ts, uint64_t bytes, bool exact) {
  const uint64_t owed = ts.clock_owed + bytes;
  if (owed < kClockStep && !exact) {
    ts.clock_owed = owed;
    return;
  }
  ts.clock_owed = 0;
  __atomic_fetch_add(&g_clock, owed, __ATOMIC_RELAXED);
}

// Moves the calling thread's share of the sample counters.
inline void CountSample(int64_t samples, int64_t live_bytes) {
  ReaderShard& r = MyShard();
  if (ASSAY_LIKELY(tls_shard_owned)) {  // only this thread writes them
    if (samples != 0) {
      const uint64_t was = __atomic_load_n(&r.samples, __ATOMIC_RELAXED);
      __atomic_store_n(&r.samples, was + static_cast<uint64_t>(samples), __ATOMIC_RELAXED);
    }
    const int64_t live = __atomic_load_n(&r.live_bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&r.live_bytes, live + live_bytes, __ATOMIC_RELAXED);
    return;
  }
  if (samples != 0)
    __atomic_fetch_add(&r.samples, static_cast<uint64_t>(samples), __ATOMIC_RELAXED);
  __atomic_fetch_add(&r.live_bytes, live_bytes, __ATOMIC_RELAXED);
}
uint64_t TotalSamples();
int64_t TotalLiveBytes();
bool NoSessionReaders();

// ---- recording.cc ----
uint64_t CurrentTid(ThreadState& ts);
void LearnStackBounds(ThreadState& ts);
void YoungUnlinkLocked(Entry* e);
// Moves entries born young_bytes or more before `clock` out of the young
// list, each with a promote event on this thread.
void PromoteOld(ThreadState& ts, uint64_t clock);

// ---- delivery.cc ----
// Drops a reference; the last one frees the entry and its stack's reference.
void Unref(Entry* e);
// Frees an entry whose last reference the caller holds, and its stack's.
void FreeEntry(Entry* e);
// Queues an event of e on this thread (passing one reference of e to it).
void Enqueue(ThreadState& ts, Entry* e, bool alloc);

// ---- session.cc ----
// Starts a session; replaces a running MALLOC_PROF session, but not a
// tracker session. Returns false if a tracker session runs.
bool StartSession(const SessionOptions& o, Tracker tracker, bool env);
// Forces every live thread to its slow path soon, where it syncs its epoch.
void KickThreads(int64_t value);
// The thread's generator for guard sampling, seeded on first use.
Rng& GuardRng(ThreadState& ts);

}  // namespace assay::profiler

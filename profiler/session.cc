// Sessions: start and stop (the environment's and a tracker's), the
// countdown's resync to the running session, fork, and the public API of
// assay/profiler.hpp. The session readers are session_readers.cc's.
#include <new>

#include "base/os.h"
#include "profiler/arena.h"
#include "profiler/fp_mappings.h"
#include "profiler/profiler_state.h"
#include "profiler/stack_table.h"
#include "profiler/unwinder.h"

namespace assay::profiler {

uint32_t g_epoch = 0;
__thread ThreadState tls __attribute__((tls_model("initial-exec")));

// Configuration of the running session; written under g_control before the
// epoch is bumped, read by threads after they see the new epoch.
constinit Mutex g_control;
Session* g_session = nullptr;  // atomic: the running session, or null
Session* g_retired = nullptr;  // stopped sessions, freed once nothing can use them
uint64_t g_next_session_id = 0;
constinit SamplingRate g_rate;
size_t g_depth = 64;
StackMethod g_method = StackMethod::kUnwind;
uint64_t g_young_bytes = 0;
uint64_t g_seed = 0;
uint64_t g_thread_counter = 0;  // atomic: per-session thread index, for seeding
uint32_t g_fork_gen = 0;

// The MALLOC_PROF session's options, restarted when a tracker session stops.
bool g_env_enabled = false;
SessionOptions g_env_options{};

// Statistics and clocks (atomic).
// Written by every sample: each on a cache line of its own, apart from the
// read-mostly configuration above.
alignas(64) uint32_t g_alloc_gen = 0;  // alloc-profile generation (ResetAllocationProfile)
uint64_t g_since_ns = 0;               // first start, or the last reset
alignas(64) uint64_t g_clock = 0;  // allocation clock: bytes allocated, as estimated by the samples
alignas(64) uint64_t g_in_flight = 0;  // threads inside a tracker callback (or about to be)
uint64_t g_exceptions = 0;
uint32_t g_exception_reported = 0;

// Entries waiting for promotion, oldest first.
constinit Mutex g_young_mu;
Entry* g_young_head = nullptr;
Entry* g_young_tail = nullptr;

bool g_guard_on = false;
constinit CombinedLaw g_guard_alone;
constinit CombinedLaw g_guard_with_session;
namespace {
uint64_t g_guard_threads = 0;  // atomic: threads that seeded their guard generator
}  // namespace

namespace {

void FreeRetiredSessions() {
  // Called with g_control held, outside callbacks, when no callback runs.
  while (g_retired != nullptr) {
    Session* s = g_retired;
    g_retired = s->retired_next;
    delete s;
  }
}

ASSAY_STARTUP void SetCountdown(SampleCountdown* c, void* value) {
  internal::CountdownSet(c, *static_cast<int64_t*>(value));
}

}  // namespace

// Forces every live thread to its slow path soon, where it syncs its epoch.
ASSAY_STARTUP void KickThreads(int64_t value) { internal::ForEachCountdown(SetCountdown, &value); }

Rng& GuardRng(ThreadState& ts) {
  if (ASSAY_UNLIKELY(ts.guard_seeded == 0)) {
    // Seeded by thread start order, so a run repeats its guard choices.
    const uint64_t index = __atomic_fetch_add(&g_guard_threads, 1, __ATOMIC_RELAXED);
    ts.guard_rng.Seed(0x6173736179677264ull + index * 0x9E3779B97F4A7C15ull);
    ts.guard_seeded = 1;
  }
  return ts.guard_rng;
}

ASSAY_STARTUP void SyncCountdown(SampleCountdown* c) {
  SessionReader reading;
  ThreadState& ts = tls;
  const uint32_t epoch = Epoch();
  Session* s = CurrentSession();
  c->epoch = epoch;
  const bool guard = __atomic_load_n(&g_guard_on, __ATOMIC_ACQUIRE);
  if (s == nullptr) {
    internal::CountdownSet(c,
                           guard ? g_guard_alone.DrawLeft(GuardRng(ts)) : internal::kSampleNever);
    return;
  }
  if (ts.rng_session != s->id) {
    const uint64_t index = __atomic_fetch_add(&g_thread_counter, 1, __ATOMIC_RELAXED);
    ts.rng.Seed(g_seed + index * 0x9E3779B97F4A7C15ull);
    ts.rng_session = s->id;
  }
  internal::CountdownSet(
      c, guard ? g_guard_with_session.DrawLeft(GuardRng(ts)) : g_rate.DrawLeft(ts.rng));
}

void EnableGuardSampling(uint64_t mean_gap_bytes) {
  LockGuard lock(g_control);
  const double g = 1.0 / static_cast<double>(mean_gap_bytes == 0 ? 1 : mean_gap_bytes);
  g_guard_alone.Set(0, g);
  Session* s = CurrentSession();
  g_guard_with_session.Set(s != nullptr ? 1.0 / static_cast<double>(g_rate.rate()) : 0, g);
  __atomic_store_n(&g_guard_on, true, __ATOMIC_RELEASE);
  __atomic_fetch_add(&g_epoch, 1, __ATOMIC_RELEASE);
}

void LockForFork() {
  g_control.Lock();
  __atomic_store_n(&tls.suspended, tls.suspended + 1, __ATOMIC_RELAXED);
  g_young_mu.Lock();
  entry_table::LockForFork();
  stack_table::LockForFork();
  arena::LockForFork();
}

void UnlockAfterFork(bool child) {
  arena::UnlockAfterFork(child);
  stack_table::UnlockAfterFork(child);
  entry_table::UnlockAfterFork(child);
  if (child) {
    fp_mappings::ResetAfterFork();
    g_young_mu.ResetAfterFork();
    g_control.ResetAfterFork();
    __atomic_fetch_add(&g_fork_gen, 1, __ATOMIC_RELAXED);
    // Only this thread lives on: no other thread can be inside a callback,
    // nor reading a session (one that was, at the fork, never leaves).
    g_in_flight = tls.in_callback;
    for (ReaderShard& r : g_session_readers) __atomic_store_n(&r.count, 0, __ATOMIC_RELAXED);
    ResetShardsAfterFork();
    if (tls_reading != 0) __atomic_store_n(&MyShard().count, 1, __ATOMIC_RELAXED);
  } else {
    g_young_mu.Unlock();
    g_control.Unlock();
  }
  tls.suspended--;
}

// Starts a session; replaces a running MALLOC_PROF session, but not a
// tracker session. Returns false if a tracker session runs.
ASSAY_STARTUP bool StartSession(const SessionOptions& o, Tracker tracker, bool env) {
  // Here, not at the first sample (inside malloc, where the dynamic loader
  // may be the caller): MALLOC_PROF's session starts in a constructor, a
  // tracker's from the program.
  unwinder::Load();
  Session* s = new (std::nothrow) Session{};
  if (s == nullptr) return false;
  s->tracker = std::move(tracker);
  s->callbacks = s->tracker.on_alloc || s->tracker.on_promote || s->tracker.on_free;
  s->promote = static_cast<bool>(s->tracker.on_promote);
  s->env = env;
  {
    LockGuard lock(g_control);
    Session* running = CurrentSession();
    if (running != nullptr && (!running->env || env)) {
      delete s;  // a tracker session runs (or the environment's already does)
      return false;
    }
    if (running != nullptr) {  // the MALLOC_PROF session gives way
      running->retired_next = g_retired;
      g_retired = running;
    }
    // Readers may count themselves without a fence from now on if every
    // thread can be fenced for them (registered once, kept for good).
    if (!__atomic_load_n(&g_readers_fenced, __ATOMIC_RELAXED) && internal::os::FenceAllThreads()) {
      __atomic_store_n(&g_readers_fenced, true, __ATOMIC_RELAXED);
    }
    if (tls.in_callback == 0 && __atomic_load_n(&g_in_flight, __ATOMIC_SEQ_CST) == 0 &&
        NoSessionReaders()) {
      FreeRetiredSessions();
    }
    // An entry keeps the low 32 bits of its session's id, 0 for none.
    do {
      s->id = ++g_next_session_id;
    } while (static_cast<uint32_t>(s->id) == 0);
    const uint64_t rate = o.rate == 0 ? 1 : o.rate;
    g_rate.Set(rate);
    g_guard_with_session.Set(1.0 / static_cast<double>(rate), g_guard_alone.g());
    int depth = o.depth < 1 ? 1 : o.depth;
    if (depth > static_cast<int>(kMaxStackDepth)) depth = kMaxStackDepth;
    g_depth = static_cast<size_t>(depth);
    g_method = o.stack_method == 1 ? StackMethod::kFramePointer : StackMethod::kUnwind;
    g_young_bytes = o.young != 0 ? o.young : 128 * rate;
    g_seed = o.seed != 0 ? o.seed : internal::os::NowNs();
    if (g_since_ns == 0) g_since_ns = internal::os::NowNs();
    __atomic_store_n(&g_thread_counter, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_session, s, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&g_epoch, 1, __ATOMIC_RELEASE);
  }
  KickThreads(0);
  // The calling thread samples from its very next allocation.
  if (SampleCountdown* own = internal::OwnCountdown()) SyncCountdown(own);
  return true;
}

ASSAY_STARTUP void StartEnvironmentSession(const SessionOptions& o) {
  {
    LockGuard lock(g_control);
    g_env_options = o;
    g_env_enabled = true;
  }
  StartSession(o, Tracker{}, /*env=*/true);
}

ClockState GetClockState() {
  ClockState c;
  c.clock = __atomic_load_n(&g_clock, __ATOMIC_RELAXED);
  {
    // StartSession rewrites them (a session restarted by Stop, say) while
    // the dump thread builds a profile: read the pair it wrote together.
    LockGuard lock(g_control);
    c.young_bytes = g_young_bytes;
    c.rate = g_rate.rate();
  }
  c.since_ns = g_since_ns;
  c.alloc_gen = __atomic_load_n(&g_alloc_gen, __ATOMIC_RELAXED);
  c.live_bytes = TotalLiveBytes();
  return c;
}

void ResetAllocationProfile() {
  ScopedSuspend suspend;
  LockGuard lock(g_control);
  __atomic_fetch_add(&g_alloc_gen, 1, __ATOMIC_RELAXED);
  g_since_ns = internal::os::NowNs();
  stack_table::ResetCumulative();
}

ASSAY_STARTUP void DescribeLayout(AssayLayout* l) {
  entry_table::DescribeLayout(l);
  l->sampling_rate_addr = reinterpret_cast<uint64_t>(g_rate.rate_address());
  l->profiler_session_addr = reinterpret_cast<uint64_t>(&g_session);
}

uint32_t ForkGeneration() { return __atomic_load_n(&g_fork_gen, __ATOMIC_RELAXED); }

ScopedSuspend::ScopedSuspend() { tls.suspended++; }
ScopedSuspend::~ScopedSuspend() { tls.suspended--; }

}  // namespace assay::profiler

// ---- Public API (assay/profiler.hpp) ----

namespace assay {

bool Start(const ProfilerOptions& options, Tracker tracker) {
  const profiler::SessionOptions o{options.rate, options.max_depth, options.young_bytes,
                                   options.seed, static_cast<int>(options.stack_method)};
  return profiler::StartSession(o, std::move(tracker), /*env=*/false);
}

void Stop() {
  bool stopped = false;
  bool restart_env = false;
  profiler::SessionOptions env_options{};
  {
    internal::LockGuard lock(profiler::g_control);
    profiler::Session* s = profiler::CurrentSession();
    if (s != nullptr && !s->env) {  // only a tracker session stops (MALLOC_PROF's goes on)
      stopped = true;
      __atomic_store_n(&profiler::g_session, static_cast<profiler::Session*>(nullptr),
                       __ATOMIC_SEQ_CST);
      __atomic_fetch_add(&profiler::g_epoch, 1, __ATOMIC_RELEASE);
      s->retired_next = profiler::g_retired;
      profiler::g_retired = s;
      restart_env = profiler::g_env_enabled;
      env_options = profiler::g_env_options;
      // The young list only serves the session's promotions.
      internal::LockGuard young(profiler::g_young_mu);
      while (profiler::g_young_head != nullptr) {
        profiler::Entry* e = profiler::g_young_head;
        profiler::YoungUnlinkLocked(e);
        profiler::Unref(e);  // never the last reference: the table or an event holds one
      }
    }
  }
  if (stopped) {
    // With guard sampling on, threads must reach a slow path to draw the
    // guard's countdown: kick them to 0, not to "never".
    profiler::KickThreads(
        __atomic_load_n(&profiler::g_guard_on, __ATOMIC_ACQUIRE) ? 0 : internal::kSampleNever);
    if (internal::SampleCountdown* own = internal::OwnCountdown()) profiler::SyncCountdown(own);
  }
  // Wait for callbacks running on other threads (ours, if Stop is called
  // from inside one, is the one allowed to remain), even when one of them
  // stopped the session already: after Stop returns none runs.
  const uint64_t own = profiler::tls.in_callback;
  while (__atomic_load_n(&profiler::g_in_flight, __ATOMIC_SEQ_CST) > own) internal::os::Yield();
  // MALLOC_PROF profiling goes on after a tracker session.
  if (restart_env) profiler::StartSession(env_options, Tracker{}, /*env=*/true);
}

bool IsRunning() {
  profiler::Session* s = profiler::CurrentSession();
  return s != nullptr && !s->env;
}

void Poll() { profiler::SafePointSlow(); }

ProfilerStats GetProfilerStats() {
  ProfilerStats st{};
  st.samples = profiler::TotalSamples();
  st.live_entries = profiler::entry_table::Count();
  st.stacks = profiler::stack_table::Count();
  st.callback_exceptions = __atomic_load_n(&profiler::g_exceptions, __ATOMIC_RELAXED);
  st.memory_bytes = profiler::arena::FootprintBytes();
  return st;
}

}  // namespace assay

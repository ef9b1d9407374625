// MALLOC_PROF's dumps (dumper.h): the dump thread, woken by a signal, an
// interval of allocation, a new peak, or its period; the peak snapshots;
// the exit dumps (final heap, peak, leak check); fork handling; and
// InitFromEnvironment, which reads MALLOC_PROF and starts all of it. One
// dump, to a file or to bytes, and the public API: profile_output.cc.
#include "profiler/dumper.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "base/lock.h"
#include "base/os.h"
#include "profiler/entry.h"
#include "profiler/http_server.h"
#include "profiler/prof_config.h"
#include "profiler/profile_output.h"
#include "profiler/profiler.h"
#include "profiler/snapshot.h"

namespace assay::profiler::dumper {
namespace {

using internal::LockGuard;
using internal::Mutex;
using snapshot::Snapshot;

enum Reason : uint32_t { kSignal = 1, kInterval = 2, kPeak = 4, kExit = 8 };

uint32_t g_initialised = 0;  // atomic

// The dump thread.
uint32_t g_wake_word = 0;          // futex
uint32_t g_reasons = 0;            // Reason bits, atomic
uint32_t g_thread_fork_gen = ~0u;  // fork generation the thread was started in
uint32_t g_thread_starting = 0;
// 1 while this process's dump thread runs; it stores 0 (and wakes the
// futex) when it stops at exit, after serving the requests it was woken for.
uint32_t g_thread_running = 0;
uint64_t g_next_interval = 0;  // clock value of the next interval dump
int64_t g_peak_threshold = 0;  // live estimate that triggers the next peak dump

// ---- The dump thread ----

void Wake(uint32_t reason) {
  __atomic_fetch_or(&g_reasons, reason, __ATOMIC_RELEASE);
  __atomic_fetch_add(&g_wake_word, 1, __ATOMIC_RELEASE);
  internal::os::FutexWake(&g_wake_word, 1);
}

void OnSignal(int) { Wake(kSignal); }  // async-signal-safe: atomics and a futex call

// The latest peak: snapshotted when the live estimate passes the threshold
// (each 10% of growth), written at most once a second, and at exit if it
// was not written yet. Guarded by g_peak_mu.
constinit Mutex g_peak_mu;
Snapshot* g_peak = nullptr;
bool g_peak_unwritten = false;
uint64_t g_peak_written_ms = 0;

void TakePeak() {
  ScopedSuspend suspend;
  auto* snap = new Snapshot;
  snapshot::Take(snap, /*cumulative=*/true);
  __atomic_store_n(&g_peak_threshold, snap->clock.live_bytes + snap->clock.live_bytes / 10,
                   __ATOMIC_RELAXED);
  LockGuard lock(g_peak_mu);
  delete g_peak;
  g_peak = snap;
  g_peak_unwritten = true;
}

// Writes the latest peak snapshot if unwritten and (unless forced) a second
// has passed since the last peak file.
void WritePeak(bool force) {
  ScopedSuspend suspend;
  Snapshot* snap = nullptr;
  {
    LockGuard lock(g_peak_mu);
    const uint64_t now = internal::os::NowMs();
    if (!g_peak_unwritten || (!force && now - g_peak_written_ms < 1000)) return;
    snap = g_peak;
    g_peak = nullptr;
    g_peak_unwritten = false;
    g_peak_written_ms = now;
  }
  Dump("peak", nullptr, nullptr, snap);
  delete snap;
}

void* ThreadMain(void*) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  uint64_t next_period_ms = internal::os::NowMs() + g_cfg.period_s * 1000;
  for (;;) {
    int64_t timeout = -1;
    const uint64_t now = internal::os::NowMs();
    if (g_cfg.period_s > 0)
      timeout = next_period_ms > now ? static_cast<int64_t>(next_period_ms - now) : 0;
    {
      LockGuard lock(g_peak_mu);
      if (g_peak_unwritten) {  // wake when the peak may be written
        const uint64_t due = g_peak_written_ms + 1000;
        const int64_t wait = due > now ? static_cast<int64_t>(due - now) : 0;
        if (timeout < 0 || wait < timeout) timeout = wait;
      }
    }
    const uint32_t word = __atomic_load_n(&g_wake_word, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&g_reasons, __ATOMIC_ACQUIRE) == 0 && timeout != 0) {
      internal::os::FutexWait(&g_wake_word, word, timeout);
    }
    const uint32_t reasons = __atomic_exchange_n(&g_reasons, 0, __ATOMIC_ACQ_REL);
    bool heap = (reasons & (kSignal | kInterval)) != 0;
    if (g_cfg.period_s > 0 && internal::os::NowMs() >= next_period_ms) {
      heap = true;
      next_period_ms = internal::os::NowMs() + g_cfg.period_s * 1000;
    }
    if (heap) Dump("heap", nullptr, nullptr);
    if ((reasons & kPeak) &&
        GetClockState().live_bytes >= __atomic_load_n(&g_peak_threshold, __ATOMIC_RELAXED)) {
      TakePeak();
    }
    WritePeak(/*force=*/false);
    if (reasons & kExit) {
      // Requests made before exit (an interval crossed, a signal) were
      // served above; the exit handler waits for this before its own dumps.
      __atomic_store_n(&g_thread_running, 0, __ATOMIC_RELEASE);
      internal::os::FutexWake(&g_thread_running, 1);
      return nullptr;
    }
  }
}

bool WantsThread() {
  return g_cfg.enabled &&
         (g_cfg.period_s > 0 || g_cfg.interval > 0 || g_cfg.peak || g_cfg.signal != 0);
}

// Starts the dump thread for this process (again in a fork child).
void EnsureThread() {
  const uint32_t gen = ForkGeneration();
  if (__atomic_load_n(&g_thread_fork_gen, __ATOMIC_ACQUIRE) == gen) return;
  if (__atomic_exchange_n(&g_thread_starting, 1, __ATOMIC_ACQ_REL) != 0) return;
  if (__atomic_load_n(&g_thread_fork_gen, __ATOMIC_ACQUIRE) != gen) {
    ScopedSuspend suspend;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    __atomic_store_n(&g_thread_running, 1, __ATOMIC_RELEASE);
    if (pthread_create(&t, &attr, ThreadMain, nullptr) == 0) {
      pthread_setname_np(t, "assay-dump");
    } else {
      __atomic_store_n(&g_thread_running, 0, __ATOMIC_RELEASE);
    }
    pthread_attr_destroy(&attr);
    __atomic_store_n(&g_thread_fork_gen, gen, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&g_thread_starting, 0, __ATOMIC_RELEASE);
}

// First use: every process with MALLOC_PROF runs it at exit.
ASSAY_FIRST_USE void ExitDumps() {
  if (!g_cfg.enabled) return;
  Wake(kExit);  // the dump thread serves what it was woken for, then stops
  // Wait for it (10 s at most: a first dump reading DWARF can take seconds on
  // a loaded machine): exit would kill it half-way through a file, and a
  // request made before exit would be lost.
  const uint64_t deadline = internal::os::NowMs() + 10000;
  for (;;) {
    if (__atomic_load_n(&g_thread_running, __ATOMIC_ACQUIRE) == 0) break;
    const uint64_t now = internal::os::NowMs();
    if (now >= deadline) break;
    internal::os::FutexWait(&g_thread_running, 1, static_cast<int64_t>(deadline - now));
  }
  { LockGuard wait(g_dump_mu); }  // and any dump of another thread's (the API's)
  if (g_cfg.peak) WritePeak(/*force=*/true);
  if (g_cfg.final_dump) Dump("heap", nullptr, nullptr);
  if (g_cfg.leak) {
    std::string path;
    const ClockState c = GetClockState();
    const size_t blocks = entry_table::Count();
    if (Dump("leak", nullptr, &path) == 0) {
      char line[900];
      snprintf(line, sizeof(line),
               "assay: leak check: %zu sampled blocks never freed, about %.1f KiB estimated "
               "(rate %llu); profile: %s\n",
               blocks, static_cast<double>(c.live_bytes) / 1024.0,
               static_cast<unsigned long long>(c.rate), path.c_str());
      internal::os::WriteStderr(line);
    }
  }
}

// A dump in progress holds g_dump_mu (and may need allocator locks): fork
// waits for it, so the child never inherits the lock held.
void OnForkPrepare() {
  g_dump_mu.Lock();
  g_peak_mu.Lock();
}
void OnForkParent() {
  g_peak_mu.Unlock();
  g_dump_mu.Unlock();
}

void OnForkChild() {
  g_peak_mu.ResetAfterFork();
  g_dump_mu.ResetAfterFork();
  RestartFileNumbers();  // a child numbers its own files
  __atomic_store_n(&g_thread_starting, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&g_thread_running, 0, __ATOMIC_RELAXED);  // not in the child
  __atomic_store_n(&g_reasons, 0, __ATOMIC_RELAXED);
}

}  // namespace

ASSAY_STARTUP void InitFromEnvironment() {
  if (__atomic_exchange_n(&g_initialised, 1, __ATOMIC_ACQ_REL) != 0) return;
  ProfConfig cfg;
  if (!ParseProfConfig(internal::os::GetEnv("MALLOC_PROF"), &cfg) || !cfg.enabled) return;
  g_cfg = cfg;
  const bool wants_thread = WantsThread();
  __atomic_store_n(&g_watch_samples, wants_thread, __ATOMIC_RELAXED);
  const SessionOptions o{cfg.rate, cfg.depth, cfg.young, cfg.seed, cfg.stack_method};
  g_next_interval = cfg.interval;
  g_peak_threshold = static_cast<int64_t>(16 * cfg.rate > (1u << 20) ? 16 * cfg.rate : 1u << 20);
  StartEnvironmentSession(o);
  internal::os::AtExit(ExitDumps);
  // Registered after the allocator's handlers, so this prepare runs first
  // (prepare handlers run in reverse order): the dump lock is taken before
  // the allocator's locks, as a dump takes them.
  internal::os::AtFork(OnForkPrepare, OnForkParent, OnForkChild);
  if (cfg.signal != 0) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = OnSignal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(cfg.signal, &sa, nullptr);
  }
  if (wants_thread) EnsureThread();
  // After AtExit(ExitDumps): the endpoint's own exit handler runs before it.
  if (cfg.http[0] != '\0') http::StartServer(cfg.http, cfg.http_remote);
}

bool g_watch_samples;

void OnRecordedSlow(uint64_t clock, int64_t (*live_bytes)()) {
  if (__atomic_load_n(&g_thread_fork_gen, __ATOMIC_RELAXED) != ForkGeneration()) {
    EnsureThread();  // a fork child profiles on, with a dump thread of its own
  }
  if (g_cfg.interval > 0) {
    uint64_t next = __atomic_load_n(&g_next_interval, __ATOMIC_RELAXED);
    if (clock >= next &&
        __atomic_compare_exchange_n(&g_next_interval, &next, clock + g_cfg.interval, false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      Wake(kInterval);
    }
  }
  if (g_cfg.peak && live_bytes() >= __atomic_load_n(&g_peak_threshold, __ATOMIC_RELAXED) &&
      (__atomic_load_n(&g_reasons, __ATOMIC_RELAXED) & kPeak) == 0) {
    Wake(kPeak);
  }
}

// Runs after libc is set up and before main (and before the program's own
// constructors when libassay.so is preloaded): the allocator itself needs
// no constructor; this only turns MALLOC_PROF profiling on.
__attribute__((constructor)) void StartFromEnvironmentAtLoad() { InitFromEnvironment(); }

}  // namespace assay::profiler::dumper

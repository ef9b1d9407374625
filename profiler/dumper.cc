// Profile dumps (dumper.h).
//
// A dump takes a snapshot under the entry table's and stack table's shard
// locks (copying, never building), then aggregates and hands the snapshot
// to the pprof writer outside every lock, with sampling suspended on the
// dumping thread. Only one dump runs at a time (g_dump_mu).
//
// Snapshots and the writer's input: snapshot.h; the writer: plugin_loader.h.
#include "profiler/dumper.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "base/lock.h"
#include "base/os.h"
#include "base/probes.h"
#include "profiler/entry.h"
#include "profiler/http_server.h"
#include "profiler/plugin_loader.h"
#include "profiler/prof_config.h"
#include "profiler/profile_data.h"
#include "profiler/profiler.h"
#include "profiler/snapshot.h"
#include "profiler/stack_table.h"

namespace assay::profiler::dumper {
namespace {

using internal::LockGuard;
using internal::Mutex;
using snapshot::Snapshot;

enum Reason : uint32_t { kSignal = 1, kInterval = 2, kPeak = 4, kExit = 8 };

constinit ProfConfig g_cfg;
uint32_t g_initialised = 0;  // atomic
constinit Mutex g_dump_mu;   // one dump at a time
uint64_t g_seq = 0;          // files written by this process
uint32_t g_write_error_reported = 0;

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

int64_t NowWallNs() { return internal::os::WallNs(); }

// Builds the writer's input from a snapshot (taken now, or `taken` if
// given) and writes it. Called with g_dump_mu held.
int Write(const char* kind, const std::string& path, std::string* error,
          const Snapshot* taken = nullptr) {
  Snapshot fresh;
  if (taken == nullptr) snapshot::Take(&fresh, std::strcmp(kind, "leak") != 0);
  snapshot::Built built;
  snapshot::Build(taken != nullptr ? *taken : fresh, kind, NowWallNs(), internal::os::NowNs(),
                  &built);
  built.data.file_mode = static_cast<unsigned>(g_cfg.file_mode);  // MALLOC_PROF mode= (0: 0600)
  return plugin::CallWriter(built.data, path.c_str(), error);
}

std::string NextPath(const char* kind) {
  const uint64_t seq = __atomic_fetch_add(&g_seq, 1, __ATOMIC_RELAXED);
  char buf[700];
  snprintf(buf, sizeof(buf), "%s.%d.%llu.%s.pb.gz", g_cfg.prefix, internal::os::ProcessId(),
           static_cast<unsigned long long>(seq), kind);
  return buf;
}

bool ValidKind(const char* kind) {
  return kind != nullptr && (std::strcmp(kind, "heap") == 0 || std::strcmp(kind, "alloc") == 0 ||
                             std::strcmp(kind, "peak") == 0 || std::strcmp(kind, "leak") == 0);
}

int Dump(const char* kind, const char* path_or_null, std::string* written,
         const Snapshot* taken = nullptr) {
  ScopedSuspend suspend;
  LockGuard lock(g_dump_mu);
  const std::string path =
      path_or_null != nullptr && *path_or_null != '\0' ? std::string(path_or_null) : NextPath(kind);
  std::string error;
  const int rc = Write(kind, path, &error, taken);
  if (rc != 0) {
    if (__atomic_exchange_n(&g_write_error_reported, 1, __ATOMIC_RELAXED) == 0) {
      const std::string line = "assay: cannot write " + std::string(kind) + " profile " + path +
                               ": " + error + " (reported once; the program runs on)\n";
      internal::os::WriteStderr(line.c_str());
    }
  } else {
    ASSAY_PROBE2(profile_dump, kind, path.c_str());
    if (written != nullptr) *written = path;
  }
  return rc;
}

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

void ExitDumps() {
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
  __atomic_store_n(&g_seq, 0, __ATOMIC_RELAXED);  // a child numbers its own files
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

int WriteProfile(const char* kind, const char* path) {
  if (!ValidKind(kind)) return EINVAL;
  if (GetClockState().since_ns == 0) return ENOENT;  // nothing was ever profiled
  if (path == nullptr || *path == '\0') {
    if (!g_cfg.enabled) {
      // No MALLOC_PROF prefix: the default one.
      return Dump(kind, NextPath(kind).c_str(), nullptr);
    }
  }
  return Dump(kind, path, nullptr);
}

void* PprofSymbol(const char* name, bool may_load) {
  ScopedSuspend suspend;
  LockGuard lock(g_dump_mu);
  return plugin::Symbol(name, may_load);
}

int WriteProfileData(const AssayProfileData* data, const char* path) {
  ScopedSuspend suspend;
  LockGuard lock(g_dump_mu);
  AssayProfileData d = *data;
  if (d.time_nanos == 0) d.time_nanos = NowWallNs();
  std::string why;
  const int rc = plugin::CallWriter(d, path, &why);
  if (rc != 0) {
    const std::string line = "assay: cannot write " + std::string(d.kind) + " profile " +
                             std::string(path) + ": " + why + "\n";
    internal::os::WriteStderr(line.c_str());
  }
  return rc;
}

snapshot::Snapshot* TakeSnapshot() {
  ScopedSuspend suspend;
  auto* s = new Snapshot;
  snapshot::Take(s, /*cumulative=*/true);
  return s;
}

void FreeSnapshot(snapshot::Snapshot* s) {
  ScopedSuspend suspend;
  delete s;
}

int ProfileBytes(const char* kind, const snapshot::Snapshot* before, const uint32_t* closed,
                 std::string* out, std::string* error) {
  if (kind == nullptr || (std::strcmp(kind, "heap") != 0 && std::strcmp(kind, "alloc") != 0)) {
    *error = "unknown profile kind";
    return EINVAL;
  }
  if (GetClockState().since_ns == 0) {
    *error = "nothing is being profiled";
    return ENOENT;
  }
  ScopedSuspend suspend;
  Snapshot now;
  snapshot::Take(&now, /*cumulative=*/true);
  LockGuard lock(g_dump_mu);
  if (closed != nullptr && __atomic_load_n(closed, __ATOMIC_ACQUIRE) != 0) {
    *error = "the process is exiting";
    return ESHUTDOWN;
  }
  snapshot::Built built;
  if (before != nullptr) {
    snapshot::BuildDelta(*before, now, kind, NowWallNs(), now.taken_ns - before->taken_ns, &built);
  } else {
    snapshot::Build(now, kind, NowWallNs(), internal::os::NowNs(), &built);
  }
  return plugin::CallSerializer(built.data, out, error);
}

void Quiesce() {
  ScopedSuspend suspend;
  LockGuard lock(g_dump_mu);
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

// ---- Public API ----

namespace assay {

int ProfileTo(const char* kind, std::string* out) {
  if (out == nullptr) return EINVAL;
  std::string error;
  return profiler::dumper::ProfileBytes(kind, nullptr, nullptr, out, &error);
}

int WriteProfile(const char* kind, const char* path) {
  return profiler::dumper::WriteProfile(kind, path);
}

void ResetAllocationProfile() { profiler::ResetAllocationProfile(); }

}  // namespace assay

extern "C" __attribute__((visibility("default"))) int assay_write_profile(const char* kind,
                                                                          const char* path) {
  return assay::profiler::dumper::WriteProfile(kind, path);
}

extern "C" __attribute__((visibility("default"))) int assay_profile_to_fd(const char* kind,
                                                                          int fd) {
  std::string bytes, error;
  int rc;
  {
    assay::profiler::ScopedSuspend suspend;  // the bytes' buffer is the profiler's own
    rc = assay::profiler::dumper::ProfileBytes(kind, nullptr, nullptr, &bytes, &error);
    if (rc == 0 && !assay::internal::os::WriteAll(fd, bytes.data(), bytes.size())) rc = errno;
    std::string().swap(bytes);
  }
  return rc;
}

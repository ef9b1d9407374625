// The purger (purger.h). The thread sleeps decay/4 between passes while any
// free memory is dirty, and indefinitely (on a futex) once nothing is left.
#include "alloc/purger.h"

#include <pthread.h>
#include <signal.h>

#include "alloc/central.h"
#include "alloc/huge.h"
#include "alloc/large_cache.h"
#include "alloc/page_heap.h"
#include "alloc/sample_hooks.h"
#include "base/options.h"
#include "base/os.h"

namespace assay::internal::purger {
namespace {

struct State {
  uint32_t wake_word = 0;  // futex word the thread sleeps on
  uint64_t last_inline_ms = 0;
  uint64_t last_drain_ms = 0;  // the purger thread's last central::Drain
};
constinit State g;

// Free memory waiting for its decay, polled every interval: dirty slices,
// cached huge ranges, runs in threads' slice-run caches.
bool HasDirtyWork() {
  return page_heap::HasDirty() || huge::CachedBytes() != 0 || large_cache::HasCached();
}

// Free memory still waiting to go back to the OS (also free pages of partly
// used spans: while blocks keep coming back to the central lists, or a span
// waits for its second idle visit, every kDrainIntervalMs).
bool HasWork() { return HasDirtyWork() || central::SpanPurgePending(); }

uint64_t Interval(int64_t decay_ms) {
  const int64_t quarter = decay_ms / 4;
  return static_cast<uint64_t>(quarter < 10 ? 10 : (quarter > 1000 ? 1000 : quarter));
}

// Central caches idle this long go back to their spans (and their kept
// empty spans to the page heap). Not tied to decay_ms: draining every 10 ms
// returned each class's kept empty span as soon as the class paused, and the
// sampled pool rebuilt and re-faulted it for its next sampled block (1 700
// extra purges on the fragmentation workload with the profiler on).
constexpr uint64_t kDrainIntervalMs = 250;

// One pass: idle central caches back to spans and free pages of idle partly
// used spans to the OS (every kDrainIntervalMs; sets *drained), old dirty
// slices to the OS. Returns whether dirty memory remains.
bool Pass(int64_t decay_ms, bool* drained) {
  const uint64_t now = os::NowMs();
  *drained = now - g.last_drain_ms >= kDrainIntervalMs;
  if (*drained) {
    g.last_drain_ms = now;
    central::Drain(/*idle_only=*/true);
    bool pending;
    central::PurgeIdleSpans(/*idle_only=*/true, &pending);
  }
  // Cached slice runs first, so that their slices age in the page heap.
  // Their stamps lag the put by up to one interval: they age one more.
  large_cache::Reclaim(now, static_cast<uint64_t>(decay_ms) + Interval(decay_ms));
  page_heap::Purge(now, static_cast<uint64_t>(decay_ms), /*wait=*/true);
  huge::Release(now, static_cast<uint64_t>(decay_ms));
  return HasDirtyWork();
}

void* ThreadMain(void*) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  const int64_t decay = GetOptions().decay_ms;
  int idle_passes = 0;
  int64_t timeout = static_cast<int64_t>(Interval(decay));
  __atomic_store_n(&g_asleep, 0, __ATOMIC_SEQ_CST);
  uint32_t word = __atomic_load_n(&g.wake_word, __ATOMIC_ACQUIRE);
  for (;;) {
    os::FutexWait(&g.wake_word, word, timeout);
    __atomic_store_n(&g_words.sleeping, kAwake, __ATOMIC_SEQ_CST);
    word = __atomic_load_n(&g.wake_word, __ATOMIC_ACQUIRE);
    timeout = static_cast<int64_t>(Interval(decay));
    bool drained;
    if (Pass(decay, &drained)) {
      idle_passes = 0;
      continue;
    }
    if (central::SpanPurgePending()) {
      // Only spans wait, visited every kDrainIntervalMs: sleep until the
      // next visit, not 10 ms (blocks keep coming back while the program
      // runs), unless a free leaves dirty slices (OnFreed wakes us).
      idle_passes = 0;
      __atomic_store_n(&g_words.sleeping, kUntilDrain, __ATOMIC_SEQ_CST);
      __atomic_thread_fence(__ATOMIC_SEQ_CST);  // pairs with the fence in OnFreed
      word = __atomic_load_n(&g.wake_word, __ATOMIC_ACQUIRE);
      if (!HasDirtyWork()) {
        timeout = static_cast<int64_t>(kDrainIntervalMs);
      }
      continue;
    }
    // Nothing dirty: a few more drains return idle central caches (a cache
    // is idle when untouched between two drains), then sleep until OnFreed
    // wakes us.
    if (!drained || ++idle_passes < 4) continue;
    __atomic_store_n(&g_words.sleeping, kIndefinitely, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_asleep, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  // pairs with the fence in OnFreed
    // OnCached fences nothing (it runs on every slice-run free): a barrier
    // on every thread stands in for its fence. Without membarrier, a run
    // cached just now may wait for the next wake-up, at most a second.
    const bool fenced = os::FenceAllThreads();
    word = __atomic_load_n(&g.wake_word, __ATOMIC_ACQUIRE);
    bool pending;  // a class touched since the last visit wakes us no more
    central::PurgeIdleSpans(/*idle_only=*/true, &pending);
    if (!pending && !HasWork()) os::FutexWait(&g.wake_word, word, fenced ? -1 : 1000);
    __atomic_store_n(&g_asleep, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_words.sleeping, kAwake, __ATOMIC_SEQ_CST);
    word = __atomic_load_n(&g.wake_word, __ATOMIC_ACQUIRE);
    idle_passes = 0;
  }
  return nullptr;
}

void StartThread() {
  uint32_t expected = kNotStarted;
  if (!__atomic_compare_exchange_n(&g_words.thread, &expected, kStarting, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_RELAXED)) {
    return;
  }
  // pthread_create allocates on the allocator's behalf, not the program's.
  profiler::ScopedSuspend not_sampled;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t thread;
  const bool ok = pthread_create(&thread, &attr, ThreadMain, nullptr) == 0;
  pthread_attr_destroy(&attr);
  if (ok) pthread_setname_np(thread, "assay-purge");
  __atomic_store_n(&g_words.thread, ok ? kRunning : kFailed, __ATOMIC_RELEASE);
}

}  // namespace

constinit ThreadWords g_words;
constinit uint32_t g_asleep = 1;  // no thread yet: the first free starts it

ASSAY_FIRST_USE void OnFreed() {
  const Options& o = GetOptions();
  if (o.decay_ms < 0) return;
  if (o.decay_ms == 0) {
    central::Drain(/*idle_only=*/false);
    page_heap::Purge(os::NowMs(), 0, /*wait=*/false);
    return;
  }
  const uint32_t state = __atomic_load_n(&g_words.thread, __ATOMIC_ACQUIRE);
  if (o.background_thread != 0 && state != kFailed) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  // the dirty bytes are visible before we look
    if (state == kNotStarted) {
      // Blocks back in partly used spans alone do not start the thread
      // until the heap has a second segment: one segment's spans pin at
      // most 4 MiB, and a thread costs a small program ~0.3 MiB of peak
      // RSS (its stack, glibc's thread start-up) when it exits.
      if (HasDirtyWork() || page_heap::MappedBytes() > kSegmentSize) StartThread();
    } else if (state == kRunning && __atomic_load_n(&g_words.sleeping, __ATOMIC_SEQ_CST) != 0) {
      __atomic_fetch_add(&g.wake_word, 1, __ATOMIC_RELEASE);
      os::FutexWake(&g.wake_word, 1);
    }
    return;
  }
  const uint64_t now = os::NowMs();
  if (now - __atomic_load_n(&g.last_inline_ms, __ATOMIC_RELAXED) < Interval(o.decay_ms)) return;
  __atomic_store_n(&g.last_inline_ms, now, __ATOMIC_RELAXED);
  central::Drain(/*idle_only=*/true);
  bool pending;
  central::PurgeIdleSpans(/*idle_only=*/true, &pending);
  large_cache::Reclaim(now, static_cast<uint64_t>(o.decay_ms) + Interval(o.decay_ms));
  page_heap::Purge(now, static_cast<uint64_t>(o.decay_ms), /*wait=*/false);
  huge::Release(now, static_cast<uint64_t>(o.decay_ms));
}

bool ThreadRunning() { return __atomic_load_n(&g_words.thread, __ATOMIC_ACQUIRE) == kRunning; }

void AfterForkChild() {
  g_asleep = 1;
  g_words.thread = kNotStarted;
  g_words.sleeping = 0;
}

}  // namespace assay::internal::purger

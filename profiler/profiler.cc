// The profiler core: sessions, the per-thread sampling state, recording of
// sampled blocks, promotion, and delivery of callbacks at safe points.
//
// Flow of one sampled block:
//   malloc slow path -> OnSamplePoint (count points, advance countdown)
//     -> allocator takes the block from a sampled pool -> RecordAlloc:
//        capture stack, intern it, make the Entry, put it in the address
//        table (and the young list), queue an alloc event on this thread
//     -> SafePoint before malloc returns: Drive(entry) runs on_alloc.
//   later samples advance the allocation clock -> entries older than
//     young_bytes leave the young list with a promote event on that thread.
//   free slow path (sampled span / flag) -> OnSampledFree: take the entry out
//     of the table, request free, queue on this thread -> SafePoint runs on_free.
// Entries are reference counted (table, young list, each queued event) and
// go back to the arena when the last reference goes.
#include "profiler/profiler.h"

#include <cxxabi.h>
#include <pthread.h>

#include <cstdio>
#include <cstring>
#include <new>

#include "assay/profiler.hpp"
#include "base/lock.h"
#include "base/os.h"
#include "base/probes.h"
#include "profiler/arena.h"
#include "profiler/dumper.h"
#include "profiler/entry.h"
#include "profiler/sampler.h"
#include "profiler/stack_capture.h"
#include "profiler/stack_table.h"

namespace assay::profiler {

using internal::LockGuard;
using internal::Mutex;
using internal::SampleCountdown;

uint32_t g_epoch = 0;
__thread void* tls_pending __attribute__((tls_model("initial-exec"))) = nullptr;
__thread const char* tls_cache_label __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

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
};
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

Session* CurrentSession() { return __atomic_load_n(&g_session, __ATOMIC_SEQ_CST); }

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
constexpr size_t kReaderShards = 64;

// Requests of this many bytes or more cannot succeed: 2^57 is the largest
// Linux user address space (x86-64 with five-level paging).
constexpr size_t kImpossibleRequest = size_t{1} << 57;
struct alignas(64) ReaderShard {
  uint64_t count;      // threads reading a session through this shard now
  uint64_t samples;    // samples its threads recorded, less those cancelled
  int64_t live_bytes;  // estimated bytes they recorded, less what they freed
};
ReaderShard g_session_readers[kReaderShards];
uint32_t g_reader_threads = 0;
__thread uint32_t tls_reader_shard __attribute__((tls_model("initial-exec"))) = ~0u;

// The calling thread's shard.
ReaderShard& MyShard() {
  if (ASSAY_UNLIKELY(tls_reader_shard == ~0u)) {
    tls_reader_shard = __atomic_fetch_add(&g_reader_threads, 1, __ATOMIC_RELAXED) % kReaderShards;
  }
  return g_session_readers[tls_reader_shard];
}

struct SessionReader {
  SessionReader() : shard(&MyShard().count) { __atomic_fetch_add(shard, 1, __ATOMIC_SEQ_CST); }
  ~SessionReader() { __atomic_fetch_sub(shard, 1, __ATOMIC_SEQ_CST); }
  uint64_t* shard;
};

// Moves the calling thread's share of the sample counters.
void CountSample(int64_t samples, int64_t live_bytes) {
  ReaderShard& r = MyShard();
  if (samples != 0)
    __atomic_fetch_add(&r.samples, static_cast<uint64_t>(samples), __ATOMIC_RELAXED);
  __atomic_fetch_add(&r.live_bytes, live_bytes, __ATOMIC_RELAXED);
}

uint64_t TotalSamples() {
  uint64_t n = 0;
  for (const ReaderShard& r : g_session_readers) n += __atomic_load_n(&r.samples, __ATOMIC_RELAXED);
  return n;
}

int64_t TotalLiveBytes() {
  int64_t n = 0;
  for (const ReaderShard& r : g_session_readers) {
    n += __atomic_load_n(&r.live_bytes, __ATOMIC_RELAXED);
  }
  return n;
}

bool NoSessionReaders() {
  for (const ReaderShard& r : g_session_readers) {
    if (__atomic_load_n(&r.count, __ATOMIC_SEQ_CST) != 0) return false;
  }
  return true;
}

uint64_t CurrentTid(ThreadState& ts) {
  const uint32_t gen = __atomic_load_n(&g_fork_gen, __ATOMIC_RELAXED);
  if (ts.tid == 0 || ts.fork_gen != gen) {
    ts.tid = internal::os::ThreadId();
    ts.fork_gen = gen;
    ts.stack_known = 0;
  }
  return ts.tid;
}

void LearnStackBounds(ThreadState& ts) {
  ts.stack_known = 1;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* addr = nullptr;
  size_t size = 0;
  if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
    ts.stack_lo = reinterpret_cast<uintptr_t>(addr);
    ts.stack_hi = ts.stack_lo + size;
  }
  pthread_attr_destroy(&attr);
}

void Unref(Entry* e) {
  if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  stack_table::Unref(e->stack);
  arena::Free(e, sizeof(Entry));
}

void Enqueue(ThreadState& ts, Entry* e, bool alloc) {
  Event* ev = static_cast<Event*>(arena::Alloc(sizeof(Event)));
  if (ev == nullptr) {  // no memory: the event is lost, but never its entry's reference
    Unref(e);
    return;
  }
  ev->entry = e;
  ev->alloc = alloc;
  if (ts.tail != nullptr) {
    ts.tail->next = ev;
  } else {
    tls_pending = ev;
  }
  ts.tail = ev;
}

void YoungUnlinkLocked(Entry* e) {
  if (e->young_prev != nullptr)
    e->young_prev->young_next = e->young_next;
  else
    g_young_head = e->young_next;
  if (e->young_next != nullptr)
    e->young_next->young_prev = e->young_prev;
  else
    g_young_tail = e->young_prev;
  e->young_prev = e->young_next = nullptr;
  e->in_young = false;
}

// Moves entries born young_bytes or more before `clock` out of the young
// list, each with a promote event on this thread.
void PromoteOld(ThreadState& ts, uint64_t clock) {
  for (;;) {
    Entry* e;
    {
      LockGuard lock(g_young_mu);
      e = g_young_head;
      if (e == nullptr || clock - e->birth_clock < g_young_bytes) return;
      YoungUnlinkLocked(e);
    }
    // The young list's reference passes to the promote event.
    __atomic_fetch_or(&e->cb, kPromoteReq, __ATOMIC_SEQ_CST);
    Enqueue(ts, e, /*alloc=*/false);
  }
}

void ReportException(const char* which) {
  __atomic_fetch_add(&g_exceptions, 1, __ATOMIC_RELAXED);
  if (__atomic_exchange_n(&g_exception_reported, 1, __ATOMIC_RELAXED) == 0) {
    char line[160];
    snprintf(line, sizeof(line),
             "assay: a profiler %s callback threw; the exception was caught and the entry dropped "
             "(reported once)\n",
             which);
    internal::os::WriteStderr(line);
  }
}

enum class Action { kAlloc, kPromote, kFree };

// Runs one callback of e. Returns the bits to add to e->cb.
uint32_t Run(Entry* e, Action act, bool dropped) {
  const uint32_t done = act == Action::kAlloc     ? kAllocDone
                        : act == Action::kPromote ? kPromoteDone
                                                  : kFreeDone;
  if (dropped) return done;
  // Counted until we return, or unwind: a thread may exit (pthread_exit,
  // cancellation) inside a callback.
  struct InFlight {
    InFlight() { __atomic_fetch_add(&g_in_flight, 1, __ATOMIC_SEQ_CST); }
    ~InFlight() { __atomic_fetch_sub(&g_in_flight, 1, __ATOMIC_SEQ_CST); }
  } in_flight;
  Session* s = CurrentSession();
  uint32_t result = done;
  if (s == nullptr || s->id != e->session_id) {
    result |= kDropped;  // its session stopped: discard, never deliver to another
  } else if (act == Action::kAlloc) {
    if (s->tracker.on_alloc) {
      SampledAllocation info{reinterpret_cast<void*>(e->address),
                             e->requested,
                             e->usable,
                             e->alignment,
                             e->points,
                             std::span<const uintptr_t>(e->stack->frames, e->stack->depth),
                             e->batch_index,
                             e->batch_size,
                             e->thread_id};
      try {
        const std::optional<Token> t = s->tracker.on_alloc(info);
        if (t.has_value())
          e->token = *t;
        else
          result |= kDropped;
      } catch (abi::__forced_unwind&) {
        throw;  // the thread is exiting: let it
      } catch (...) {
        ReportException("alloc");
        result |= kDropped;
      }
    }
  } else if (act == Action::kPromote) {
    if (s->tracker.on_promote) {
      try {
        const std::optional<Token> t = s->tracker.on_promote(e->token);
        if (t.has_value())
          e->token = *t;
        else
          result |= kDropped;
      } catch (abi::__forced_unwind&) {
        throw;
      } catch (...) {
        ReportException("promote");  // the block keeps its token and gets its on_free
      }
    }
  } else if (s->tracker.on_free) {
    try {
      s->tracker.on_free(e->token);
    } catch (abi::__forced_unwind&) {
      throw;
    } catch (...) {
      ReportException("free");
    }
  }
  return result;
}

// Delivers what is due for e, in order, unless another thread is running a
// callback of e (it will deliver our request when it finishes).
void Drive(Entry* e, bool alloc_event) {
  for (;;) {
    const uint32_t s = __atomic_load_n(&e->cb, __ATOMIC_SEQ_CST);
    if (s & kBusy) return;
    Action act;
    if (!(s & kAllocDone)) {
      if (!alloc_event) return;  // the allocating thread delivers alloc first, then the rest
      act = Action::kAlloc;
    } else if ((s & kFreeReq) && !(s & kFreeDone)) {
      act = Action::kFree;  // a promotion not yet delivered is moot once freed
    } else if ((s & kPromoteReq) && !(s & (kPromoteDone | kFreeReq | kFreeDone))) {
      act = Action::kPromote;
    } else {
      return;
    }
    uint32_t expected = s;
    if (!__atomic_compare_exchange_n(&e->cb, &expected, s | kBusy, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST)) {
      continue;
    }
    // Releases the entry however Run ends: if the thread exits inside the
    // callback, the step counts as done and the tracker follows it no more.
    struct Release {
      Entry* e;
      uint32_t add;
      ~Release() {
        __atomic_fetch_or(&e->cb, add, __ATOMIC_SEQ_CST);
        __atomic_fetch_and(&e->cb, ~uint32_t{kBusy}, __ATOMIC_SEQ_CST);
      }
    } release{e, (act == Action::kAlloc     ? kAllocDone
                  : act == Action::kPromote ? kPromoteDone
                                            : kFreeDone) |
                     kDropped};
    release.add = Run(e, act, (s & kDropped) != 0);
  }
}

void FreeRetiredSessions() {
  // Called with g_control held, outside callbacks, when no callback runs.
  while (g_retired != nullptr) {
    Session* s = g_retired;
    g_retired = s->retired_next;
    delete s;
  }
}

// Forces every live thread to its slow path soon, where it syncs its epoch.
void KickThreads(int64_t value) {
  internal::ForEachCountdown(
      [](SampleCountdown* c, void* arg) { internal::CountdownSet(c, *static_cast<int64_t*>(arg)); },
      &value);
}

}  // namespace

void SyncCountdown(SampleCountdown* c) {
  SessionReader reading;
  ThreadState& ts = tls;
  const uint32_t epoch = Epoch();
  Session* s = CurrentSession();
  c->epoch = epoch;
  if (s == nullptr) {
    internal::CountdownSet(c, internal::kSampleNever);
    return;
  }
  if (ts.rng_session != s->id) {
    const uint64_t index = __atomic_fetch_add(&g_thread_counter, 1, __ATOMIC_RELAXED);
    ts.rng.Seed(g_seed + index * 0x9E3779B97F4A7C15ull);
    ts.rng_session = s->id;
  }
  internal::CountdownSet(c, g_rate.DrawLeft(ts.rng));
}

SampleDecision OnSamplePoint(SampleCountdown* c, size_t n) {
  // No mapping can hold this many bytes: the request will fail, so its bytes
  // are not allocation and move neither the countdown nor the clock (2^62
  // bytes would have wrapped the clock in four calls, and drawn 2^43 gaps).
  if (n >= kImpossibleRequest) return {0, false};
  SessionReader reading;
  ThreadState& ts = tls;
  int64_t left = internal::CountdownLeftAfter(c, 0);
  Session* s = CurrentSession();
  if (s == nullptr || ts.rng_session != s->id) {
    SyncCountdown(c);  // stopped or restarted meanwhile: nothing to record from the old law
    return {0, false};
  }
  const uint64_t points = g_rate.CountPoints(&left, n, ts.rng);
  internal::CountdownSet(c, left);
  __atomic_fetch_add(&g_clock, points * g_rate.rate(), __ATOMIC_RELAXED);
  return {points, ts.suspended == 0};
}

Entry* RecordAlloc(void* p, size_t requested, size_t usable, size_t alignment, uint64_t points,
                   uint32_t batch_index, uint32_t batch_size) {
  SessionReader reading;
  ThreadState& ts = tls;
  Session* s = CurrentSession();
  if (s == nullptr) return nullptr;
  ts.suspended++;  // the profiler's own work is never sampled
  const uint64_t tid = CurrentTid(ts);
  if (g_method == StackMethod::kFramePointer && !ts.stack_known) LearnStackBounds(ts);
  uintptr_t frames[kMaxStackDepth];
  const size_t depth = CaptureStack(frames, g_depth, g_method, ts.stack_lo, ts.stack_hi);
  const double q = g_rate.SampledProbability(requested == 0 ? 1 : requested);
  const double objects = q > 0 ? 1.0 / q : 0;
  const double bytes = objects * static_cast<double>(requested);
  Stack* stack = stack_table::Intern(frames, depth, objects, bytes, tls_cache_label);
  Entry* e = stack != nullptr ? static_cast<Entry*>(arena::Alloc(sizeof(Entry))) : nullptr;
  if (e == nullptr) {
    if (stack != nullptr) stack_table::Unref(stack);
    ts.suspended--;
    return nullptr;
  }
  e->address = reinterpret_cast<uintptr_t>(p);
  e->requested = requested;
  e->usable = usable;
  e->alignment = alignment;
  e->points = points;
  e->stack = stack;
  e->thread_id = tid;
  e->birth_clock = __atomic_load_n(&g_clock, __ATOMIC_RELAXED);
  e->batch_index = batch_index;
  e->batch_size = batch_size;
  e->alloc_gen = __atomic_load_n(&g_alloc_gen, __ATOMIC_RELAXED);
  e->weight_objects = objects;
  e->weight_bytes = bytes;
  e->session_id = s->callbacks ? s->id : 0;
  e->cb = s->callbacks ? 0 : (kAllocDone | kDropped);
  e->refs = 1;  // the table's
  if (!entry_table::Insert(e)) {
    stack_table::Unref(stack);
    arena::Free(e, sizeof(Entry));
    ts.suspended--;
    return nullptr;
  }
  CountSample(1, static_cast<int64_t>(bytes));
  ASSAY_PROBE3(sample, p, requested, points);
  dumper::OnRecorded(__atomic_load_n(&g_clock, __ATOMIC_RELAXED), &TotalLiveBytes);
  if (s->callbacks) {
    if (s->promote) {
      e->refs++;
      LockGuard lock(g_young_mu);
      e->young_prev = g_young_tail;
      if (g_young_tail != nullptr)
        g_young_tail->young_next = e;
      else
        g_young_head = e;
      g_young_tail = e;
      e->in_young = true;
    }
    __atomic_fetch_add(&e->refs, 1, __ATOMIC_RELAXED);
    Enqueue(ts, e, /*alloc=*/true);
  }
  if (s->promote) PromoteOld(ts, __atomic_load_n(&g_clock, __ATOMIC_RELAXED));
  ts.suspended--;
  return e;
}

namespace {

// Interned cache names: push-only lists (lock-free, so fork needs no
// handler), nodes from the arena, never freed.
struct InternedName {
  InternedName* next;
  char name[64];
};
constexpr size_t kNameBuckets = 64;
InternedName* g_names[kNameBuckets];  // atomic heads

}  // namespace

const char* InternCacheName(const char* name) {
  if (name == nullptr) return nullptr;
  const size_t len = strnlen(name, sizeof(InternedName::name) - 1);
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (size_t i = 0; i < len; ++i) h = (h ^ static_cast<unsigned char>(name[i])) * 0x100000001b3ull;
  InternedName** head = &g_names[h % kNameBuckets];
  InternedName* checked = nullptr;  // the list from here on was searched already
  InternedName* fresh = nullptr;
  for (;;) {
    InternedName* first = __atomic_load_n(head, __ATOMIC_ACQUIRE);
    for (InternedName* n = first; n != checked; n = n->next) {
      if (std::strncmp(n->name, name, len) == 0 && n->name[len] == '\0') {
        if (fresh != nullptr) arena::Free(fresh, sizeof(InternedName));
        return n->name;
      }
    }
    if (fresh == nullptr) {
      fresh = static_cast<InternedName*>(arena::Alloc(sizeof(InternedName)));
      if (fresh == nullptr) return nullptr;
      std::memcpy(fresh->name, name, len);
      fresh->name[len] = '\0';
    }
    fresh->next = first;
    if (__atomic_compare_exchange_n(head, &first, fresh, false, __ATOMIC_RELEASE,
                                    __ATOMIC_ACQUIRE)) {
      return fresh->name;
    }
    checked = fresh->next;  // another thread pushed: search only the newer nodes
  }
}

void CancelAlloc(void* p) {
  Entry* e = entry_table::Remove(reinterpret_cast<uintptr_t>(p));
  if (e == nullptr) return;
  __atomic_fetch_or(&e->cb, kAllocDone | kFreeDone | kDropped, __ATOMIC_SEQ_CST);
  {
    LockGuard lock(g_young_mu);
    if (e->in_young) {
      YoungUnlinkLocked(e);
      __atomic_fetch_sub(&e->refs, 1, __ATOMIC_RELAXED);  // the table's remains
    }
  }
  CountSample(-1, -static_cast<int64_t>(e->weight_bytes));
  Unref(e);
}

void OnSampledFree(void* p) {
  Entry* e = entry_table::Remove(reinterpret_cast<uintptr_t>(p));
  if (e == nullptr) return;  // recorded by no session (or forgotten for lack of memory)
  CountSample(0, -static_cast<int64_t>(e->weight_bytes));
  if (e->in_young) {
    LockGuard lock(g_young_mu);
    if (e->in_young) {
      YoungUnlinkLocked(e);
      __atomic_fetch_sub(&e->refs, 1, __ATOMIC_RELAXED);  // the table's remains
    }
  }
  const uint32_t s = __atomic_fetch_or(&e->cb, kFreeReq, __ATOMIC_SEQ_CST);
  if ((s & kDropped) && (s & kAllocDone)) {
    Unref(e);  // nobody follows it: no event
    return;
  }
  Enqueue(tls, e, /*alloc=*/false);  // the table's reference passes to the event
}

void SafePointSlow() {
  ThreadState& ts = tls;
  if (ts.in_callback != 0) return;
  // Restores the thread's state however the loop ends (a callback may end
  // the thread: pthread_exit, cancellation); the rest of the queue waits for
  // the thread-exit safe point.
  struct Scope {
    ThreadState& ts;
    Event* current = nullptr;
    const char* cache_label;  // a callback's allocations are not the cache's
    explicit Scope(ThreadState& t) : ts(t), cache_label(tls_cache_label) {
      ts.in_callback = 1;
      ts.suspended++;
      tls_cache_label = nullptr;
    }
    ~Scope() {
      if (current != nullptr) {
        Unref(current->entry);
        arena::Free(current, sizeof(Event));
      }
      tls_cache_label = cache_label;
      ts.suspended--;
      ts.in_callback = 0;
    }
  } scope(ts);
  while (tls_pending != nullptr) {
    Event* ev = static_cast<Event*>(tls_pending);
    tls_pending = ev->next;
    if (tls_pending == nullptr) ts.tail = nullptr;
    scope.current = ev;
    Drive(ev->entry, ev->alloc);
    scope.current = nullptr;
    Unref(ev->entry);
    arena::Free(ev, sizeof(Event));
  }
}

void OnThreadExit() {
  SafePointSlow();
  arena::FlushThread();
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
    g_young_mu.ResetAfterFork();
    g_control.ResetAfterFork();
    __atomic_fetch_add(&g_fork_gen, 1, __ATOMIC_RELAXED);
    // Only this thread lives on: no other thread can be inside a callback.
    g_in_flight = tls.in_callback;
  } else {
    g_young_mu.Unlock();
    g_control.Unlock();
  }
  tls.suspended--;
}

// ---- Sessions ----

namespace {

// Starts a session; replaces a running MALLOC_PROF session, but not a
// tracker session. Returns false if a tracker session runs.
bool StartSession(const SessionOptions& o, Tracker tracker, bool env) {
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
    if (tls.in_callback == 0 && __atomic_load_n(&g_in_flight, __ATOMIC_SEQ_CST) == 0 &&
        NoSessionReaders()) {
      FreeRetiredSessions();
    }
    s->id = ++g_next_session_id;
    const uint64_t rate = o.rate == 0 ? 1 : o.rate;
    g_rate.Set(rate);
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

}  // namespace

void StartEnvironmentSession(const SessionOptions& o) {
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
  c.young_bytes = g_young_bytes;
  c.rate = g_rate.rate();
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

void DescribeLayout(AssayLayout* l) {
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
    profiler::KickThreads(internal::kSampleNever);
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
